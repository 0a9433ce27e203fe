"""Token bytes to display pieces: characters split across tokens, invalid bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gptmagic.catalog.tokens import get_encoding
from gptmagic.views.widgets.pieces import (
    alternative_piece,
    decode_tokens,
    display_pieces,
    hex_bytes,
    piece_bytes,
)

ENCODINGS = ("cl100k_base", "o200k_base")


def pieces_of(text: str, name: str) -> tuple[list[str], list[list[int | str]], list[bytes]]:
    enc, exact = get_encoding(name)
    assert exact
    raw = enc.decode_tokens_bytes(enc.encode(text, disallowed_special=()))
    pieces, partial = display_pieces(raw)
    return pieces, partial, raw


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
@pytest.mark.parametrize("name", ENCODINGS)
def test_pieces_join_to_the_text(name: str, text: str) -> None:
    pieces, partial, raw = pieces_of(text, name)
    assert "".join(pieces) == text and len(pieces) == len(raw)
    for index, hexed in partial:
        assert pieces[index] == "" and hexed == hex_bytes(raw[index])
    assert {i for i, p in enumerate(pieces) if not p and raw[i]} == {i for i, _ in partial}


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("text", ["🎉🎉 party", "日本語のテキスト", "👩‍👩‍👧 family",
                                  "e\u0301 combining", "\U0001f9d1\U0001f3fd\u200d\U0001f4bb",
                                  "\x00\ufffd\U0010ffff"])
def test_emoji_and_cjk(name: str, text: str) -> None:
    pieces, partial, raw = pieces_of(text, name)
    assert "".join(pieces) == text


def test_emoji_split_across_cl100k_tokens() -> None:
    pieces, partial, raw = pieces_of("🎉", "cl100k_base")
    assert len(raw) > 1 and pieces[-1] == "🎉" and all(p == "" for p in pieces[:-1])
    assert partial == [[i, hex_bytes(raw[i])] for i in range(len(raw) - 1)]
    assert partial[0][1].startswith("f0 9f")


def test_invalid_and_truncated_bytes_never_raise() -> None:
    assert display_pieces([b"a", b"\xe2\x80"]) == (["a", "\ufffd"], [])
    assert display_pieces([b"\xe2\x80"]) == (["\ufffd"], [])
    assert display_pieces([b"\xff", b"ok"]) == (["\ufffd", "ok"], [])
    assert display_pieces([b"\xe2", b"x"]) == (["", "\ufffdx"], [[0, "e2"]])
    assert display_pieces([]) == ([], [])
    assert display_pieces([b"", b"a"]) == (["", "a"], [])


def test_pending_bytes_before_each_token() -> None:
    d = decode_tokens([b"a", b"\xe6", b"\x97", b"\xa5b"])
    assert d.pieces == ["a", "", "", "日b"]
    assert d.pending == [b"", b"", b"\xe6", b"\xe6\x97"]


def test_alternatives_read_in_the_decoder_state() -> None:
    assert alternative_piece(b"", b" city") == " city"
    assert alternative_piece(b"\xe6\x97", b"\xa5") == "日"
    assert alternative_piece(b"", b"\xe6\x97") == "\\xe6\\x97"
    assert alternative_piece(b"\xe6", b"\x97") == "\\x97"
    assert alternative_piece(b"", b"\xff") == "\ufffd"


def test_engine_pieces_to_bytes() -> None:
    assert piece_bytes("é") == b"\xc3\xa9"
    assert piece_bytes([240, 159]) == b"\xf0\x9f"
