"""The Responses API read into a Result (gptmagic.core.responses): whole bodies and streams."""

from __future__ import annotations

import copy
import json
import math

import pytest

from gptmagic.core.reply_checks import check_reply
from gptmagic.core.response import loads
from gptmagic.core.responses import ResponsesAccumulator, finish_reason, parse_responses
from gptmagic.errors import APIError, MalformedResponseError, ResponseFailedError

USAGE = {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 8},
         "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 32},
         "total_tokens": 52}
LP = [{"token": "Hel", "logprob": -0.01, "bytes": [72, 101, 108],
       "top_logprobs": [{"token": "Hel", "logprob": -0.01, "bytes": [72, 101, 108]},
                        {"token": "Hi", "logprob": -4.6, "bytes": [72, 105]}]},
      {"token": "lo!", "logprob": -0.2, "bytes": [108, 111, 33], "top_logprobs": []}]


def _response(status: str, output: list, **extra) -> dict:
    return {"id": "resp_1", "object": "response", "created_at": 1740855869, "status": status,
            "completed_at": None, "error": None, "incomplete_details": None,
            "instructions": None, "model": "o4-mini", "output": output,
            "parallel_tool_calls": True, "metadata": {}, "tool_choice": "auto", "tools": [],
            "temperature": 1.0, "top_p": 1.0, **extra}


REASONING = {"id": "rs_1", "type": "reasoning",
             "summary": [{"type": "summary_text", "text": "**Greeting** the user"}]}
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
           "content": [{"type": "output_text", "text": "Hello!", "annotations": [],
                        "logprobs": LP}]}
WHOLE = _response("completed", [REASONING, MESSAGE], usage=USAGE)


def recorded() -> list[dict]:
    """A stream as OpenAI sends it for WHOLE (reasoning summary, then text with logprobs)."""
    running = _response("in_progress", [])
    rs = {"item_id": "rs_1", "output_index": 0, "summary_index": 0}
    msg = {"item_id": "msg_1", "output_index": 1, "content_index": 0}
    empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    events = [
        {"type": "response.created", "response": running},
        {"type": "response.in_progress", "response": running},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"id": "rs_1", "type": "reasoning", "summary": []}},
        {"type": "response.reasoning_summary_part.added", **rs,
         "part": {"type": "summary_text", "text": ""}},
        {"type": "response.reasoning_summary_text.delta", **rs, "delta": "**Greeting**"},
        {"type": "response.reasoning_summary_text.delta", **rs, "delta": " the user"},
        {"type": "response.reasoning_summary_text.done", **rs, "text": "**Greeting** the user"},
        {"type": "response.reasoning_summary_part.done", **rs,
         "part": {"type": "summary_text", "text": "**Greeting** the user"}},
        {"type": "response.output_item.done", "output_index": 0, "item": REASONING},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {**MESSAGE, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **msg, "part": empty},
        {"type": "response.output_text.delta", **msg, "delta": "Hel", "logprobs": LP[:1]},
        {"type": "response.output_text.delta", **msg, "delta": "lo!", "logprobs": LP[1:]},
        {"type": "response.output_text.done", **msg, "text": "Hello!", "logprobs": LP},
        {"type": "response.content_part.done", **msg, "part": MESSAGE["content"][0]},
        {"type": "response.output_item.done", "output_index": 1, "item": MESSAGE},
        {"type": "response.completed", "response": WHOLE},
    ]
    for i, e in enumerate(events):
        e["sequence_number"] = i
    return copy.deepcopy(events)


def fold(events: list[dict]) -> tuple[ResponsesAccumulator, list[str]]:
    acc, pieces = ResponsesAccumulator(), []
    for e in events:
        pieces += [t for _, t in acc.add(e, e.get("type"))]
    return acc, pieces


def test_the_recorded_events_are_openais_shapes():
    from openapi_schema import validate

    validate(WHOLE, "Response")
    for e in recorded():
        validate(e, "ResponseStreamEvent")


