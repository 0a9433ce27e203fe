from __future__ import annotations

import email.utils
import random

import pytest

from gptmagic.core.retry import RetryPolicy, is_retryable, parse_retry_after
from gptmagic.errors import (
    APIConnectionError,
    APITimeoutError,
    MalformedResponseError,
    QuotaExceededError,
    RateLimitError,
    RequestError,
    ResponseFailedError,
    StreamError,
    status_error,
)

NOW = 1_800_000_000.0  # a frozen wall clock


def http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"Retry-After-Ms": "20"}, 0.02),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": http_date(10)}, 10.0),
        ({"retry-after": http_date(-30)}, 0.0),  # a date in the past: go now
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # ms wins
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),  # bad ms falls back
    ],
)
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(headers, now=NOW) == expected


def err(status, headers=None, body=None):
    return status_error(status, body or {"error": {"message": "m"}}, headers=headers or {})


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (APIConnectionError("reset"), True),
        (APITimeoutError("slow"), True),
        (err(408), True),
        (err(409), True),
        (err(429), True),
        (err(500), True),
        (err(502), True),
        (err(503), True),
        (err(504), True),
        (err(400), False),
        (err(401), False),
        (err(403), False),
        (err(404), False),
        (err(422), False),
        (err(429, body={"error": {"message": "quota", "code": "insufficient_quota"}}), False),
        (err(429, body={"error": {"message": "q", "type": "insufficient_quota"}}), False),
        (err(400, headers={"x-should-retry": "true"}), True),
        (err(503, headers={"x-should-retry": "false"}), False),
        (err(429, headers={"X-Should-Retry": "False"}), False),
        (StreamError("cut", partial=None), False),
        (MalformedResponseError("bad json"), False),
        (RequestError("bad param", param="n"), False),
        # A failed Response: server_error is the 500 of the body, retried as one.
        (ResponseFailedError("failed", code="server_error"), True),
        (ResponseFailedError("failed", code="invalid_prompt"), False),
        (ResponseFailedError("failed", code=None), False),
    ],
)
def test_classification(error, retry):
    assert is_retryable(error) is retry


def test_quota_error_class():
    e = err(
        429, body={"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}}
    )
    assert isinstance(e, QuotaExceededError) and isinstance(e, RateLimitError)
    assert e.code == "insufficient_quota"


class FixedRng(random.Random):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def random(self):
        return self.value


@pytest.mark.parametrize(
    ("attempt", "rng_value", "expected"),
    [
        (1, 0.0, 0.5),
        (2, 0.0, 1.0),
        (3, 0.0, 2.0),
        (4, 0.0, 4.0),
        (6, 0.0, 8.0),  # capped at max_backoff
        (1, 1.0, 0.375),  # full jitter shortens by 25%
        (3, 0.5, 1.75),
    ],
)
def test_backoff_table(attempt, rng_value, expected):
    policy = RetryPolicy(max_attempts=10)
    assert policy.backoff(attempt, FixedRng(rng_value)) == pytest.approx(expected)


def test_delay_uses_retry_after_and_bounds():
    p = RetryPolicy(max_attempts=3, max_time=10.0, max_retry_after=5.0)
    rng = FixedRng(0.0)
    assert p.delay(err(429, {"retry-after": "2"}), 1, 0.0, now=NOW, rng=rng) == 2.0
    assert p.delay(err(429, {"retry-after-ms": "10"}), 1, 0.0, now=NOW, rng=rng) == 0.01
    assert p.delay(err(429, {"retry-after": http_date(4)}), 1, 0.0, now=NOW, rng=rng) == 4.0
    # Retry-After beyond the cap: give up rather than hang.
    assert p.delay(err(429, {"retry-after": "30"}), 1, 0.0, now=NOW, rng=rng) is None
    # Out of attempts.
    assert p.delay(err(500), 3, 0.0, now=NOW, rng=rng) is None
    # A wait that would pass the total time budget stops retrying.
    assert p.delay(err(429, {"retry-after": "3"}), 1, 8.0, now=NOW, rng=rng) is None
    assert p.delay(err(500), 1, 9.6, now=NOW, rng=rng) is None
    assert p.delay(err(500), 1, 9.4, now=NOW, rng=rng) == 0.5
    # Never retried whatever the budget.
    assert p.delay(err(401), 1, 0.0, now=NOW, rng=rng) is None


def test_single_attempt_policy_never_retries():
    assert RetryPolicy(max_attempts=1).delay(err(503), 1, 0.0, now=NOW) is None
