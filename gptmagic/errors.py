"""Errors raised by gptmagic.

Every error subclasses :class:`GptmagicError`, so ``except GptmagicError``
catches anything gptmagic raises on purpose::

    GptmagicError
    ├── ConfigError                 bad settings, unknown profile, missing key or extra
    ├── RequestError                a request gptmagic refuses to send (bad parameter)
    │   ├── CellSyntaxError         a cell that does not parse, or an image it names
    │   │                           that cannot be sent (gptmagic.core.cellsyntax)
    │   ├── NoLogprobsError         a heatmap of a result without logprobs (views.widgets)
    │   └── LocalRequestError       a request the embedded engine refuses (local.adapt)
    ├── ScorerError                 a scorer cannot grade a case (gptmagic.eval.scoring)
    ├── ToolArgumentsError          a model's tool-call arguments that do not validate
    │                               (gptmagic.core.tools); ``errors`` has each path
    ├── RunInterrupted              evaluate() stopped by Ctrl-C; what finished is stored
    │   └── ToolLoopInterrupted     a tool loop stopped by Ctrl-C; ``partial`` keeps its steps
    └── APIError                    something went wrong talking to a provider
        ├── APIConnectionError      could not connect, or the connection dropped
        │   └── APITimeoutError     connect/read/write/pool timeout
        │       └── DeadlineExceededError  the call's deadline passed (all attempts); final
        ├── APIStatusError          the server answered with an HTTP error status
        │   ├── BadRequestError              400
        │   ├── AuthenticationError          401
        │   ├── PermissionDeniedError        403
        │   ├── NotFoundError                404
        │   ├── ConflictError                409
        │   ├── UnprocessableEntityError     422
        │   ├── RateLimitError               429
        │   │   └── QuotaExceededError       429 insufficient_quota (final, never retried)
        │   └── InternalServerError          5xx
        ├── StreamError             an error event or a dropped stream; ``.partial`` keeps the text
        │   ├── MalformedStreamError    a stream event the protocol does not allow (bad JSON,
        │   │                           impossible numbers); also a MalformedResponseError
        │   └── StreamDeadlineError     a stream still running at the deadline; also a
        │                               DeadlineExceededError
        ├── ResponseFailedError     a Responses API response that ended ``failed``; ``code``
        │                           says why (``server_error`` is retried, as a 5xx is)
        └── MalformedResponseError  the body is not the JSON/SSE the protocol promises

Messages never contain an API key: :func:`redact` scrubs registered secrets
from every text an error carries, and an error keeps no credential header of
the response. Every error pickles and unpickles with all its fields (a
process pool or a saved result may carry one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gptmagic.state import current

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigError",
    "ConflictError",
    "DeadlineExceededError",
    "GptmagicError",
    "InternalServerError",
    "MalformedResponseError",
    "MalformedStreamError",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestError",
    "ResponseFailedError",
    "RunInterrupted",
    "SECRET_HEADERS",
    "SECRET_PARAMS",
    "StreamDeadlineError",
    "StreamError",
    "ToolArgumentsError",
    "ToolLoopInterrupted",
    "UnprocessableEntityError",
    "public_params",
    "public_url",
    "redact",
    "register_secret",
    "status_error",
]

#: Header names whose values are credentials, whatever they hold (lower case).
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie",
    "x-goog-api-key", "ocp-apim-subscription-key",
})


#: Request options whose values may carry credentials: never stored, logged or shown.
SECRET_PARAMS = frozenset({"headers", "extra_headers", "default_headers", "api_key",
                           "authorization", "extra_query"})


def public_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` without the options that may carry credentials (:data:`SECRET_PARAMS`,
    any case): what a run's record, the call log and the explorer keep of a request's
    options. A header there is dropped whole, its name too."""
    return {k: v for k, v in params.items() if str(k).lower() not in SECRET_PARAMS}


