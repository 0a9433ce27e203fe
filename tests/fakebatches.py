"""The fake server's Files and Batch APIs: ``/v1/files`` and ``/v1/batches``.

Per OpenAI's spec (``OpenAIFile``, ``DeleteFileResponse``, ``CreateBatchRequest``,
``Batch``, ``ListBatchesResponse``; tests/test_fakebatches.py validates every
answer). A batch's life runs on a :class:`Clock` the test controls, so a
"24 h" batch takes no real time::

    srv.batches.clock.advance(3600)      # one fake hour later

A batch is ``validating`` for :attr:`Store.validate_s`, then ``in_progress``
while its lines are answered evenly over :attr:`Store.run_s` (each one the
way the server's own chat / responses route answers it, ``custom_id`` kept),
then ``finalizing`` for :attr:`Store.finalize_s`, then ``completed``. State
moves when a request looks at it, from the clock's time, so nothing runs in
the background. Faults:

- partial failure: ``custom_id``s in :attr:`Store.fail_ids` get a 500 error
  line (in the error file); a line the route refuses gets its 400 there too;
- expiry: a ``run_s`` past the 24 h window leaves the batch ``expired`` with
  the lines answered so far, the rest ``batch_expired`` in the error file;
- cancellation: ``cancelling`` for :attr:`Store.cancel_s`, then ``cancelled``
  with the lines answered before the cancel;
- :attr:`Store.malformed_output`: the output file's first line is not JSON;
- an upload refused: a bad JSONL line is a 400 naming the line; a file over
  :attr:`Store.max_upload_bytes` is a 413;
- validation: :attr:`Store.invalid_lines` (line number -> message) fail it, and
  :attr:`Store.batch_errors` (errors of no line: the enqueued token limit);
  so do duplicate ``custom_id``s, a line whose ``url`` is not the
  batch's endpoint, or a line whose ``model`` is not the first line's (one
  model per file, as OpenAI and Azure require), fail the batch (``status:
  failed``, ``errors`` by line).

Azure OpenAI's flavour (paths under ``/openai/v1/``, as the client sends
them): ``endpoint`` is taken without its ``/v1`` (``/chat/completions``, as
Microsoft's Global Batch guide sends it), lines may name their ``url``
either way, and the ``Batch`` object says ``"endpoint": null``, as Azure's does.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fakeserver import _error

__all__ = ["ENDPOINTS", "WINDOW", "Clock", "Store"]

ENDPOINTS = ("/v1/chat/completions", "/v1/responses")
WINDOW = 24 * 3600  # the only completion window, "24h", in seconds
_HOUR = 3600.0

# (status, JSON body) of one request line, from the server's own routes.
Answer = Callable[[str, dict, int], tuple[int, dict]]
Reply = tuple[int, Any, str]  # (status, body, content type)


class Clock:
    """Fake Unix time: real time sped up ``scale`` times, plus whatever the test adds.

    ``scale=0`` (the default) stops it, so only :meth:`advance` moves it.
    """

    def __init__(self, scale: float = 0.0, start: float | None = None) -> None:
        self.scale = scale
        self._start = time.time() if start is None else start
        self._real = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._start + self._offset + (time.monotonic() - self._real) * self.scale

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes = field(repr=False)
    created_at: int

    def body(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content),
                "created_at": self.created_at, "filename": self.filename,
                "purpose": self.purpose, "status": "processed",
                "expires_at": self.created_at + 30 * 24 * 3600}


@dataclass
class _Batch:
    id: str
    endpoint: str
    input_file_id: str
    lines: list[dict] = field(repr=False)
    created_at: float
    metadata: dict[str, str] | None
    status: str = "validating"
    times: dict[str, float] = field(default_factory=dict)  # "in_progress_at", ...
    done: list[tuple[dict, bool]] = field(default_factory=list, repr=False)  # (line, ok)
    errors: list[dict] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    azure: bool = False  # made through Azure's paths: its Batch objects say endpoint null


class Store:
    """Files and batches of one fake server. Attributes are the knobs tests turn."""

    def __init__(self, answer: Answer, clock: Clock | None = None) -> None:
        self.answer = answer
        self.clock = clock or Clock()
        self.validate_s = 0.1 * _HOUR
        self.run_s = 1.0 * _HOUR
        self.finalize_s = 0.1 * _HOUR
        self.cancel_s = 0.1 * _HOUR
        self.max_upload_bytes = 200 * 1024 * 1024
        self.fail_ids: set[str] = set()
        self.invalid_lines: dict[int, str] = {}  # line -> message: the batch fails validation
        #: Errors of the whole batch (no line): it fails validation, e.g. OpenAI's
        #: ``token_limit_exceeded`` when the enqueued tokens pass the tier's limit.
        self.batch_errors: list[dict] = []
        self.malformed_output = False
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # ---- routing ------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, str], raw: bytes,
              content_type: str) -> Reply | None:
        """The reply to a Files / Batch request, or None when the path is not one."""
        parts = path.rstrip("/").split("/")
        try:
            at = next(i for i, p in enumerate(parts) if p in ("files", "batches"))
        except StopIteration:
            return None
        kind, rest = parts[at], parts[at + 1:]
        azure = path.startswith("/openai/")
        with self._lock:
            if kind == "files":
                return self._files(method, rest, raw, content_type)
            return self._batches(method, rest, query, raw, azure)

    def _files(self, method: str, rest: list[str], raw: bytes, ctype: str) -> Reply:
        if not rest and method == "POST":
            return self._upload(raw, ctype)
        f = self.files.get(rest[0]) if rest else None
        if rest and f is None:
            return _no(f"No such File object: {rest[0]}", "file_id")
        if f is not None and len(rest) == 1 and method == "GET":
            return 200, f.body(), "application/json"
        if f is not None and len(rest) == 1 and method == "DELETE":
            del self.files[f.id]
            return 200, {"id": f.id, "object": "file", "deleted": True}, "application/json"
        if f is not None and rest[1:] == ["content"] and method == "GET":
            return 200, f.content, "application/octet-stream"
        return _no(f"Invalid URL ({method} /v1/files/{'/'.join(rest)})")

    def _batches(self, method: str, rest: list[str], query: dict[str, str], raw: bytes,
                 azure: bool = False) -> Reply:
        if not rest and method == "POST":
            return self._create(raw, azure)
        if not rest and method == "GET":
            return self._list(query)
        b = self.batches.get(rest[0])
        if b is None:
            return _no(f"No batch found with id '{rest[0]}'.", "batch_id")
        if len(rest) == 1 and method == "GET":
            return 200, self._body(b), "application/json"
        if rest[1:] == ["cancel"] and method == "POST":
            return self._cancel(b)
        return _no(f"Invalid URL ({method} /v1/batches/{'/'.join(rest)})")

    # ---- files --------------------------------------------------------------------------
    def _upload(self, raw: bytes, ctype: str) -> Reply:
        if len(raw) > self.max_upload_bytes:
            return 413, _error(413, f"File is too large: {len(raw)} bytes; the limit is "
                                    f"{self.max_upload_bytes}."), "application/json"
        form = _form(raw, ctype)
        if form is None:
            return _bad("Expected a multipart/form-data body with 'file' and 'purpose'.")
        purpose, upload = form.get("purpose"), form.get("file")
        if not isinstance(upload, tuple):
            return _bad("Missing required parameter: 'file'.", "file")
        if purpose != "batch":
            return _bad(f"Invalid purpose {purpose!r}: this server takes 'batch' files.",
                        "purpose")
        filename, content = upload
        problem = _check_jsonl(content)
        if problem:
            return _bad(problem, "file")
        f = _File(f"file-fake{next(self._ids)}", filename, "batch", content,
                  int(self.clock.now()))
        self.files[f.id] = f
        return 200, f.body(), "application/json"

    def _add_output(self, name: str, rows: list[str]) -> str | None:
        if not rows:
            return None
        f = _File(f"file-fake{next(self._ids)}", name, "batch_output",
                  "".join(r + "\n" for r in rows).encode(), int(self.clock.now()))
        self.files[f.id] = f
        return f.id

    # ---- batches ------------------------------------------------------------------------
    def _create(self, raw: bytes, azure: bool = False) -> Reply:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return _bad("We could not parse the JSON body of your request.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if name not in data:
                return _bad(f"Missing required parameter: '{name}'.", name)
        if azure and "/v1" + str(data["endpoint"]) in ENDPOINTS:
            data["endpoint"] = "/v1" + data["endpoint"]
        if data["endpoint"] not in ENDPOINTS:
            return _bad(f"Invalid endpoint {data['endpoint']!r}: this server batches "
                        f"{', '.join(ENDPOINTS)}.", "endpoint")
        if data["completion_window"] != "24h":
            return _bad("Invalid completion_window: only '24h' is supported.",
                        "completion_window")
        f = self.files.get(data["input_file_id"])
        if f is None or f.purpose != "batch":
            return _bad(f"Invalid input_file_id {data['input_file_id']!r}: no batch file "
                        "with that id.", "input_file_id")
        lines = [json.loads(line) for line in f.content.splitlines() if line.strip()]
        b = _Batch(f"batch_fake{next(self._ids)}", data["endpoint"], f.id, lines,
                   self.clock.now(), data.get("metadata"), azure=azure)
        self.batches[b.id] = b
        return 200, self._body(b), "application/json"

    def _list(self, query: dict[str, str]) -> Reply:
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return _bad("Invalid limit: it must be between 1 and 100.", "limit")
        # Newest first, as OpenAI lists them.
        ids = sorted(self.batches, key=lambda i: (self.batches[i].created_at, _num(i)),
                     reverse=True)
        after = query.get("after")
        if after is not None:
            ids = ids[ids.index(after) + 1:] if after in ids else []
        page = [self._body(self.batches[i]) for i in ids[:limit]]
        body: dict[str, Any] = {"object": "list", "data": page, "has_more": len(ids) > limit}
        if page:
            body |= {"first_id": page[0]["id"], "last_id": page[-1]["id"]}
        return 200, body, "application/json"

    def _cancel(self, b: _Batch) -> Reply:
        self._advance(b)
        if b.status not in ("validating", "in_progress"):
            return 409, _error(409, f"Cannot cancel a batch with status '{b.status}'."), \
                "application/json"
        # _advance answered the lines due by now; none run while cancelling.
        b.status, b.times["cancelling_at"] = "cancelling", self.clock.now()
        return 200, self._body(b), "application/json"

    # ---- a batch's life -----------------------------------------------------------------
    def _advance(self, b: _Batch) -> None:
        """Move ``b`` along to the clock's time (each step at the time it was due)."""
        now = self.clock.now()
        if b.status == "validating" and now >= b.created_at + self.validate_s:
            errors = _validation_errors(b) or [
                {"code": "invalid_request", "line": n, "param": "body", "message": message}
                for n, message in sorted(self.invalid_lines.items())] or list(
                self.batch_errors) or None
            if errors:
                b.status, b.errors = "failed", errors
                b.times["failed_at"] = b.created_at + self.validate_s
                return
            b.status, b.times["in_progress_at"] = "in_progress", b.created_at + self.validate_s
        if b.status == "in_progress":
            expires = b.created_at + WINDOW
            self._run_until(b, min(now, expires))
            if len(b.done) == len(b.lines):
                end = b.times["in_progress_at"] + self.run_s
                b.status, b.times["finalizing_at"] = "finalizing", end
            elif now >= expires:
                self._finish(b, "expired", expires)
        if b.status == "finalizing" and now >= b.times["finalizing_at"] + self.finalize_s:
            self._finish(b, "completed", b.times["finalizing_at"] + self.finalize_s)
        if b.status == "cancelling" and now >= b.times["cancelling_at"] + self.cancel_s:
            self._finish(b, "cancelled", b.times["cancelling_at"] + self.cancel_s)

    def _run_until(self, b: _Batch, t: float) -> None:
        """Answer the lines due by time ``t`` (evenly spread over ``run_s``)."""
        start = b.times.get("in_progress_at")
        if start is None or b.status != "in_progress":
            return
        share = 1.0 if self.run_s <= 0 else max(0.0, min(1.0, (t - start) / self.run_s))
        due = len(b.lines) if share >= 1.0 else int(len(b.lines) * share)
        while len(b.done) < due:
            k = len(b.done)
            b.done.append(self._answer(b, b.lines[k], k))

    def _answer(self, b: _Batch, line: dict, k: int) -> tuple[dict, bool]:
        custom_id = line["custom_id"]
        if custom_id in self.fail_ids:
            status, body = 500, _error(500, "The server had an error processing this request.")
        else:
            status, body = self.answer(line["url"], dict(line["body"]), k + 1)
        out = {"id": f"batch_req_{b.id}_{k}", "custom_id": custom_id,
               "response": {"status_code": status, "request_id": f"req_{b.id}_{k}",
                            "body": body}, "error": None}
        return out, status == 200

    def _finish(self, b: _Batch, status: str, at: float) -> None:
        """Write the output and error files; the batch ends ``status`` at ``at``."""
        ok = [json.dumps(out) for out, good in b.done if good]
        bad = [json.dumps(out) for out, good in b.done if not good]
        if status == "expired":
            bad += [json.dumps({"id": f"batch_req_{b.id}_{k}", "custom_id": line["custom_id"],
                                "response": None, "error": {
                                    "code": "batch_expired",
                                    "message": "This request could not be executed before "
                                               "the completion window expired."}})
                    for k, line in enumerate(b.lines[len(b.done):], start=len(b.done))]
        if self.malformed_output and ok:
            ok[0] = ok[0][: len(ok[0]) // 2]  # cut in half: not JSON
        b.output_file_id = self._add_output(f"{b.id}_output.jsonl", ok)
        b.error_file_id = self._add_output(f"{b.id}_error.jsonl", bad)
        b.status, b.times[f"{status}_at"] = status, at

    def _body(self, b: _Batch) -> dict[str, Any]:
        """The ``Batch`` object, as of the clock's time."""
        self._advance(b)
        answered_bad = sum(1 for _, good in b.done if not good)
        failed = answered_bad + (len(b.lines) - len(b.done) if b.status == "expired" else 0)
        usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        for out, good in b.done:
            u = (out["response"]["body"].get("usage") or {}) if good else {}
            usage["input_tokens"] += u.get("prompt_tokens", u.get("input_tokens", 0))
            usage["output_tokens"] += u.get("completion_tokens", u.get("output_tokens", 0))
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        stamps = {s: int(b.times[s]) for s in ("in_progress_at", "finalizing_at",
                  "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at")
                  if s in b.times}
        # The spec types these fields without null: one not set yet is left out.
        optional = {"errors": None if b.errors is None else {"object": "list", "data": b.errors},
                    "output_file_id": b.output_file_id, "error_file_id": b.error_file_id,
                    "metadata": b.metadata}
        return {
            "id": b.id, "object": "batch", "endpoint": None if b.azure else b.endpoint,
            "model": _model(b),
            "input_file_id": b.input_file_id, "completion_window": "24h", "status": b.status,
            "created_at": int(b.created_at), "expires_at": int(b.created_at + WINDOW),
            **stamps, **{k: v for k, v in optional.items() if v is not None},
            "request_counts": {"total": len(b.lines), "completed": len(b.done) - answered_bad,
                               "failed": failed},
            "usage": {**usage, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
        }


def _model(b: _Batch) -> str:
    models = {line["body"].get("model") for line in b.lines if isinstance(line.get("body"), dict)}
    return next(iter(models)) if len(models) == 1 and None not in models else "fake-model"


def _num(batch_id: str) -> int:
    return int("".join(c for c in batch_id if c.isdigit()) or 0)


def _no(message: str, param: str | None = None) -> Reply:
    return 404, _error(404, message, param), "application/json"


def _bad(message: str, param: str | None = None) -> Reply:
    return 400, _error(400, message, param), "application/json"


def _form(raw: bytes, ctype: str) -> dict[str, str | tuple[str, bytes]] | None:
    """A multipart/form-data body's fields: text, or (filename, bytes) for a file."""
    if not ctype.lower().startswith("multipart/form-data"):
        return None
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + raw)
    if not msg.is_multipart():
        return None
    out: dict[str, str | tuple[str, bytes]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        filename = part.get_filename()
        out[name] = (filename, payload) if filename is not None else payload.decode()
    return out


def _check_jsonl(content: bytes) -> str | None:
    """What is wrong with a batch input file (naming the line), or None."""
    lines = content.splitlines()
    if not any(line.strip() for line in lines):
        return "The batch file is empty: it needs one JSON request per line."
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            return f"Line {n} of the file is not valid JSON ({e.msg})."
        if not isinstance(obj, dict):
            return f"Line {n} of the file is not a JSON object."
        missing = [k for k in ("custom_id", "method", "url", "body") if k not in obj]
        if missing:
            return f"Line {n} of the file is missing {', '.join(map(repr, missing))}."
        if not isinstance(obj["custom_id"], str) or not isinstance(obj["body"], dict):
            return f"Line {n}: 'custom_id' must be a string and 'body' an object."
        if obj["method"] != "POST":
            return f"Line {n}: 'method' must be 'POST', got {obj['method']!r}."
    return None


def _validation_errors(b: _Batch) -> list[dict] | None:
    """Why a batch fails validation (each error naming its line), or None."""
    errors, seen = [], set()
    first = b.lines[0]["body"].get("model") if b.lines else None
    for n, line in enumerate(b.lines, start=1):
        url = "/v1" + line["url"] if b.azure and not line["url"].startswith("/v1") else line["url"]
        if url != b.endpoint:
            errors.append({"code": "invalid_url", "line": n, "param": "url", "message": (
                f"The URL provided for this request ({line['url']!r}) does not match the "
                f"batch endpoint {b.endpoint!r}.")})
        if line["body"].get("model") != first:
            errors.append({"code": "mismatched_model", "line": n, "param": "body.model",
                           "message": f"The model {line['body'].get('model')!r} differs from "
                                      f"line 1's {first!r}: a batch file has one model."})
        if line["custom_id"] in seen:
            errors.append({"code": "duplicate_custom_id", "line": n, "param": "custom_id",
                           "message": f"The custom_id {line['custom_id']!r} is used more "
                                      "than once in this batch."})
        seen.add(line["custom_id"])
    return errors or None
