"""The client's batch primitives (gptmagic/client/batches.py) over real HTTP to the fake server.

The fake's batches run on a clock the test advances (tests/fakebatches.py), so
a "24 h" batch completes without waiting.
"""

from __future__ import annotations

import json
import pickle
import re

import pytest
from fakebatches import WINDOW
from fakeserver import Behaviour
from openapi_schema import validate

from gptmagic import Client, Provider
from gptmagic.client.batches import (
    Batch,
    BatchError,
    Batches,
    OutputLine,
    RequestCounts,
    parse_output,
    read_output,
    request_line,
)
from gptmagic.core.response import parse_response
from gptmagic.errors import (
    APIStatusError,
    BadRequestError,
    ConflictError,
    MalformedResponseError,
    NotFoundError,
    RequestError,
)

KEY = "sk-fake-batches-0123456789abcdef"
CHAT = "/v1/chat/completions"


@pytest.fixture
def prov(fake_server, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", KEY)
    return Provider(name="fake", kind="openai", base_url=fake_server.url,
                    api_key_env="FAKE_KEY", default_model="gpt-4o-mini")


@pytest.fixture(params=["aiohttp", "httpx"])
async def batches(prov, request):
    async with Client(prov, transport=request.param) as c:
        yield c.batches()


def chat(i: int, **extra: object) -> bytes:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {i}"}]}
    return request_line(f"row-{i}", CHAT, {**body, **extra})


async def submit(batches: Batches, content: bytes) -> Batch:
    f = await batches.upload(content)
    return await batches.create(f.id, CHAT, metadata={"run": "test"})


async def test_round_trip_of_three_chat_requests(batches, fake_server):
    content = b"".join(chat(i) for i in range(3))
    for line in content.splitlines():
        validate(json.loads(line)["body"], "CreateChatCompletionRequest")
    f = await batches.upload(content, filename="three.jsonl")
    assert (f.filename, f.bytes, f.purpose) == ("three.jsonl", len(content), "batch")
    b = await batches.create(f.id, CHAT, metadata={"run": "rt"})
    assert (b.status, b.done, b.input_file_id) == ("validating", False, f.id)
    assert b.metadata == {"run": "rt"} and b.expires_at == b.created_at + WINDOW
    fake_server.batches.clock.advance(2 * 3600)
    b = await batches.retrieve(b.id)
    assert (b.status, b.done) == ("completed", True)
    assert b.request_counts == RequestCounts(total=3, completed=3, failed=0)
    assert b.error_file_id is None and b.completed_at is not None
    lines = parse_output(await batches.content(b.output_file_id))
    assert [x.custom_id for x in lines] == ["row-0", "row-1", "row-2"]
    for i, x in enumerate(lines):
        assert x.status_code == 200 and x.error is None
        validate(x.body, "CreateChatCompletionResponse")
        result = parse_response("chat", x.body)
        assert result.text == f"echo: question {i}"
        assert result.usage is not None and result.usage.completion_tokens == 3


async def test_upload_on_the_wire(batches, fake_server):
    await batches.upload(chat(0))
    (rec,) = fake_server.requests
    assert (rec.method, rec.path) == ("POST", "/v1/files")
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    assert rec.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="purpose"\r\n\r\nbatch\r\n' in rec.body
    assert b'filename="batch.jsonl"' in rec.body and chat(0) in rec.body


async def test_file_retrieve_download_and_delete(batches):
    f = await batches.upload(chat(0) + chat(1))
    assert await batches.file(f.id) == f
    assert await batches.content(f.id) == chat(0) + chat(1)
    with pytest.raises(MalformedResponseError, match="limit="):
        await batches.content(f.id, limit=10)
    assert await batches.delete_file(f.id) is True
    with pytest.raises(NotFoundError, match=f.id):
        await batches.file(f.id)


async def test_list_pages_and_cancel(batches, fake_server):
    made = [(await submit(batches, chat(0))).id for _ in range(3)]
    page = await batches.list(limit=2)
    assert [b.id for b in page.batches] == made[::-1][:2] and page.has_more
    rest = await batches.list(after=page.last_id)
    assert [b.id for b in rest.batches] == made[:1] and not rest.has_more
    cancelled = await batches.cancel(made[0])
    assert cancelled.status == "cancelling" and not cancelled.done
    fake_server.batches.clock.advance(3600)
    assert (await batches.retrieve(made[0])).status == "cancelled"
    with pytest.raises(ConflictError, match="cancelled"):
        await batches.cancel(made[0])


async def test_cancel_keeps_partial_output(batches, fake_server):
    store = fake_server.batches
    b = await submit(batches, b"".join(chat(i) for i in range(4)))
    store.clock.advance(store.validate_s + store.run_s * 0.75)
    await batches.cancel(b.id)
    store.clock.advance(3600)
    b = await batches.retrieve(b.id)
    assert b.status == "cancelled" and b.request_counts.completed == 3
    lines = parse_output(await batches.content(b.output_file_id))
    assert [x.custom_id for x in lines] == ["row-0", "row-1", "row-2"]


async def test_expiry_keeps_what_completed(batches, fake_server):
    fake_server.batches.run_s = 1.5 * WINDOW  # a third of the work is left at expiry
    b = await submit(batches, b"".join(chat(i) for i in range(2)))
    fake_server.batches.clock.advance(WINDOW)
    b = await batches.retrieve(b.id)
    assert (b.status, b.done) == ("expired", True)
    assert b.request_counts == RequestCounts(total=2, completed=1, failed=1)
    (done,) = parse_output(await batches.content(b.output_file_id))
    (late,) = parse_output(await batches.content(b.error_file_id), where="batch errors")
    assert done.custom_id == "row-0" and parse_response("chat", done.body).text
    assert late == OutputLine("row-1", None, None, late.error, 1)
    assert late.error is not None and late.error["code"] == "batch_expired"


async def test_partial_failure(batches, fake_server):
    fake_server.batches.fail_ids = {"row-1"}
    missing = request_line("row-2", CHAT, {"model": "gpt-4o-mini"})  # no messages: a 400
    b = await submit(batches, chat(0) + chat(1) + missing)
    fake_server.batches.clock.advance(2 * 3600)
    b = await batches.retrieve(b.id)
    assert b.status == "completed"
    assert b.request_counts == RequestCounts(total=3, completed=1, failed=2)
    failed = parse_output(await batches.content(b.error_file_id))
    assert [(x.custom_id, x.status_code) for x in failed] == [("row-1", 500), ("row-2", 400)]
    assert failed[1].body["error"]["param"] == "messages"


async def test_a_malformed_output_line_is_named(batches, fake_server):
    fake_server.batches.malformed_output = True
    b = await submit(batches, chat(0) + chat(1))
    fake_server.batches.clock.advance(2 * 3600)
    content = await batches.content((await batches.retrieve(b.id)).output_file_id)
    with pytest.raises(MalformedResponseError, match="batch output line 1 is not JSON"):
        parse_output(content)


@pytest.mark.parametrize(("content", "message"), [
    (b'{"custom_id": "x", "response": {"body": {}}, "error": null}\n',
     "line 1 .'x'.: 'response' has no 'status_code'"),
    (b'\n{"response": null}\n', "line 2 has no 'custom_id'"),
    (b'{"custom_id": "x", "response": null, "error": null}\n', "neither a 'response' nor"),
])
def test_parse_output_refuses_what_is_not_an_output_line(content, message):
    with pytest.raises(MalformedResponseError, match=message):
        parse_output(content)
    lines, problems = read_output(content)  # the lenient reader: the line is named, not fatal
    assert lines == [] and len(problems) == 1 and re.search(message, str(problems[0]))


def test_read_output_keeps_the_good_lines_around_a_bad_one():
    good = b'{"custom_id": "a", "response": {"status_code": 200, "body": {}}, "error": null}\n'
    lines, problems = read_output(good + b'{"custom_id": "b", "resp\n' + good, where="out")
    assert [(x.custom_id, x.line) for x in lines] == [("a", 1), ("a", 3)]
    assert [str(p)[:21] for p in problems] == ["out line 2 is not JSO"]


async def test_validation_failure_names_lines(batches, fake_server):
    wrong = request_line("row-1", "/v1/responses", {"model": "gpt-4o-mini"})
    b = await submit(batches, chat(0) + wrong + chat(2, model="gpt-4.1"))
    fake_server.batches.clock.advance(3600)
    b = await batches.retrieve(b.id)
    assert (b.status, b.done, b.output_file_id) == ("failed", True, None)
    assert [(e.line, e.code) for e in b.errors] == [(2, "invalid_url"), (3, "mismatched_model")]
    assert isinstance(b.errors[0], BatchError) and "does not match" in str(b.errors[0].message)


async def test_an_upload_refused_says_which_line(batches, fake_server):
    with pytest.raises(BadRequestError, match="Line 2 of the file is not valid JSON") as e:
        await batches.upload(chat(0) + b"{oops\n")
    assert e.value.status_code == 400
    fake_server.batches.max_upload_bytes = 50
    with pytest.raises(APIStatusError, match="HTTP 413 .*too large") as e2:
        await batches.upload(chat(0))
    assert e2.value.status_code == 413


async def test_a_malformed_batch_answer(batches, fake_server):
    fake_server.plan(Behaviour(body={"id": "b1", "object": "batch", "status": "sleeping"}),
                     Behaviour(body=["not", "an", "object"]))
    with pytest.raises(MalformedResponseError, match="status 'sleeping'"):
        await batches.retrieve("b1")
    with pytest.raises(MalformedResponseError, match="not a JSON object"):
        await batches.retrieve("b1")


async def test_bad_arguments_are_refused_before_sending(batches, fake_server):
    with pytest.raises(RequestError, match="endpoint must be one of"):
        await batches.create("file-1", "/v1/embeddings")
    with pytest.raises(RequestError, match="limit must be"):
        await batches.list(limit=0)
    with pytest.raises(RequestError, match="not a file or batch id"):
        await batches.retrieve("../files")
    with pytest.raises(RequestError, match="JSONL bytes"):
        await batches.upload(b"  ")
    with pytest.raises(RequestError, match="custom_id"):
        request_line("", CHAT, {})
    assert fake_server.requests == []


async def test_the_key_is_in_no_repr_or_error(batches, fake_server):
    b = await submit(batches, chat(0))
    fake_server.plan(Behaviour(status=401))
    with pytest.raises(APIStatusError) as e:
        await batches.retrieve(b.id)
    texts = [repr(batches), repr(b), str(b), str(e.value), repr(e.value),
             repr(pickle.loads(pickle.dumps(e.value)).__dict__)]
    assert all(KEY not in t for t in texts)
    assert "fake" in repr(batches)


async def test_the_embedded_model_has_no_batch_api():
    async with Client(Provider(name="here", kind="local")) as c:
        with pytest.raises(RequestError, match="embedded model has no Batch API"):
            c.batches()


async def test_azure_uses_its_v1_paths(fake_server, monkeypatch):
    monkeypatch.setenv("AZ_KEY", KEY)
    az = Provider(name="az", kind="azure", base_url=fake_server.url.removesuffix("/v1"),
                  api_key_env="AZ_KEY", api_version="2024-10-21")
    async with Client(az) as c:
        f = await c.batches().upload(chat(0))
        b = await c.batches().create(f.id, CHAT)
        fake_server.batches.clock.advance(2 * 3600)
        b = await c.batches().retrieve(b.id)
    paths = [(r.path, r.query, r.headers.get("api-key")) for r in fake_server.requests]
    assert paths == [("/openai/v1/files", {}, KEY), ("/openai/v1/batches", {}, KEY),
                     (f"/openai/v1/batches/{b.id}", {}, KEY)]
    # Microsoft's guide creates with the endpoint without /v1; Azure answers endpoint null.
    assert fake_server.requests[1].json["endpoint"] == "/chat/completions"
    assert (b.status, b.endpoint, b.request_counts.completed) == ("completed", "", 1)


def test_request_line_is_one_json_line():
    line = chat(7, max_tokens=5)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"custom_id": "row-7", "method": "POST", "url": CHAT, "body": {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "question 7"}],
        "max_tokens": 5}}
