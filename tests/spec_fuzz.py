"""Requests generated from OpenAI's spec by schemathesis, and what the answers must be.

Shared by ``tests/test_local_spec_fuzz.py`` (a short run in the suite) and
``benchmarks/bench_spec_fuzz.py`` (a long one). The operations are the
embedded server's (``paths`` of the vendored spec, see
``scripts/vendor_openapi.py``). The rules for every answer:

* never a 5xx;
* a 4xx is OpenAI's error shape (``ErrorResponse``);
* a 200 is valid against the operation's response schema, and a stream is
  ``data:`` events each valid against the chunk schema, ending in ``[DONE]``.

Generated bodies are *tamed* so a run is bounded: the model is the local one
(any other name is a quick 404, which says nothing about the adapter), and
token counts and choice counts are capped (and set when absent). Responses
bodies also lose keys their schema does not name and get an ``input`` when
they have none (see :func:`tame`). Nothing else is changed.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from lazy import lazy
from openapi_schema import SPEC_PATH, load_spec, validate

schemathesis = lazy("schemathesis")

#: (path, method, invalid requests?) for every operation the embedded server implements
#: (``GET /models`` takes no input, so it has no invalid requests).
OPERATIONS = [("/chat/completions", "POST", False), ("/chat/completions", "POST", True),
              ("/completions", "POST", False), ("/completions", "POST", True),
              ("/responses", "POST", False), ("/responses", "POST", True),
              ("/responses/input_tokens", "POST", False),
              ("/responses/input_tokens", "POST", True),
              ("/models", "GET", False)]

#: The stream chunk schema per operation (the legacy endpoint streams its own shape).
CHUNK_SCHEMA = {"/chat/completions": "CreateChatCompletionStreamResponse",
                "/completions": "CreateCompletionResponse", "/responses": "ResponseStreamEvent"}
ANSWER_SCHEMA = {"/chat/completions": "CreateChatCompletionResponse",
                 "/completions": "CreateCompletionResponse", "/models": "ListModelsResponse",
                 "/responses": "Response", "/responses/input_tokens": "TokenCountsResource"}

#: Caps that keep one request to a fraction of a second on the 135M model.
CAPS = {"max_tokens": 4, "max_completion_tokens": 4, "max_output_tokens": 4, "n": 3,
        "best_of": 3}
#: The request schema of the operations whose bodies :func:`tame` trims to named fields.
REQUEST_SCHEMA = {"/responses": "CreateResponse", "/responses/input_tokens": "TokenCountsBody"}
#: The Responses API's streams: named events, no ``[DONE]``; these types say it failed.
_FAILED_EVENTS = {"error", "response.failed"}


def operation(path: str, method: str) -> Any:
    """The schemathesis operation for ``method path`` from the vendored spec."""
    raw = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return schemathesis.openapi.from_dict(raw)[path][method]


def strategy(path: str, method: str, negative: bool = False) -> Any:
    """A hypothesis strategy of schemathesis cases (valid, or deliberately invalid)."""
    mode = schemathesis.GenerationMode.NEGATIVE if negative else \
        schemathesis.GenerationMode.POSITIVE
    return operation(path, method).as_strategy(generation_mode=mode)


def _request_fields(name: str) -> set[str]:
    """The property names of a request schema, through its ``allOf`` parts."""
    schemas = load_spec()["components"]["schemas"]
    found: set[str] = set()
    todo = [schemas[name]]
    while todo:
        node = todo.pop()
        found |= set(node.get("properties", {}))
        todo += [schemas[part["$ref"].rsplit("/", 1)[1]] if "$ref" in part else part
                 for part in node.get("allOf", [])]
    return found


def tame(body: Any, path: str = "/chat/completions", stream: bool = False) -> Any:
    """``body`` with the local model and capped counts (other fields untouched).

    ``stream`` makes it a streamed request (generated bodies rarely are).
    """
    if not isinstance(body, dict):
        return body
    body = dict(body)
    if stream:
        body["stream"] = True
    if "model" in body:
        body["model"] = "local"
    if path.startswith("/responses"):
        # The spec allows any extra key, OpenAI (and the engine) refuse unknown ones: drop
        # them; and 'input' is optional only because a stored prompt or conversation can
        # stand for it, which the engine has not: give one when nothing else is there.
        named = _request_fields(REQUEST_SCHEMA[path])
        body = {k: v for k, v in body.items() if k in named}
        if body.get("input") is None and body.get("instructions") is None:
            body["input"] = "Say hello."
    if path == "/responses":
        if body.get("max_output_tokens") is None:
            body["max_output_tokens"] = CAPS["max_output_tokens"]
    elif path.startswith("/responses"):
        pass  # counted, never generated
    elif body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body["max_tokens"] = CAPS["max_tokens"]  # else the model may write 8,192 tokens
    for key, cap in CAPS.items():
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > cap:
            body[key] = cap
    if isinstance(body.get("best_of"), int | float) and isinstance(body.get("n"), int | float):
        body["best_of"] = max(body["best_of"], min(body["n"], CAPS["best_of"]))
    return body


@dataclass
class Tally:
    """What a run saw: answers by status, and every rule broken."""

    statuses: Counter[int] = field(default_factory=Counter)
    broken: list[str] = field(default_factory=list)

    def line(self) -> str:
        shown = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        return f"{sum(self.statuses.values())} requests ({shown}); {len(self.broken)} broken"


def _plain(value: Any) -> Any:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def send(client: httpx.Client, path: str, method: str, body: Any) -> httpx.Response:
    """One request as a client would send it (a JSON body, or none for a GET)."""
    if method == "GET":
        return client.get(path)
    content = body if isinstance(body, bytes) else b"" if body is None else \
        json.dumps(body, default=_plain).encode()  # NaN goes out as NaN: a bad request
    return client.post(path, content=content, headers={"Content-Type": "application/json"})


def run_cases(url: str, path: str, method: str, negative: bool, examples: int, *,
              derandomize: bool, stream: bool = False) -> Tally:
    """Send ``examples`` generated requests to the server at ``url``; what it answered.

    ``stream``: every request asks for a stream.
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    tally = Tally()
    cases = strategy(path, method, negative)

    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data: Any) -> None:
        case = data.draw(cases)
        body = tame(case.body, path, stream) if method == "POST" else None
        with httpx.Client(base_url=url, timeout=httpx.Timeout(60, connect=5)) as client:
            try:
                response = send(client, path, method, body)
            except httpx.TimeoutException:
                shown = json.dumps(body, default=_plain)[:400]
                tally.broken.append(f"no answer within 60 s for {shown}")
                return
        tally.statuses[response.status_code] += 1
        problem = judge(path, body, response)
        if problem:
            tally.broken.append(problem)

    run()
    return tally