def test_a_whole_response():
    r = parse_responses(WHOLE)
    assert (r.kind, r.text, r.status, r.finish_reason) == ("response", "Hello!", "completed",
                                                           "stop")
    assert (r.id, r.model, r.created, r.reasoning) == ("resp_1", "o4-mini", 1740855869,
                                                       "**Greeting** the user")
    u = r.usage
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (12, 40, 52)
    assert (u.cached_tokens, u.cache_write_tokens, u.reasoning_tokens) == (4, 8, 32)
    assert [(t.token, t.logprob, t.bytes) for t in r.logprobs] == [
        ("Hel", -0.01, b"Hel"), ("lo!", -0.2, b"lo!")]
    assert [(a.token, a.logprob) for a in r.logprobs[0].top] == [("Hel", -0.01), ("Hi", -4.6)]
    assert r.choices[0].role == "assistant" and r.choices[0].tool_calls is None
    assert r.raw is WHOLE and r.choices[0].message == {"role": "assistant", "content": "Hello!"}


def test_the_recorded_stream_gives_the_whole_response():
    acc, pieces = fold(recorded())
    streamed, whole = acc.result(), parse_responses(WHOLE)
    assert pieces == ["Hel", "lo!"] and acc.finished and acc.chunks == len(recorded())
    for attr in ("text", "status", "finish_reason", "reasoning", "usage", "logprobs", "id",
                 "model", "created"):
        assert getattr(streamed, attr) == getattr(whole, attr), attr


def test_the_stream_cut_at_every_point_keeps_the_text_so_far():
    """Every prefix of the stream folds without error; its result has the text so far."""
    events = recorded()
    for k in range(len(events) + 1):
        acc, pieces = fold(events[:k])
        r = acc.result()
        assert r.text == "".join(pieces) == "".join(
            e["delta"] for e in events[:k] if e["type"] == "response.output_text.delta")
        assert acc.finished == (k == len(events))
        assert r.status == (None if k == 0 else "completed" if acc.finished else "in_progress")
        assert r.finish_reason == ("stop" if acc.finished else None)
        assert (r.usage is None) != acc.finished
        assert len(r.logprobs or []) == len(pieces)
        summary = "".join(e["delta"] for e in events[:k]
                          if e["type"] == "response.reasoning_summary_text.delta")
        assert r.reasoning == (summary or None)


@pytest.mark.parametrize(("status", "details", "calls", "finish"), [
    ("completed", None, False, "stop"),
    ("completed", None, True, "tool_calls"),
    ("incomplete", {"reason": "max_output_tokens"}, False, "length"),
    ("incomplete", {"reason": "max_tokens"}, False, "length"),  # the spec's event example
    ("incomplete", {"reason": "content_filter"}, False, "content_filter"),
    ("incomplete", {"reason": "something_new"}, False, "something_new"),
    ("incomplete", None, False, "incomplete"),
    ("cancelled", None, False, "cancelled"),
    ("in_progress", None, False, None),
    ("queued", None, False, None),
    (None, None, False, None),
])
def test_status_maps_to_the_finish_reasons_chat_users_know(status, details, calls, finish):
    assert finish_reason(status, details, calls) == finish


def test_incomplete_is_length():
    body = _response("incomplete", [{**MESSAGE, "status": "incomplete"}],
                     incomplete_details={"reason": "max_output_tokens"}, usage=USAGE)
    r = parse_responses(body)
    assert (r.status, r.finish_reason, r.text) == ("incomplete", "length", "Hello!")


FAILED = _response("failed", [MESSAGE], error={"code": "server_error",
                                                "message": "The model failed to generate."})


def test_a_failed_response_is_an_error_with_the_servers_message():
    with pytest.raises(APIError, match=r"failed: The model failed to generate\. "
                                       r"\(code: server_error\)") as e:
        parse_responses(FAILED)
    assert not isinstance(e.value, MalformedResponseError)
    assert isinstance(e.value, ResponseFailedError) and e.value.code == "server_error"
    with pytest.raises(ResponseFailedError, match="no error message") as e:
        parse_responses({**FAILED, "error": None})
    assert e.value.code is None


def test_the_specs_incomplete_event_example_is_length():
    """ResponseIncompleteEvent's example in the spec says ``"reason": "max_tokens"``."""
    body = _response("incomplete", [{**MESSAGE, "status": "incomplete"}],
                     incomplete_details={"reason": "max_tokens"}, usage=USAGE)
    assert parse_responses(body).finish_reason == "length"


@pytest.mark.parametrize("missing", ["input_tokens", "output_tokens"])
def test_a_usage_without_its_required_counts_is_malformed(missing):
    usage = {k: v for k, v in USAGE.items() if k != missing}
    with pytest.raises(MalformedResponseError, match=f"usage.{missing} is missing"):
        parse_responses({**WHOLE, "usage": usage})
    with pytest.raises(MalformedResponseError, match="usage.input_tokens is missing"):
        parse_responses({**WHOLE, "usage": {}})  # empty: the first one is named


