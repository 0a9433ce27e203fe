"""Batch files of a run, and what their output says (pure: no I/O).

A run's calls become JSONL request lines (``custom_id`` = the call's cache key;
``body`` = what the call would send live, without streaming), grouped into one
file per provider × endpoint × model (OpenAI and Azure OpenAI take one model per
file) and split where a file would pass the request or byte limit. Calls with
the same key (two rows with the same prompt) are one line. An output line becomes
a result or an error; a line the provider could not run (expired, cancelled)
becomes neither: its call is left for another batch, if the user asks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gptmagic.client.batches import OutputLine, request_line
from gptmagic.core.response import parse_response
from gptmagic.core.responses import parse_responses
from gptmagic.core.types import Result
from gptmagic.errors import GptmagicError, RequestError, status_error

if TYPE_CHECKING:
    from gptmagic.client.config import Provider
    from gptmagic.eval.jobs import Job

__all__ = ["BatchOptions", "ENDPOINTS", "MAX_BYTES", "MAX_REQUESTS", "Outcome", "Part",
           "line_body", "not_batchable", "plan", "read_line", "where_is"]

#: The most requests, and bytes, in one batch file: OpenAI's limits.
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
#: The batch endpoint of each API of a run.
ENDPOINTS = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}
#: Error codes of lines the provider never ran: their calls may go in another batch.
_UNRUN = ("batch_expired", "batch_cancelled")
_LINE = re.compile(r"\bline (\d+)\b", re.IGNORECASE)


@dataclass(frozen=True)
class BatchOptions:
    """How batch mode polls and splits. ``poll``: seconds between looks at the
    batches (a batch takes minutes to hours); ``max_requests`` and ``max_bytes``:
    the most one batch file holds (OpenAI's limits: 50,000 requests, 200 MB)."""

    poll: float = 30.0
    max_requests: int = MAX_REQUESTS
    max_bytes: int = MAX_BYTES

    def __post_init__(self) -> None:
        if not isinstance(self.poll, int | float) or not self.poll > 0:
            raise RequestError(f"batch poll must be a number of seconds > 0, got "
                               f"{self.poll!r}", param="batch")
        for name in ("max_requests", "max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RequestError(f"batch {name} must be a whole number >= 1, got "
                                   f"{value!r}", param="batch")



def not_batchable(job: Job) -> str | None:
    """Why ``job`` runs live even in batch mode (None: it can go in a batch)."""
    if job.extras.tools:
        return "its prompt has tools: a tool loop is several dependent calls"
    if job.provider.kind == "local":
        return "the embedded model has no Batch API (it is free)"
    return None


def line_body(job: Job) -> dict[str, Any]:
    """The request a batch line carries: what ``client.chat`` / ``client.respond`` would
    send for ``job`` live (parameters set to None left out), never streamed; the model
    is the profile's batch deployment where it names one."""
    model = job.provider.batch_model(job.model)
    if job.api == "responses":
        rest = {k: v for k, v in job.body.items() if k != "input" and v is not None}
        return {"model": model, "input": job.body["input"], **_unstreamed(rest)}
    params = {k: v for k, v in job.params.items() if v is not None}
    return {"model": model, "messages": [dict(m) for m in job.messages], **_unstreamed(params)}


def _unstreamed(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in ("stream", "stream_options")}


@dataclass
class Part:
    """One batch file: its provider, endpoint and model, and its calls in line order
    (``jobs[key]``: every job of the run with that key)."""

    provider: Provider
    endpoint: str
    model: str
    keys: list[str] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list, repr=False)
    size: int = 0

    @property
    def content(self) -> bytes:
        return b"".join(self.lines)


def plan(jobs: Iterable[Job], max_requests: int = MAX_REQUESTS,
         max_bytes: int = MAX_BYTES) -> tuple[list[Part], dict[str, str]]:
    """The batch files for ``jobs`` (one line per key), and the keys whose line alone
    passes ``max_bytes`` (key -> why; they are sent in no file)."""
    parts: list[Part] = []
    current: dict[tuple[str, str, str], Part] = {}
    too_big: dict[str, str] = {}
    seen: set[str] = set()
    for job in jobs:
        if job.key in seen:
            continue
        seen.add(job.key)
        endpoint = ENDPOINTS[job.api]
        line = request_line(job.key, endpoint, line_body(job))
        if len(line) > max_bytes:
            too_big[job.key] = (f"not sent: its batch request line is {len(line):,} bytes, "
                                f"over the {max_bytes:,} bytes a batch file may hold "
                                "(max_bytes); run it live (batch=False) or raise the limit")
            continue
        model = job.provider.batch_model(job.model)
        group = (job.provider.name, endpoint, model)
        part = current.get(group)
        if part is None or len(part.keys) >= max_requests or part.size + len(line) > max_bytes:
            part = current[group] = Part(job.provider, endpoint, model)
            parts.append(part)
        part.keys.append(job.key)
        part.lines.append(line)
        part.size += len(line)
    return parts, too_big


@dataclass(frozen=True)
class Outcome:
    """What one output line says of its call: a result, or an error (``state``
    ``"failed"``), or that it never ran (``"unrun"``)."""

    state: str  # "done", "failed" or "unrun"
    result: Result | None = None
    error: str | None = None
    error_type: str | None = None


def read_line(line: OutputLine, api: str, batch_id: str) -> Outcome:
    """The outcome of one output or error line of batch ``batch_id``."""
    if line.status_code is None:  # never ran, or failed outside HTTP
        err = line.error or {}
        code, message = err.get("code"), err.get("message") or "no message"
        state = "unrun" if code in _UNRUN else "failed"
        return Outcome(state, error=f"batch {batch_id}: {code}: {message}",
                       error_type="BatchLineError")
    if line.status_code != 200:
        e = status_error(line.status_code, line.body, url=f"batch {batch_id}")
        return Outcome("failed", error=str(e), error_type=type(e).__name__)
    try:
        result = (parse_responses(line.body) if api == "responses"
                  else parse_response("chat", line.body))
    except GptmagicError as e:
        return Outcome("failed", error=f"batch {batch_id}, output line {line.line}: {e}",
                       error_type=type(e).__name__)
    result.raw = None
    return Outcome("done", result=result)


def where_is(message: str, lines: dict[int, str], jobs: dict[str, list[Job]]) -> str:
    """``message`` (a provider's, naming a line of an input file) with the row that line
    is: "line 3 is data row 2, prompt 'p', model 'm', repeat 0"."""
    m = _LINE.search(message)
    key = lines.get(int(m.group(1))) if m else None
    if key is None or not jobs.get(key):
        return message
    j = jobs[key][0]
    return (f"{message} (line {m.group(1) if m else '?'} is data row {j.row}, prompt "
            f"{j.prompt!r}, model {j.model!r}, repeat {j.repeat})")
