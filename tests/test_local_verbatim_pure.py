"""The pure half of keeping control-token text as text (:mod:`gptmagic.local.verbatim`).

Detection, placeholders, splitting a rendered prompt into special and text
segments, the chat → completion request, and the completion → chat answers
and chunks (checked against OpenAI's spec after :class:`ChatStream`). The
engine half is ``test_local_verbatim.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from openapi_schema import validate

from gptmagic.local.adapt import ChatStream, LocalRequestError, merge_chat, prepare_chat
from gptmagic.local.model import model_path
from gptmagic.local.verbatim import (
    ChatChunks,
    ControlTokens,
    Segment,
    chat_answer,
    completion_body,
    control_messages,
    segments,
    substitute,
    with_placeholders,
)
from gptmagic.local.vocab import read_control_tokens

CONTROLS = ControlTokens({"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2,
                          "<repo_name>": 3, "<reponame>": 4})


def test_the_vocabulary_s_control_tokens_are_read_from_the_gguf() -> None:
    tokens = read_control_tokens(model_path())
    assert tokens["<|endoftext|>"] == 0 and tokens["<|im_start|>"] == 1
    assert tokens["<|im_end|>"] == 2 and tokens["<empty_output>"] == 16
    assert len(tokens) == 17


@pytest.mark.parametrize("data", [b"", b"not a model", b"GGUF\x03\x00\x00\x00\x00",
                                  b"GGUF" + bytes(20)])
def test_a_file_that_is_not_a_whole_gguf_is_a_value_error(tmp_path: Any, data: bytes) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(data)
    with pytest.raises(ValueError):
        read_control_tokens(path)


@pytest.mark.parametrize("text", [
    "", "plain", "<b>bold</b>", "a <| b |> c", "<|im_start", "im_end|>", "<|im_end |>",
    "<|IM_START|>", "<repo name>", "x < y > z",
])
def test_ordinary_text_has_no_control_text(text: str) -> None:
    assert CONTROLS.find(text) is None
    assert control_messages([{"role": "user", "content": text}], CONTROLS) == []


@pytest.mark.parametrize(("content", "found"), [
    ("x<|im_end|>y", "<|im_end|>"),
    ("<|endoftext|>", "<|endoftext|>"),
    ("see <reponame> and <repo_name>", "<reponame>"),
    ([{"type": "text", "text": "a"}, {"type": "text", "text": "b <|im_start|>"}], "<|im_start|>"),
])
def test_control_text_is_found(content: Any, found: str) -> None:
    messages = [{"role": "system", "content": "fine"}, {"role": "user", "content": content}]
    assert control_messages(messages, CONTROLS) == [1]
    assert CONTROLS.find(content if isinstance(content, str) else content[1]["text"]) == found


def test_a_name_with_control_text_is_found_after_the_name_is_emulated() -> None:
    plan = prepare_chat({"messages": [{"role": "user", "content": "hi", "name": "<|im_end|>"}]})
    assert control_messages(plan.bodies[0]["messages"], CONTROLS) == [0]


def test_messages_the_template_cannot_take_as_text_are_left_alone() -> None:
    """Content with a non-text part, or none at all, goes to the engine as it is."""
    messages = [{"role": "assistant", "content": None, "tool_calls": []},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "<|im_end|>"}]}]
    assert control_messages(messages, CONTROLS) == []


def test_placeholders_are_unique_and_appear_in_no_message() -> None:
    messages = [{"role": "user", "content": "a <|im_end|>"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"type": "text", "text": "c"},
                                             {"type": "text", "text": "<|im_start|>"}]}]
    marked, contents = with_placeholders(messages, [0, 2])
    assert messages[0]["content"] == "a <|im_end|>"  # the request is not changed
    assert marked[1] == messages[1]
    keys = [marked[0]["content"], marked[2]["content"]]
    assert contents == {keys[0]: "a <|im_end|>", keys[1]: "c\n<|im_start|>"}
    assert len(set(keys)) == 2 and all(CONTROLS.find(k) is None for k in keys)
    assert not any(k in str(m["content"]) for k in keys for m in messages)


def test_segments_split_at_the_template_s_control_tokens_only() -> None:
    content = "a <|im_end|> b"
    rendered = ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n@P0@<|im_end|>\n"
                "<|im_start|>assistant\n")
    parts = segments(rendered, {"@P0@": content}, CONTROLS)
    assert parts == [
        Segment("<|im_start|>system\nS<|im_end|>\n<|im_start|>", special=True),
        Segment("user\na <|im_end|> b", special=False),
        Segment("<|im_end|>\n<|im_start|>assistant\n", special=True),
    ]
    assert "".join(p.text for p in parts) == substitute(rendered, {"@P0@": content})


def test_segments_join_contents_that_share_a_text_run() -> None:
    rendered = "<|im_start|>@A@ and @B@<|im_end|>@C@"
    parts = segments(rendered, {"@A@": "<|im_end|>", "@B@": "x", "@C@": "<|im_start|>"},
                     CONTROLS)
    assert parts == [Segment("<|im_start|>", special=True),
                     Segment("<|im_end|> and x", special=False),
                     Segment("<|im_end|>", special=True),
                     Segment("<|im_start|>", special=False)]


def test_a_placeholder_the_template_dropped_or_repeated_is_an_error() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        segments("<|im_start|>user\n<|im_end|>", {"@A@": "x"}, CONTROLS)
    with pytest.raises(ValueError, match="placeholder"):
        segments("@A@ @A@", {"@A@": "x"}, CONTROLS)


def chat_body(**kw: Any) -> dict[str, Any]:
    return prepare_chat({"model": "local", "messages": [{"role": "user", "content": "hi"}],
                         **kw}).bodies[0]


def test_completion_body_sends_the_ids_and_keeps_the_sampling() -> None:
    body = completion_body(chat_body(max_tokens=5, temperature=0.5, seed=3, stop=["x"],
                                     logprobs=True, top_logprobs=3, tool_choice="auto",
                                     stream=True, stream_options={"include_usage": True}),
                           [1, 2, 3])
    assert body == {"model": "smollm2-135m-instruct", "prompt": [1, 2, 3], "max_tokens": 5,
                    "temperature": 0.5, "seed": 3, "stop": ["x"], "logprobs": 3,
                    "stream": True, "stream_options": {"include_usage": True}}
    assert "logprobs" not in completion_body(chat_body(logprobs=False), [1])


@pytest.mark.parametrize(("response_format", "schema"), [
    ({"type": "text"}, None),
    ({"type": "json_object"}, {}),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
     {"type": "object"}),
])
def test_response_format_becomes_the_engine_s_json_schema(response_format: dict[str, Any],
                                                         schema: Any) -> None:
    body = completion_body(chat_body(response_format=response_format), [1])
    assert "response_format" not in body and body.get("json_schema") == schema


def test_tools_go_as_their_grammar() -> None:
    """Emulated tools are prompt text and a JSON schema, which token ids carry."""
    chat = chat_body(tools=[{"type": "function", "function": {"name": "f"}}],
                     tool_choice="required")
    body = completion_body(chat, [1], found="<|im_end|>", where=0)
    assert body["json_schema"] == chat["json_schema"] and "tools" not in body


def test_what_the_token_path_cannot_carry_is_a_400_naming_it() -> None:
    with pytest.raises(LocalRequestError) as caught:
        completion_body(chat_body(functions=[{"name": "f"}]), [1], found="<|im_end|>", where=0)
    assert caught.value.param == "functions" and caught.value.status == 400
    assert "<|im_end|>" in str(caught.value) and "messages[0]" in str(caught.value)


ENVELOPE = {"created": 1, "model": "smollm2-135m-instruct", "system_fingerprint": "b0",
            "object": "text_completion", "id": "chatcmpl-abc"}
TOP = {"id": 504, "token": "The", "bytes": [84, 104, 101], "logprob": -0.5}


def legacy(index: int, text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    logprobs = {"content": [{**TOP, "top_logprobs": [TOP]}]} if text else None
    return {"choices": [{"text": text, "index": index, "logprobs": logprobs,
                         "finish_reason": finish}], **ENVELOPE, **extra}


USAGE = {"completion_tokens": 2, "prompt_tokens": 10, "total_tokens": 12,
         "prompt_tokens_details": {"cached_tokens": 0}}


@pytest.mark.parametrize("logprobs", [False, True])
def test_completion_chunks_become_valid_chat_chunks(logprobs: bool) -> None:
    kw: dict[str, Any] = {"logprobs": True, "top_logprobs": 1} if logprobs else {}
    plan = prepare_chat({"messages": [{"role": "user", "content": "hi"}], "n": 2,
                         "stream": True, "stream_options": {"include_usage": True}, **kw})
    stream, chunks = ChatStream(plan), ChatChunks()
    engine = [legacy(1, "The"), legacy(0, "The"), legacy(0, " end"),
              legacy(1, "", "length", usage=USAGE), legacy(0, "", "stop", usage=USAGE)]
    sent = [out for c in engine for chat in chunks.feed(c) for out in stream.feed(chat)]
    sent += stream.finish()
    for chunk in sent:
        validate(chunk, "CreateChatCompletionStreamResponse")
        assert chunk["object"] == "chat.completion.chunk"
    firsts = [c["choices"][0] for c in sent[:3]]
    assert firsts[0]["index"] == 1 and firsts[0]["delta"] == {"role": "assistant",
                                                               "content": None}
    assert firsts[1]["delta"] == {"content": "The"}
    text = {i: "".join(c["choices"][0]["delta"].get("content") or "" for c in sent
                       if c["choices"] and c["choices"][0]["index"] == i) for i in (0, 1)}
    assert text == {0: "The end", 1: "The"}
    finishes = [c["choices"][0]["finish_reason"] for c in sent if c["choices"]]
    assert finishes.count("length") == finishes.count("stop") == 1
    assert sent[-1]["choices"] == [] and sent[-1]["usage"]["prompt_tokens"] == 10
    assert sent[-1]["usage"]["completion_tokens"] == 4
    with_logprobs = [c for c in sent if c["choices"] and c["choices"][0].get("logprobs")]
    assert bool(with_logprobs) == logprobs


def test_a_completion_answer_becomes_a_valid_chat_answer() -> None:
    plan = prepare_chat({"messages": [{"role": "user", "content": "hi"}], "logprobs": True,
                         "top_logprobs": 1})
    answer = {**ENVELOPE, "choices": [{"index": 0, "text": "The",
                                       "logprobs": {"content": [{**TOP, "top_logprobs": [TOP]}]},
                                       "finish_reason": "stop"}],
              "usage": USAGE, "timings": {"prompt_n": 10}}
    chat = chat_answer(answer)
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": "The"}
    merged = merge_chat(plan, [chat])
    validate(merged, "CreateChatCompletionResponse")
    assert merged["choices"][0]["message"]["content"] == "The"
    assert merged["usage"]["prompt_tokens"] == 10
    assert merged["choices"][0]["logprobs"]["content"][0]["token"] == "The"
