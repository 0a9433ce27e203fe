from __future__ import annotations

import random

import pytest

from gptmagic.core.sse import ServerSentEvent, SSEDecoder

STREAM = (
    b": keep-alive comment\n"
    b'data: {"a": 1}\n\n'
    b"event: error\ndata: line one\ndata: line two\n\n"
    b"id: 7\nretry: 1500\ndata:no-space\n\n"
    b"data: caf\xc3\xa9 \xe2\x82\xac\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ServerSentEvent(data='{"a": 1}'),
    ServerSentEvent(data="line one\nline two", event="error"),
    ServerSentEvent(data="no-space", id="7", retry=1500),
    ServerSentEvent(data="caf\u00e9 \u20ac", id="7"),
    ServerSentEvent(data="[DONE]", id="7"),
]


def decode(chunks):
    d = SSEDecoder()
    out = []
    for c in chunks:
        out.extend(d.feed(c))
    return out


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_whole_stream_every_line_ending(eol):
    assert decode([STREAM.replace(b"\n", eol)]) == EXPECTED


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_two_way_split(eol):
    data = STREAM.replace(b"\n", eol)
    for i in range(len(data) + 1):
        assert decode([data[:i], data[i:]]) == EXPECTED, f"split at {i}"


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_byte_by_byte_and_random_splits(eol):
    data = STREAM.replace(b"\n", eol)
    assert decode([data[i : i + 1] for i in range(len(data))]) == EXPECTED
    rng = random.Random(3)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 12)))
        parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert decode(parts) == EXPECTED


def test_crlf_split_between_chunks_is_one_line_end():
    # "\r" ends one chunk, "\n" starts the next: not an extra blank line.
    events = decode([b"data: a\r", b"\ndata: b\r\n\r\n"])
    assert events == [ServerSentEvent(data="a\nb")]


def test_unterminated_event_is_not_dispatched():
    d = SSEDecoder()
    assert list(d.feed(b"data: partial")) == []
    assert d.pending
    assert list(d.feed(b"\n")) == [] and d.pending  # still no blank line after it


def test_llama_cpp_error_lines_are_error_events():
    # llama.cpp's server sends stream errors as `error: {...}` lines.
    events = decode([b'data: {"a": 1}\n\nerror: {"message": "boom"}\n\n'])
    assert events == [ServerSentEvent(data='{"a": 1}'),
                      ServerSentEvent(data='{"message": "boom"}', event="error")]


def test_blank_lines_without_data_dispatch_nothing():
    assert decode([b"\n\n\r\n: c\n\nevent: x\n\n"]) == []


def test_field_without_colon_and_unknown_fields():
    assert decode([b"data\nfoo: bar\n\n"]) == [ServerSentEvent(data="")]