@pytest.mark.parametrize("status", ["queued", "in_progress"])
def test_a_final_body_still_running_is_refused_naming_its_status(status):
    """``background: true`` answers at once, unfinished: not an empty success."""
    body = _response(status, [])
    with pytest.raises(MalformedResponseError, match=f"status '{status}': it is not finished"):
        parse_responses(body)


def test_a_failed_stream_is_an_error_and_keeps_its_text():
    """FAILED lists the message first, the stream had it second: items match by id."""
    events = recorded()[:13] + [{"type": "response.failed", "sequence_number": 20,
                                 "response": FAILED}]
    acc = ResponsesAccumulator()
    with pytest.raises(APIError, match="The model failed to generate"):
        fold_into(acc, events)
    partial = acc.result()
    assert (partial.text, partial.status, partial.finish_reason) == ("Hello!", "failed",
                                                                     "failed")


def fold_into(acc: ResponsesAccumulator, events: list[dict]) -> None:
    for e in events:
        acc.add(e)


def test_an_error_event_is_an_error_with_the_servers_message():
    acc = ResponsesAccumulator()
    fold_into(acc, recorded()[:12])
    with pytest.raises(APIError, match="mid-stream: Something went wrong \\(code: ERR_X\\)"):
        acc.add({"type": "error", "code": "ERR_X", "message": "Something went wrong",
                 "param": None, "sequence_number": 99})
    assert acc.result().text == "Hel"