def public_url(url: str | None) -> str | None:
    """``url`` without its user name and password (``https://u:p@h/v1`` -> ``https://h/v1``):
    what a log, a cache row or a run keeps of a base URL."""
    if not url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def register_secret(value: str | None) -> None:
    """Remember a secret (an API key) so :func:`redact` removes it from text."""
    if value and len(value) >= 4:
        state = current()
        with state.lock:
            state.secrets.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` with ``[REDACTED]``."""
    state = current()
    with state.lock:
        secrets = sorted(state.secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return text


def _redact_any(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_any(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_any(v) for v in value]
    return value


def _restore(cls: type[GptmagicError], args: tuple[Any, ...]) -> GptmagicError:
    """An unpickled error, made without ``__init__`` (whose keywords pickle cannot pass)."""
    return cls.__new__(cls, *args)


class GptmagicError(Exception):
    """Base class of every error gptmagic raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own reduce calls cls(*args), which fails on keyword-only
        # fields (status_code); the attributes come back through __setstate__.
        return _restore, (type(self), self.args), self.__dict__

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(GptmagicError):
    """Settings are wrong or incomplete (unknown profile, missing key, missing extra)."""


class RequestError(GptmagicError):
    """A request gptmagic refuses to send; ``param`` names the offending parameter."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class RunInterrupted(GptmagicError):
    """A batch run stopped by Ctrl-C or Kernel ▸ Interrupt; the message says how much is
    stored, and running it again resumes with only the missing calls."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the stack (the portal's wait) says
        # nothing the user can act on, the message says everything.
        return [f"{type(self).__name__}: {self}"]


class ToolArgumentsError(GptmagicError):
    """A model called ``tool`` with arguments that are not JSON, not an object, or do not
    match its parameters; ``errors`` holds one ``"path: message"`` per problem."""

    def __init__(self, message: str, *, tool: str = "", errors: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.tool = tool
        self.errors = errors


class ToolLoopInterrupted(RunInterrupted):
    """Ctrl-C (Kernel ▸ Interrupt) during a tool loop. ``partial`` is a Result marked
    ``interrupted`` holding the steps done so far (``partial.steps``) and the messages
    they added (``partial.exchange``), calls cut short included, so nothing is lost."""

    def __init__(self, message: str, *, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


class APIError(GptmagicError):
    """Something went wrong talking to a provider."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class APIConnectionError(APIError):
    """Could not connect, or the connection dropped before a full response."""


class APITimeoutError(APIConnectionError):
    """A connect/read/write/pool timeout, or the request's overall deadline passed."""


class DeadlineExceededError(APITimeoutError):
    """The call's deadline passed: every attempt and wait together. Never retried."""


class MalformedResponseError(APIError):
    """The server's body is not the JSON or SSE the OpenAI protocol promises."""


class ResponseFailedError(APIError):
    """A Responses API response whose status is ``failed`` (or a stream's ``error`` event).

    ``code`` is the response's ``error.code``; ``server_error`` is transient,
    so the retry loop tries again as for a 5xx (:mod:`gptmagic.core.retry`),
    unless a stream had already shown text (that one is a :class:`StreamError`).
    """

    def __init__(self, message: str, *, code: str | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.code = code


class StreamError(APIError):
    """A stream ended with an error event or was cut off.

    ``partial`` is the :class:`gptmagic.Result` accumulated so far (text kept).
    Streams are never retried once started: the caller decides.
    """

    def __init__(self, message: str, *, partial: Any = None, request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.partial = partial


class MalformedStreamError(StreamError, MalformedResponseError):
    """A stream event the protocol does not allow; ``partial`` keeps the text before it.

    Both a :class:`StreamError` (the stream ended, never retried) and a
    :class:`MalformedResponseError` (the server's fault), so either ``except``
    catches it.
    """


class StreamDeadlineError(StreamError, DeadlineExceededError):
    """A stream still running when the call's deadline passed; ``partial`` keeps its text."""


class APIStatusError(APIError):
    """The server answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.status_code = status_code
        self.body = _redact_any(body)
        # Response headers only, without cookies or credentials, secrets redacted.
        self.headers = {k: redact(v) for k, v in (headers or {}).items()
                        if k.lower() not in SECRET_HEADERS}

    @property
    def code(self) -> str | None:
        """The ``error.code`` field of an OpenAI-style error body, if any."""
        err = self.body.get("error") if isinstance(self.body, dict) else None
        code = err.get("code") if isinstance(err, dict) else None
        return None if code is None else str(code)


class BadRequestError(APIStatusError):
    """400: the provider rejected the request."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or endpoint."""


class NotFoundError(APIStatusError):
    """404: unknown model, deployment or path."""


class ConflictError(APIStatusError):
    """409: conflicting concurrent request; retried."""


class UnprocessableEntityError(APIStatusError):
    """422: well-formed but semantically invalid request."""


class RateLimitError(APIStatusError):
    """429: too many requests or tokens; retried with backoff."""


class QuotaExceededError(RateLimitError):
    """429 with ``insufficient_quota``: the account is out of credit. Never retried."""


class InternalServerError(APIStatusError):
    """5xx: the provider failed; retried."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """(message, type, code) of an OpenAI-style ``{"error": {...}}`` body."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        msg = err.get("message")
        typ = err.get("type")
        code = err.get("code")
        return (
            None if msg is None else str(msg),
            None if typ is None else str(typ),
            None if code is None else str(code),
        )
    if isinstance(err, str):
        return err, None, None
    return None, None, None


def status_error(
    status_code: int,
    body: Any,
    *,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    url: str = "",
) -> APIStatusError:
    """Build the status-specific error for an HTTP error response."""
    msg, typ, code = _error_fields(body)
    cls: type[APIStatusError]
    if status_code >= 500:
        cls = InternalServerError
    else:
        cls = _BY_STATUS.get(status_code, APIStatusError)
    if cls is RateLimitError and "insufficient_quota" in (code, typ):
        cls = QuotaExceededError
    detail = msg or (body if isinstance(body, str) and body else "no error message")
    if isinstance(detail, str) and len(detail) > 500:
        detail = detail[:500] + "…"
    where = f" from {url}" if url else ""
    text = f"HTTP {status_code}{where}: {detail}"
    if code:
        text += f" (code: {code})"
    if request_id:
        text += f" [request id {request_id}]"
    return cls(text, status_code=status_code, request_id=request_id, body=body, headers=headers)
