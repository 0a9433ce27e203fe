"""The fake server's Files and Batch APIs (tests/fakebatches.py) against OpenAI's spec.

Every answer is validated against the vendored schemas (``OpenAIFile``,
``DeleteFileResponse``, ``Batch``, ``ListBatchesResponse``, ``ErrorResponse``);
request lines against the endpoint's request schema and output bodies against
its response schema. The spec no longer carries the batch line envelopes, so
:data:`OUTPUT_LINE` writes down the documented one.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fakebatches import WINDOW, Clock
from fakeserver import Behaviour
from lazy import lazy
from openapi_schema import validate

jsonschema = lazy("jsonschema")  # ~2 s to import: not at collection

CHAT, RESPONSES = "/v1/chat/completions", "/v1/responses"

#: OpenAI's documented batch output line (``BatchRequestOutput`` in older specs).
OUTPUT_LINE = {
    "type": "object", "required": ["id", "custom_id", "response", "error"],
    "properties": {
        "id": {"type": "string"}, "custom_id": {"type": "string"},
        "response": {"anyOf": [{"type": "null"}, {
            "type": "object", "required": ["status_code", "request_id", "body"],
            "properties": {"status_code": {"type": "integer"}, "request_id": {"type": "string"},
                           "body": {"type": "object"}}}]},
        "error": {"anyOf": [{"type": "null"}, {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}]},
    },
}


def chat_line(i: int, url: str = CHAT, **body: object) -> dict:
    return {"custom_id": f"row-{i}", "method": "POST", "url": url,
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q {i}"}],
                     **body}}


def responses_line(i: int) -> dict:
    return {"custom_id": f"row-{i}", "method": "POST", "url": RESPONSES,
            "body": {"model": "gpt-4.1-mini", "input": f"q {i}"}}


def jsonl(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


@pytest.fixture
def api(fake_server):
    with httpx.Client(base_url=fake_server.url, timeout=5) as http:
        yield http


def upload(api: httpx.Client, content: bytes, purpose: str = "batch") -> httpx.Response:
    return api.post("/files", data={"purpose": purpose},
                    files={"file": ("in.jsonl", content, "application/jsonl")})


def start(api: httpx.Client, lines: list[dict], endpoint: str = CHAT, **extra: object) -> dict:
    r = upload(api, jsonl(lines))
    assert r.status_code == 200, r.text
    r = api.post("/batches", json={"input_file_id": r.json()["id"], "endpoint": endpoint,
                                   "completion_window": "24h", **extra})
    assert r.status_code == 200, r.text
    validate(r.json(), "Batch")
    return r.json()


def get(api: httpx.Client, batch_id: str) -> dict:
    r = api.get(f"/batches/{batch_id}")
    assert r.status_code == 200, r.text
    validate(r.json(), "Batch")
    return r.json()


def lines_of(api: httpx.Client, file_id: str) -> list[dict]:
    r = api.get(f"/files/{file_id}/content")
    assert r.status_code == 200
    out = [json.loads(x) for x in r.content.splitlines()]
    for line in out:
        jsonschema.validate(line, OUTPUT_LINE)
    return out


def refused(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    validate(r.json(), "ErrorResponse")
    return r.json()["error"]["message"]


def test_file_routes_follow_the_spec(api):
    content = jsonl([chat_line(i) for i in range(3)])
    r = upload(api, content)
    assert r.status_code == 200, r.text
    f = r.json()
    validate(f, "OpenAIFile")
    assert (f["purpose"], f["bytes"], f["filename"]) == ("batch", len(content), "in.jsonl")
    got = api.get(f"/files/{f['id']}")
    validate(got.json(), "OpenAIFile")
    assert got.json() == f
    assert api.get(f"/files/{f['id']}/content").content == content
    gone = api.delete(f"/files/{f['id']}")
    validate(gone.json(), "DeleteFileResponse")
    assert gone.json() == {"id": f["id"], "object": "file", "deleted": True}
    assert f["id"] in refused(api.get(f"/files/{f['id']}"), 404)


def test_request_lines_are_the_endpoints_requests():
    for line in (chat_line(0), chat_line(1, max_tokens=3)):
        validate(line["body"], "CreateChatCompletionRequest")
    validate(responses_line(0)["body"], "CreateResponse")


def test_a_chat_batch_lives_on_the_clock(api, fake_server):
    store = fake_server.batches
    b = start(api, [chat_line(i) for i in range(4)], metadata={"run": "t1"})
    assert b["status"] == "validating" and b["metadata"] == {"run": "t1"}
    assert b["expires_at"] == b["created_at"] + WINDOW
    seen = [b["status"]]
    for _ in range(20):  # bounded: each step is a tenth of the work
        store.clock.advance(store.run_s / 10)
        b = get(api, b["id"])
        if b["status"] != seen[-1]:
            seen.append(b["status"])
        if b["status"] == "completed":
            break
    assert seen == ["validating", "in_progress", "finalizing", "completed"]
    assert b["request_counts"] == {"total": 4, "completed": 4, "failed": 0}
    assert (b["created_at"] <= b["in_progress_at"] <= b["finalizing_at"] <= b["completed_at"])
    assert "error_file_id" not in b and b["usage"]["total_tokens"] > 0
    out = lines_of(api, b["output_file_id"])
    assert [x["custom_id"] for x in out] == [f"row-{i}" for i in range(4)]
    for i, x in enumerate(out):
        assert x["response"]["status_code"] == 200 and x["error"] is None
        validate(x["response"]["body"], "CreateChatCompletionResponse")
        # Answered as the chat route answers it.
        assert x["response"]["body"]["choices"][0]["message"]["content"] == f"echo: q {i}"
    f = api.get(f"/files/{b['output_file_id']}").json()
    validate(f, "OpenAIFile")
    assert f["purpose"] == "batch_output"


def test_requests_are_answered_while_in_progress(api, fake_server):
    store = fake_server.batches
    b = start(api, [chat_line(i) for i in range(10)])
    store.clock.advance(store.validate_s + store.run_s / 2)
    b = get(api, b["id"])
    assert b["status"] == "in_progress"
    assert b["request_counts"] == {"total": 10, "completed": 5, "failed": 0}


def test_a_responses_batch(api, fake_server):
    b = start(api, [responses_line(i) for i in range(2)], RESPONSES)
    fake_server.batches.clock.advance(2 * 3600)
    b = get(api, b["id"])
    assert b["status"] == "completed" and b["endpoint"] == RESPONSES
    for i, x in enumerate(lines_of(api, b["output_file_id"])):
        validate(x["response"]["body"], "Response")
        assert x["custom_id"] == f"row-{i}"
        assert x["response"]["body"]["output"][0]["content"][0]["text"] == f"echo: q {i}"


def test_a_time_scale_finishes_a_day_long_batch_in_moments(api, fake_server):
    fake_server.batches.clock = Clock(scale=1e6)  # a fake hour is 3.6 real ms
    b = start(api, [chat_line(0)])
    deadline = time.monotonic() + 5
    while b["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.01)
        b = get(api, b["id"])
    assert b["status"] == "completed"


def test_list_pages_newest_first(api, fake_server):
    ids = [start(api, [chat_line(0)])["id"] for _ in range(5)]
    r = api.get("/batches", params={"limit": 2})
    validate(r.json(), "ListBatchesResponse")
    page = r.json()
    assert [b["id"] for b in page["data"]] == ids[::-1][:2] and page["has_more"] is True
    assert page["last_id"] == ids[3]
    rest = api.get("/batches", params={"after": page["last_id"], "limit": 10}).json()
    validate(rest, "ListBatchesResponse")
    assert [b["id"] for b in rest["data"]] == ids[::-1][2:] and rest["has_more"] is False
    assert "limit" in refused(api.get("/batches", params={"limit": 0}), 400)


def test_cancel_keeps_what_finished(api, fake_server):
    store = fake_server.batches
    b = start(api, [chat_line(i) for i in range(4)])
    store.clock.advance(store.validate_s + store.run_s / 2)
    r = api.post(f"/batches/{b['id']}/cancel")
    validate(r.json(), "Batch")
    assert r.json()["status"] == "cancelling"
    store.clock.advance(store.run_s)  # no more requests run while cancelling
    b = get(api, b["id"])
    assert b["status"] == "cancelled" and b["cancelled_at"] >= b["cancelling_at"]
    assert b["request_counts"] == {"total": 4, "completed": 2, "failed": 0}
    assert [x["custom_id"] for x in lines_of(api, b["output_file_id"])] == ["row-0", "row-1"]
    assert "cancelled" in refused(api.post(f"/batches/{b['id']}/cancel"), 409)


def test_expiry_keeps_what_finished(api, fake_server):
    store = fake_server.batches
    store.run_s = 2 * WINDOW  # too slow: half the lines are done when the window closes
    b = start(api, [chat_line(i) for i in range(4)])
    store.clock.advance(WINDOW + 1)
    b = get(api, b["id"])
    assert b["status"] == "expired" and b["expired_at"] == b["expires_at"]
    assert b["request_counts"] == {"total": 4, "completed": 1, "failed": 3}
    assert [x["custom_id"] for x in lines_of(api, b["output_file_id"])] == ["row-0"]
    errors = lines_of(api, b["error_file_id"])
    assert [(x["custom_id"], x["response"], x["error"]["code"]) for x in errors] == [
        (f"row-{i}", None, "batch_expired") for i in (1, 2, 3)]


def test_partial_failure_goes_to_the_error_file(api, fake_server):
    store = fake_server.batches
    store.fail_ids = {"row-1"}
    bad = chat_line(2)
    del bad["body"]["messages"]  # the chat route answers this with a 400
    b = start(api, [chat_line(0), chat_line(1), bad])
    store.clock.advance(2 * 3600)
    b = get(api, b["id"])
    assert b["status"] == "completed"
    assert b["request_counts"] == {"total": 3, "completed": 1, "failed": 2}
    assert [x["custom_id"] for x in lines_of(api, b["output_file_id"])] == ["row-0"]
    errors = {x["custom_id"]: x["response"] for x in lines_of(api, b["error_file_id"])}
    assert {k: v["status_code"] for k, v in errors.items()} == {"row-1": 500, "row-2": 400}
    for v in errors.values():
        validate(v["body"], "ErrorResponse")
    assert errors["row-2"]["body"]["error"]["param"] == "messages"


def test_a_malformed_output_line(api, fake_server):
    fake_server.batches.malformed_output = True
    b = start(api, [chat_line(0), chat_line(1)])
    fake_server.batches.clock.advance(2 * 3600)
    b = get(api, b["id"])
    first, second = api.get(f"/files/{b['output_file_id']}/content").content.splitlines()
    with pytest.raises(ValueError):
        json.loads(first)
    jsonschema.validate(json.loads(second), OUTPUT_LINE)


def test_validation_fails_a_batch_by_line(api, fake_server):
    lines = [chat_line(0), chat_line(1, url=RESPONSES), chat_line(0)]
    b = start(api, lines)
    fake_server.batches.clock.advance(3600)
    b = get(api, b["id"])
    assert b["status"] == "failed" and "failed_at" in b and "output_file_id" not in b
    assert [(e["line"], e["code"]) for e in b["errors"]["data"]] == [
        (2, "invalid_url"), (3, "duplicate_custom_id")]


@pytest.mark.parametrize(("content", "needle"), [
    (b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
     b"{not json\n", "Line 2 of the file is not valid JSON"),
    (b'{"custom_id": "a"}\n', "Line 1 of the file is missing 'method', 'url', 'body'"),
    (b'{"custom_id": "a", "method": "GET", "url": "/v1/chat/completions", "body": {}}\n',
     "Line 1: 'method' must be 'POST'"),
    (b"\n\n", "empty"),
])
def test_a_bad_upload_is_refused_naming_the_line(api, content, needle):
    assert needle in refused(upload(api, content), 400)


def test_upload_refusals(api, fake_server):
    assert "purpose" in refused(upload(api, jsonl([chat_line(0)]), "fine-tune"), 400)
    assert "multipart" in refused(api.post("/files", json={"purpose": "batch"}), 400)
    fake_server.batches.max_upload_bytes = 100
    assert "too large" in refused(upload(api, jsonl([chat_line(0)])), 413)
    assert fake_server.batches.files == {}


def test_a_large_upload_is_read_whole(api):
    lines = [chat_line(i) for i in range(12_000)]  # ~1.5 MB: past aiohttp's 1 MiB default
    content = jsonl(lines)
    r = upload(api, content)
    assert r.status_code == 200, r.text
    assert r.json()["bytes"] == len(content) > 1024 * 1024


@pytest.mark.parametrize(("body", "param"), [
    ({"endpoint": CHAT, "completion_window": "24h"}, "input_file_id"),
    ({"input_file_id": "file-nope", "endpoint": CHAT, "completion_window": "24h"},
     "input_file_id"),
    ({"input_file_id": "F", "endpoint": "/v1/embeddings", "completion_window": "24h"},
     "endpoint"),
    ({"input_file_id": "F", "endpoint": CHAT, "completion_window": "1h"}, "completion_window"),
])
def test_create_refusals(api, body, param):
    fid = upload(api, jsonl([chat_line(0)])).json()["id"]
    body = {k: fid if v == "F" else v for k, v in body.items()}
    r = api.post("/batches", json=body)
    refused(r, 400)
    assert r.json()["error"]["param"] == param


def test_unknown_batch_and_planned_faults(api, fake_server):
    assert "batch_nope" in refused(api.get("/batches/batch_nope"), 404)
    fake_server.plan(Behaviour(status=503))
    refused(api.get("/batches"), 503)
    assert api.get("/batches").status_code == 200