def test_function_calls_arrive_in_chats_shape():
    item = {"id": "fc_1", "type": "function_call", "call_id": "call_9", "name": "get_weather",
            "arguments": "", "status": "in_progress"}
    done = {**item, "arguments": '{"city": "Paris"}', "status": "completed"}
    where = {"item_id": "fc_1", "output_index": 0}
    events = [
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.function_call_arguments.delta", **where, "delta": '{"city": '},
        {"type": "response.function_call_arguments.delta", **where, "delta": '"Paris"}'},
        {"type": "response.function_call_arguments.done", **where, "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "response.output_item.done", "output_index": 0, "item": done},
        {"type": "response.completed", "response": _response("completed", [done])},
    ]
    acc, pieces = fold(events)
    want = [{"id": "call_9", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    r = acc.result()
    assert pieces == [] and r.choices[0].tool_calls == want and r.finish_reason == "tool_calls"
    whole = parse_responses(_response("completed", [done]))
    assert whole.choices[0].tool_calls == want and whole.finish_reason == "tool_calls"
    assert whole.choices[0].message["tool_calls"] == want
    # Cut after the first argument piece: the call so far is kept.
    acc, _ = fold(events[:2])
    assert acc.result().choices[0].tool_calls[0]["function"]["arguments"] == '{"city": '


def test_a_refusal():
    part = {"type": "refusal", "refusal": "I can't help with that."}
    whole = parse_responses(_response("completed", [{**MESSAGE, "content": [part]}]))
    assert whole.choices[0].refusal == "I can't help with that." and whole.text == ""
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    acc, pieces = fold([
        {"type": "response.refusal.delta", **where, "delta": "I can't"},
        {"type": "response.refusal.delta", **where, "delta": " help with that."},
        {"type": "response.refusal.done", **where, "refusal": "I can't help with that."},
    ])
    assert pieces == [] and acc.result().choices[0].refusal == "I can't help with that."


def test_text_the_deltas_did_not_send_is_passed_on_once():
    """A server that sends only done events (or fewer deltas) still gives the whole text."""
    where = {"item_id": "m", "output_index": 0, "content_index": 0}
    acc = ResponsesAccumulator()
    assert acc.add({"type": "response.output_text.delta", **where, "delta": "Hel",
                    "logprobs": []}) == [(0, "Hel")]
    assert acc.add({"type": "response.output_text.done", **where, "text": "Hello!",
                    "logprobs": LP}) == [(0, "lo!")]
    assert acc.add({"type": "response.output_item.done", "output_index": 0,
                    "item": MESSAGE}) == []
    assert acc.add({"type": "response.completed", "response": WHOLE}) == []
    r = acc.result()
    assert r.text == "Hello!" and [t.token for t in r.logprobs] == ["Hel", "lo!"]
    # Only a terminal event: its output is the text.
    acc = ResponsesAccumulator()
    assert acc.add({"type": "response.completed", "response": WHOLE}) == [(0, "Hello!")]


def test_the_sdks_output_text_alone_is_read():
    body = {"id": "r", "object": "response", "status": "completed", "model": "m",
            "output": [], "output_text": "just text",
            "usage": {"input_tokens": 3, "output_tokens": 2}}
    r = parse_responses(body)
    assert (r.text, r.usage.prompt_tokens, r.usage.total_tokens) == ("just text", 3, 5)
    assert r.usage.cached_tokens is None and r.usage.reasoning_tokens is None


def test_chat_style_usage_on_the_responses_endpoint_is_read():
    body = {**WHOLE, "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}
    u = parse_responses(body).usage
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (5, 7, 12)


def _with(body: dict, path: str, value) -> dict:
    body = copy.deepcopy(body)
    *keys, last = path.split(".")
    target = body
    for k in keys:
        target = target[int(k)] if isinstance(target, list) else target[k]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


BAD_BODIES = {
    "not an object": (["x"], "expected a JSON object"),
    "object is not response": (_with(WHOLE, "object", "chat.completion"), "object"),
    "output not a list": (_with(WHOLE, "output", {"a": 1}), "output is not a list"),
    "item not an object": (_with(WHOLE, "output.1", "text"), r"output\[1\]"),
    "content not a list": (_with(WHOLE, "output.1.content", "hi"), "content is not a list"),
    "text not a string": (_with(WHOLE, "output.1.content.0.text", 5), "text is int"),
    "negative input": (_with(WHOLE, "usage.input_tokens", -5), "usage.input_tokens"),
    "string output": (_with(WHOLE, "usage.output_tokens", "40"), "usage.output_tokens"),
    "bool total": (_with(WHOLE, "usage.total_tokens", True), "usage.total_tokens"),
    "fractional": (_with(WHOLE, "usage.input_tokens", 1.5), "whole number"),
    "a billion": (_with(WHOLE, "usage.output_tokens", 10**10), "outside"),
    "cached many": (_with(WHOLE, "usage.input_tokens_details.cached_tokens", "many"),
                    "cached_tokens"),
    "cache write negative": (_with(WHOLE, "usage.input_tokens_details.cache_write_tokens", -1),
                             "cache_write_tokens"),
    "reasoning list": (_with(WHOLE, "usage.output_tokens_details.reasoning_tokens", [3]),
                       "reasoning_tokens"),
    "details not an object": (_with(WHOLE, "usage.output_tokens_details", 3),
                              "output_tokens_details"),
    "usage not an object": (_with(WHOLE, "usage", 3), "usage is int"),
    "logprob above 0": (_with(WHOLE, "output.1.content.0.logprobs.0.logprob", 1000),
                        "logprob is 1000"),
    "logprobs not a list": (_with(WHOLE, "output.1.content.0.logprobs", 3), "logprobs is int"),
    "status not a string": (_with(WHOLE, "status", 3), "status is int"),
    "summary not a list": (_with(WHOLE, "output.0.summary", "x"), "summary is not a list"),
    "arguments not a string": (_response("completed", [{
        "type": "function_call", "call_id": "c", "name": "f", "arguments": {"a": 1}}]),
        "arguments is dict"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_malformed_body_is_a_malformed_response(case):
    body, where = BAD_BODIES[case]
    with pytest.raises(MalformedResponseError, match=where):
        parse_responses(body)


def test_numbers_json_cannot_mean_are_refused_before_parsing():
    text = json.dumps(WHOLE).replace('"output_tokens": 40', '"output_tokens": 1e400')
    with pytest.raises(ValueError):
        loads(text)
    text = json.dumps(WHOLE).replace('"logprob": -0.2', '"logprob": NaN')
    with pytest.raises(ValueError):
        loads(text)
    text = json.dumps(WHOLE).replace('"logprob": -0.2', '"logprob": -Infinity')
    assert parse_responses(loads(text)).logprobs[1].logprob == -9999.0


def _event(k: int, **change) -> list[dict]:
    """The recorded stream up to event k, then event k changed."""
    events = recorded()
    return events[:k] + [{**events[k], **change}]


BAD_STREAMS = {
    "not an object": ([["x"]], "expected a JSON object"),
    "no type": ([{"sequence_number": 0}], "has no 'type'"),
    "sequence repeated": (_event(3, sequence_number=2), "sequence_number is 2, after 2"),
    "sequence backwards": (_event(3, sequence_number=0), "sequence_number is 0, after 2"),
    "sequence negative": ([{"type": "response.created", "sequence_number": -1,
                            "response": _response("in_progress", [])}], "sequence_number"),
    "negative output_index": (_event(11, output_index=-1), "output_index is -1"),
    "string content_index": (_event(11, content_index="0"), "content_index"),
    "delta not a string": (_event(11, delta=None), "delta is NoneType"),
    "bad delta logprob": (_event(11, logprobs=[{"token": "a", "logprob": "x"}]),
                          "not a number"),
    "done text disagrees": (_event(13, text="Goodbye"), "does not continue"),
    "delta after done": (recorded()[:14] + [{**recorded()[11], "sequence_number": 50}],
                         "after its done event"),
    "event after completed": (recorded() + [{**recorded()[11], "sequence_number": 50}],
                              "after the response ended"),
    "response not an object": (_event(0, response="x"), "response: expected a JSON object"),
    "bad usage at the end": (_event(16, response=_with(WHOLE, "usage.input_tokens", -1)),
                             "usage.input_tokens"),
    "summary text disagrees": (_event(6, text="Other"), "does not continue"),
}


@pytest.mark.parametrize("case", list(BAD_STREAMS))
def test_a_malformed_stream_event_is_a_malformed_response(case):
    events, where = BAD_STREAMS[case]
    acc = ResponsesAccumulator()
    with pytest.raises(MalformedResponseError, match=where):
        fold_into(acc, events)
    # What came before the bad event is kept.
    good = "".join(e["delta"] for e in events[:-1] if isinstance(e, dict)
                   and e.get("type") == "response.output_text.delta")
    assert acc.result().text == good


def test_the_event_line_and_the_type_must_agree():
    acc = ResponsesAccumulator()
    e = recorded()[0]
    with pytest.raises(MalformedResponseError, match="named 'response.completed'"):
        acc.add(e, "response.completed")
    # An event with no type of its own takes its SSE event name.
    acc = ResponsesAccumulator()
    for e in recorded():
        name = e.pop("type")
        acc.add(e, name)
    assert acc.result().text == "Hello!" and acc.finished


def test_unknown_events_are_passed_over():
    acc = ResponsesAccumulator()
    fold_into(acc, recorded()[:12])
    acc.add({"type": "response.web_search_call.searching", "output_index": 2, "item_id": "ws",
             "sequence_number": 40})
    acc.add({"type": "response.something_new", "sequence_number": 41})
    assert acc.result().text == "Hel" and not acc.finished


def _body(**kw) -> dict:
    return {"model": "o4-mini", "input": "hi", **kw}


def test_reply_checks_do_not_misfire_on_responses():
    """Reasoning tokens, logprobs and a cut at max_output_tokens are no shortfall."""
    assert check_reply("response", _body(), parse_responses(WHOLE)) == []
    cut = _response("incomplete", [MESSAGE], incomplete_details={"reason": "max_output_tokens"},
                    usage={**USAGE, "output_tokens": 40})
    assert check_reply("response", _body(max_output_tokens=40), parse_responses(cut)) == []
    assert check_reply("response", _body(max_output_tokens=40, n=3, echo=True, best_of=5),
                       parse_responses(WHOLE)) == []


def test_reply_checks_still_see_under_reported_usage():
    low = _with(WHOLE, "usage.output_tokens", 1)
    (warning,) = check_reply("response", _body(), parse_responses(low))
    assert "under-reported" in warning and "2 tokens in the logprobs" in warning
    cut = _response("incomplete", [MESSAGE], incomplete_details={"reason": "max_output_tokens"},
                    usage={**USAGE, "output_tokens": 3})
    cut["output"][0]["content"][0]["logprobs"] = []
    (warning,) = check_reply("response", _body(max_output_tokens=40), parse_responses(cut))
    assert "1 choice ended at max_output_tokens=40" in warning


def test_odd_timestamps_are_dropped_not_fatal():
    for value, want in ((1.7e9, 1700000000), ("soon", None), (-5, None), (math.inf, None)):
        assert parse_responses({**WHOLE, "created_at": value}).created == want
