"""The provider's Files and Batch APIs: the primitives batch evaluation is built on.

A batch is a JSONL file of requests (one per line, each with a ``custom_id``)
uploaded with purpose ``batch``, then run by the provider within a 24 h
window at about half the price::

    batches = client.batches()                        # the client's provider
    f = await batches.upload(b"".join(request_line(...) for ...))
    b = await batches.create(f.id, "/v1/chat/completions")
    b = await batches.retrieve(b.id)                  # poll until b.done
    lines = parse_output(await batches.content(b.output_file_id))

Each call is one HTTP request with no retries: creating a batch twice costs
twice, so what to retry (polling, downloads) is the caller's choice. Errors are
gptmagic's (:mod:`gptmagic.errors`): an HTTP error status is its
:class:`~gptmagic.errors.APIStatusError` (an upload the provider refuses names
the line, in the provider's words), an answer that is not the object the spec
promises is a :class:`~gptmagic.errors.MalformedResponseError`. Nothing here
holds the key: it goes from the provider's ``auth_headers`` straight into the
request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gptmagic.client.attempt import MAX_ERROR_BYTES, json_or_text, read_small
from gptmagic.client.config import Provider
from gptmagic.client.http import HTTP, multipart
from gptmagic.errors import MalformedResponseError, RequestError

__all__ = ["Batch", "BatchError", "BatchFile", "BatchPage", "Batches", "ENDPOINTS", "FINAL",
           "MAX_FILE_BYTES", "OutputLine", "RequestCounts", "STATUSES", "iter_output",
           "parse_output", "read_output", "request_line"]

#: The endpoints gptmagic batches (the spec allows more; these are the ones it reads).
ENDPOINTS = ("/v1/chat/completions", "/v1/responses")
#: Every status a batch can have (the spec's ``Batch.status``), in life order.
STATUSES = ("validating", "failed", "in_progress", "finalizing", "completed", "expired",
            "cancelling", "cancelled")
#: Statuses a batch never leaves.
FINAL = frozenset({"failed", "completed", "expired", "cancelled"})
#: The most a download reads by default: OpenAI's largest file (512 MB).
MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """How many of a batch's requests there are, and how many finished well or failed."""

    total: int
    completed: int
    failed: int


@dataclass(frozen=True, slots=True)
class BatchError:
    """Why a batch failed validation: one problem, with the input line it is on."""

    code: str | None
    message: str | None
    line: int | None = None
    param: str | None = None


