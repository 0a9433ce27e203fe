"""When to retry a failed request and how long to wait (pure, no I/O).

This is the program's only retry policy; :mod:`gptmagic.client` runs its only
retry loop. Retried: connection errors, timeouts, 408, 409, 429 and 5xx, and
a Responses API response that failed with ``server_error`` (the same fault,
said in the body: :data:`RETRYABLE_RESPONSE_CODES`).
Never retried: a 429 whose body says ``insufficient_quota`` (more attempts
cannot add credit), any other status, anything after a stream started, and a
call past its deadline (the deadline bounds the whole call, retries included).
A server's ``x-should-retry: true|false`` overrides the status rule.

The wait honours ``retry-after-ms``, then ``retry-after`` (seconds or an
HTTP date), else exponential backoff with jitter. Attempts are bounded by
count *and* by total time: a wait that would pass the time budget stops
retrying instead.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping
from dataclasses import dataclass

from gptmagic.core import defaults as D
from gptmagic.errors import (
    APIConnectionError,
    APIStatusError,
    DeadlineExceededError,
    GptmagicError,
    QuotaExceededError,
    ResponseFailedError,
    StreamError,
)

__all__ = ["RETRYABLE_RESPONSE_CODES", "RETRYABLE_STATUS", "RetryPolicy", "is_retryable",
           "parse_retry_after"]

RETRYABLE_STATUS = frozenset({408, 409, 429})

#: ``error.code`` values of a failed Response that are worth another attempt: the
#: server's own fault, transient as a 500 is.
RETRYABLE_RESPONSE_CODES = frozenset({"server_error"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds and backoff of the retry loop. ``RetryPolicy(max_attempts=1)`` disables it."""

    max_attempts: int = D.MAX_ATTEMPTS
    max_time: float = D.MAX_RETRY_TIME
    initial_backoff: float = D.INITIAL_BACKOFF
    max_backoff: float = D.MAX_BACKOFF
    jitter: float = D.JITTER
    max_retry_after: float = D.MAX_RETRY_AFTER

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait before retry number ``attempt`` (1 = first retry), with jitter."""
        base = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        r = (rng or random).random()
        # Jitter shortens the wait by up to `jitter` of it, never lengthens it.
        return base * (1.0 - self.jitter * r)

    def delay(
        self,
        error: GptmagicError,
        attempt: int,
        elapsed: float,
        *,
        now: float,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to stop and raise.

        ``attempt`` is how many attempts were made (>= 1), ``elapsed`` the time
        spent so far, ``now`` the wall clock (epoch seconds) for HTTP dates.
        """
        if attempt >= self.max_attempts or not is_retryable(error):
            return None
        headers = error.headers if isinstance(error, APIStatusError) else {}
        wait = parse_retry_after(headers, now=now)
        if wait is None:
            wait = self.backoff(attempt, rng)
        elif wait > self.max_retry_after:
            return None
        if elapsed + wait > self.max_time:
            return None
        return max(0.0, wait)


def is_retryable(error: GptmagicError) -> bool:
    """Whether an error is worth another attempt."""
    if isinstance(error, StreamError | QuotaExceededError | DeadlineExceededError):
        return False
    if isinstance(error, APIStatusError):
        should = _header(error.headers, "x-should-retry")
        if should == "true":
            return True
        if should == "false":
            return False
        return error.status_code in RETRYABLE_STATUS or error.status_code >= 500
    if isinstance(error, ResponseFailedError):
        return error.code in RETRYABLE_RESPONSE_CODES
    return isinstance(error, APIConnectionError)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v.strip().lower()
    return None


def parse_retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds the server asked us to wait, or None if it did not say (validly)."""
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        try:
            v = float(ms) / 1000.0
            if v >= 0:
                return v
        except ValueError:
            pass
    ra = _header(headers, "retry-after")
    if ra is None:
        return None
    try:
        v = float(ra)
        return v if v >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)
