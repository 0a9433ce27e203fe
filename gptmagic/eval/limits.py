"""How fast a run may call each provider: a concurrency limit that halves on a 429
and grows back on success, and token buckets for requests and tokens per minute
(configured, or learned from the provider's ``x-ratelimit-limit-*`` headers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from gptmagic.errors import GptmagicError, RateLimitError

__all__ = ["Bucket", "Limiter"]


class Bucket:
    """A token bucket refilled continuously at ``per_minute`` / 60 per second."""

    def __init__(self, per_minute: float) -> None:
        self.per_minute = float(per_minute)
        self.level = self.per_minute
        self.t = time.monotonic()

    async def take(self, n: float) -> None:
        n = min(n, self.per_minute)  # a request larger than the bucket waits for a full one
        while True:
            now = time.monotonic()
            self.level = min(self.per_minute, self.level + (now - self.t) * self.per_minute / 60)
            self.t = now
            if self.level >= n:
                self.level -= n
                return
            await asyncio.sleep((n - self.level) * 60 / self.per_minute)


@dataclass
class Limiter:
    """Concurrency per provider, shrunk on 429 and grown back on success."""

    limit: int
    rpm: float | None = None
    tpm: float | None = None
    active: int = 0
    cooldown_until: float = 0.0
    current: int = 0
    cond: asyncio.Condition = field(default_factory=asyncio.Condition)
    requests: Bucket | None = None
    tokens: Bucket | None = None
    learned: bool = False

    def __post_init__(self) -> None:
        self.current = self.limit
        self.requests = Bucket(self.rpm) if self.rpm else None
        self.tokens = Bucket(self.tpm) if self.tpm else None

    async def pace(self, tokens: int) -> None:
        """Wait for the per-minute budgets (configured or learned from headers)."""
        if self.requests is not None:
            await self.requests.take(1)
        if self.tokens is not None:
            await self.tokens.take(tokens)

    def learn(self, headers: Mapping[str, str] | None) -> None:
        """Adopt the provider's own limits (``x-ratelimit-limit-*``) once, if none were set."""
        if not headers or self.learned:
            return
        self.learned = True
        for name, attr in (("x-ratelimit-limit-requests", "requests"),
                           ("x-ratelimit-limit-tokens", "tokens")):
            try:
                value = float(headers.get(name, ""))
            except ValueError:
                continue
            if value > 0 and getattr(self, attr) is None:
                setattr(self, attr, Bucket(value))

    async def __aenter__(self) -> None:
        async with self.cond:
            while self.active >= self.current:
                await self.cond.wait()
            self.active += 1
        wait = self.cooldown_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def __aexit__(self, *exc: object) -> None:
        async with self.cond:
            self.active -= 1
            if exc[0] is None and self.current < self.limit:
                self.current += 1  # additive recovery
            self.cond.notify_all()

    def on_retry(self, err: GptmagicError, delay: float) -> None:
        if isinstance(err, RateLimitError):
            self.cooldown_until = max(self.cooldown_until, time.monotonic() + delay)
            self.current = max(1, self.current // 2)  # multiplicative decrease