def judge(path: str, body: Any, response: httpx.Response) -> str | None:
    """The rule an answer breaks (with the request, to reproduce), or ``None``."""
    shown = json.dumps(body, default=_plain)[:400]
    status = response.status_code
    try:
        if status >= 500:
            return f"{status} for {shown}: {response.text[:300]}"
        if status >= 400:
            validate(response.json(), "ErrorResponse")
            return None
        if status != 200:
            return f"unexpected {status} for {shown}"
        if response.headers.get("content-type", "").startswith("text/event-stream") and \
                path == "/responses":
            return _judge_events(shown, response.text)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            datas = [ln[6:] for ln in response.text.splitlines() if ln.startswith("data: ")]
            if not datas or datas[-1] != "[DONE]":
                return f"stream without [DONE] for {shown}: {response.text[-300:]}"
            for data in datas[:-1]:
                chunk = json.loads(data)
                if "error" in chunk:
                    return f"in-stream error for {shown}: {data[:300]}"
                if path == "/completions":
                    # The spec shares this schema with whole answers and allows only a
                    # string finish_reason; OpenAI streams null until the last chunk.
                    for choice in chunk.get("choices", []):
                        if choice.get("finish_reason") is None:
                            choice["finish_reason"] = "stop"
                validate(chunk, CHUNK_SCHEMA[path])
            return None
        validate(response.json(), ANSWER_SCHEMA[path])
        return None
    except (ValueError, KeyError) as exc:
        return f"{status} not JSON for {shown}: {exc}: {response.text[:300]}"
    except Exception as exc:  # a jsonschema.ValidationError: say where
        return f"{status} off the spec for {shown}: {str(exc)[:500]}"


def _judge_events(shown: str, text: str) -> str | None:
    """A Responses stream: named events, each valid, numbered 0, 1, ..., ending finished."""
    blocks = [b for b in text.split("\n\n") if b.strip()]
    events = []
    for block in blocks:
        lines = dict(ln.split(": ", 1) for ln in block.splitlines() if ": " in ln)
        event = json.loads(lines.get("data", "null"))
        if not isinstance(event, dict) or lines.get("event") != event.get("type"):
            return f"event line does not name the event for {shown}: {block[:300]}"
        if event["type"] in _FAILED_EVENTS:
            return f"in-stream failure for {shown}: {block[:300]}"
        validate(event, "ResponseStreamEvent")
        events.append(event)
    if [e["sequence_number"] for e in events] != list(range(len(events))):
        return f"sequence numbers out of order for {shown}"
    if not events or events[-1]["type"] not in ("response.completed", "response.incomplete"):
        return f"stream not finished for {shown}: {text[-300:]}"
    return None