@dataclass(frozen=True, slots=True)
class BatchFile:
    """An uploaded (or provider-written) file."""

    id: str
    filename: str
    bytes: int
    purpose: str
    created_at: int
    expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch as the provider last described it (times are Unix seconds)."""

    id: str
    status: str
    endpoint: str
    input_file_id: str
    request_counts: RequestCounts
    created_at: int
    expires_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed_at: int | None = None
    model: str | None = None
    errors: tuple[BatchError, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict, repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """True once the status is final (:data:`FINAL`): nothing more will change."""
        return self.status in FINAL


@dataclass(frozen=True, slots=True)
class BatchPage:
    """One page of ``GET /batches``, newest first; pass ``last_id`` as ``after`` for more."""

    batches: tuple[Batch, ...]
    has_more: bool
    last_id: str | None


@dataclass(frozen=True, slots=True)
class OutputLine:
    """One line of a batch's output or error file.

    ``status_code`` and ``body`` are the request's HTTP answer (``body`` the
    same JSON the endpoint answers online); ``error`` is set instead when the
    request never ran (``batch_expired``, ``batch_cancelled``).
    """

    custom_id: str
    status_code: int | None
    body: Any = field(repr=False)
    error: dict[str, Any] | None = None
    line: int = 0


def request_line(custom_id: str, endpoint: str, body: Mapping[str, Any]) -> bytes:
    """One line of a batch input file (JSONL, ending in a newline)."""
    _check_endpoint(endpoint)
    if not isinstance(custom_id, str) or not custom_id:
        raise RequestError(f"custom_id must be a non-empty string, got {custom_id!r}",
                           param="custom_id")
    line = {"custom_id": custom_id, "method": "POST", "url": endpoint, "body": dict(body)}
    return json.dumps(line, ensure_ascii=False).encode() + b"\n"


def parse_output(content: bytes, *, where: str = "batch output") -> list[OutputLine]:
    """The lines of an output or error file; a line that is not one is an error naming it."""
    lines, problems = read_output(content, where=where)
    if problems:
        raise problems[0]
    return lines


def read_output(content: bytes, *, where: str = "batch output"
                ) -> tuple[list[OutputLine], list[MalformedResponseError]]:
    """The lines of an output or error file that are output lines, and what is wrong with
    each one that is not (naming its line): one bad line costs that line, not the file."""
    out: list[OutputLine] = []
    problems: list[MalformedResponseError] = []
    for line in iter_output(content, where=where):
        if isinstance(line, MalformedResponseError):
            problems.append(line)
        else:
            out.append(line)
    return out, problems


def iter_output(content: bytes, *, where: str = "batch output"
                ) -> Iterator[OutputLine | MalformedResponseError]:
    """:func:`read_output` one line at a time (a 50,000-line file's bodies need not all
    be held at once): each output line, or what is wrong with it."""
    for n, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as e:
            yield MalformedResponseError(f"{where} line {n} is not JSON ({e}): {raw[:80]!r}")
            continue
        try:
            yield _output_line(obj, n, where)
        except MalformedResponseError as e:
            yield e


def _output_line(obj: Any, n: int, where: str) -> OutputLine:
    if not isinstance(obj, dict) or not isinstance(obj.get("custom_id"), str):
        raise MalformedResponseError(f"{where} line {n} has no 'custom_id' string")
    response, error = obj.get("response"), obj.get("error")
    if response is None and not isinstance(error, dict):
        raise MalformedResponseError(
            f"{where} line {n} ({obj['custom_id']!r}) has neither a 'response' nor an 'error'")
    if response is not None and (not isinstance(response, dict) or not isinstance(
            response.get("status_code"), int)):
        raise MalformedResponseError(
            f"{where} line {n} ({obj['custom_id']!r}): 'response' has no 'status_code'")
    return OutputLine(custom_id=obj["custom_id"],
                      status_code=None if response is None else response["status_code"],
                      body=None if response is None else response.get("body"),
                      error=error if isinstance(error, dict) else None, line=n)


def _check_endpoint(endpoint: str) -> None:
    if endpoint not in ENDPOINTS:
        raise RequestError(f"endpoint must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}",
                           param="endpoint")


class Batches:
    """The Files and Batch APIs of one provider, over a client's connection pool.

    Made by :meth:`gptmagic.client.client.Client.batches`. The embedded model
    has no batch API: a ``local`` provider is refused here, before any request.
    """

    def __init__(self, http: HTTP, provider: Provider) -> None:
        if provider.kind == "local":
            raise RequestError(
                "the embedded model has no Batch API; batch with a hosted provider (OpenAI) "
                "or run the rows online", param="batch")
        self.http = http
        self.provider = provider

    def __repr__(self) -> str:
        return f"<gptmagic.Batches provider={self.provider.name!r}>"

    # -- files ------------------------------------------------------------------------------

    async def upload(self, content: bytes, *, filename: str = "batch.jsonl") -> BatchFile:
        """``POST /files``: upload a JSONL batch input file (purpose ``batch``)."""
        if not isinstance(content, bytes | bytearray) or not content.strip():
            raise RequestError("a batch file is JSONL bytes, one request per line; got "
                               f"{type(content).__name__} of length {len(content)}",
                               param="content")
        body, ctype = multipart({"purpose": "batch"}, "file", filename, bytes(content),
                                "application/jsonl")
        return _file(await self._json("POST", "files", body=body, content_type=ctype))

    async def file(self, file_id: str) -> BatchFile:
        """``GET /files/{id}``: a file's description."""
        return _file(await self._json("GET", f"files/{_id(file_id)}"))

    async def content(self, file_id: str, *, limit: int = MAX_FILE_BYTES) -> bytes:
        """``GET /files/{id}/content``: the file's bytes, refusing more than ``limit``."""
        return await self._raw("GET", f"files/{_id(file_id)}/content", limit=limit)

    async def delete_file(self, file_id: str) -> bool:
        """``DELETE /files/{id}``: True when the provider says it is deleted."""
        data = await self._json("DELETE", f"files/{_id(file_id)}")
        return data.get("deleted") is True

    # -- batches ----------------------------------------------------------------------------

    async def create(self, input_file_id: str, endpoint: str, *,
                     metadata: Mapping[str, str] | None = None,
                     completion_window: str = "24h") -> Batch:
        """``POST /batches``: run the requests of an uploaded file.

        Azure OpenAI takes the endpoint without its ``/v1`` (``/chat/completions``,
        as Microsoft's Global Batch guide sends it; the lines keep theirs) and may
        answer with no ``endpoint`` in the batch: it is then ``""``.
        """
        _check_endpoint(endpoint)
        sent = endpoint.removeprefix("/v1") if self.provider.kind == "azure" else endpoint
        body: dict[str, Any] = {"input_file_id": _id(input_file_id), "endpoint": sent,
                                "completion_window": completion_window}
        if metadata:
            body["metadata"] = dict(metadata)
        payload = json.dumps(body, ensure_ascii=False).encode()
        return _batch(await self._json("POST", "batches", body=payload))

    async def retrieve(self, batch_id: str) -> Batch:
        """``GET /batches/{id}``: the batch now."""
        return _batch(await self._json("GET", f"batches/{_id(batch_id)}"))

    async def list(self, *, after: str | None = None, limit: int = 20) -> BatchPage:
        """``GET /batches``: one page, newest first (``limit`` 1 to 100)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise RequestError(f"limit must be a whole number from 1 to 100, got {limit!r}",
                               param="limit")
        query = {"limit": str(limit)} | ({"after": _id(after)} if after else {})
        data = await self._json("GET", "batches", query=query)
        items = data.get("data")
        if not isinstance(items, list):
            raise MalformedResponseError("GET /batches: the answer has no 'data' list")
        last = data.get("last_id")
        return BatchPage(tuple(_batch(b) for b in items), data.get("has_more") is True,
                         last if isinstance(last, str) else None)

    async def cancel(self, batch_id: str) -> Batch:
        """``POST /batches/{id}/cancel``: stop it; what finished stays in its output."""
        return _batch(await self._json("POST", f"batches/{_id(batch_id)}/cancel"))

    # -- machinery --------------------------------------------------------------------------

    async def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        raw = await self._raw(method, path, limit=MAX_ERROR_BYTES, **kw)
        data = json_or_text(raw)
        if not isinstance(data, dict):
            raise MalformedResponseError(f"{method} /{path}: the answer is not a JSON object")
        return data

    async def _raw(self, method: str, path: str, *, limit: int,
                   query: dict[str, str] | None = None, body: bytes | None = None,
                   content_type: str | None = None) -> bytes:
        url, params = self.provider.endpoint(path, "batch")
        raw = await read_small(
            self.http, method, url, params={**params, **(query or {})},
            headers=self.provider.auth_headers(prompt=False), body=body,
            content_type=content_type, limit=limit,
            too_large="refused (raise limit= to read a larger file)")
        return raw


def _id(value: str | None) -> str:
    """An id as it goes into a URL path: a plain token, nothing that changes the path."""
    if not isinstance(value, str) or not value or any(c in value for c in "/?#% "):
        raise RequestError(f"not a file or batch id: {value!r}", param="id")
    return value


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _need(data: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedResponseError(
            f"{what} has no {key!r} of type {kind.__name__} (got {value!r:.60})")
    return value


def _file(data: dict[str, Any]) -> BatchFile:
    what = f"file {data.get('id')!r}"
    return BatchFile(id=_need(data, "id", str, what), filename=str(data.get("filename") or ""),
                     bytes=_need(data, "bytes", int, what),
                     purpose=_need(data, "purpose", str, what),
                     created_at=_need(data, "created_at", int, what),
                     expires_at=_int(data, "expires_at"))


def _batch(data: Any) -> Batch:
    if not isinstance(data, dict):
        raise MalformedResponseError(f"a batch is a JSON object, got {type(data).__name__}")
    what = f"batch {data.get('id')!r}"
    status = _need(data, "status", str, what)
    if status not in STATUSES:
        raise MalformedResponseError(f"{what} has status {status!r}, which is none of "
                                     f"{', '.join(STATUSES)}")
    counts = data.get("request_counts") or {"total": 0, "completed": 0, "failed": 0}
    if not isinstance(counts, dict):
        raise MalformedResponseError(f"{what}: 'request_counts' is not an object")
    listed = data.get("errors")
    errors = listed.get("data") if isinstance(listed, dict) else None
    errors = errors if isinstance(errors, list) else []
    metadata = data.get("metadata")
    return Batch(
        id=_need(data, "id", str, what), status=status,
        # Azure answers with "endpoint": null (it reads the endpoint from the lines).
        endpoint="" if data.get("endpoint") is None else _need(data, "endpoint", str, what),
        input_file_id=_need(data, "input_file_id", str, what),
        request_counts=RequestCounts(*(_need(counts, k, int, f"{what} request_counts")
                                       for k in ("total", "completed", "failed"))),
        created_at=_need(data, "created_at", int, what), expires_at=_int(data, "expires_at"),
        output_file_id=data.get("output_file_id") or None,
        error_file_id=data.get("error_file_id") or None,
        completed_at=_int(data, "completed_at"), model=data.get("model") or None,
        errors=tuple(BatchError(e.get("code"), e.get("message"), _int(e, "line"),
                                e.get("param")) for e in errors if isinstance(e, dict)),
        metadata=dict(metadata) if isinstance(metadata, dict) else {}, raw=data)
