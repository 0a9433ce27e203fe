"""The async OpenAI-compatible client: chat, completions, streaming, retries.

One :class:`Client` owns one connection pool and talks to any provider
(a per-call ``provider=`` picks another). Every standard parameter of
``/chat/completions`` and ``/completions`` is accepted as a keyword and sent
as is; unknown keywords are passed through, ``None`` means "not set".
This module holds the program's only retry loop (policy: :mod:`gptmagic.retry`);
one attempt (sending, reading JSON or an SSE stream) is :mod:`gptmagic._attempt`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._attempt import (
    MAX_ERROR_BYTES,
    MAX_RESPONSE_BYTES,
    DeltaCallback,
    _json_or_text,
    _request_id,
    _StreamAbort,
    request_once,
)
from ._http import HTTP, Timeouts, TooLarge
from .config import Provider, resolve
from .errors import (
    APIError,
    APITimeoutError,
    GptmagicError,
    MalformedResponseError,
    RequestError,
    status_error,
)
from .retry import RetryPolicy
from .types import Result

__all__ = ["Client", "DeltaCallback", "RetryCallback"]

log = logging.getLogger("gptmagic.client")

RetryCallback = Callable[[GptmagicError, float], None]
"""Called with ``(error, wait)`` before each retry."""


def _messages(messages: str | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise RequestError(
                f"messages[{i}] must be a dict with a 'role' (got {type(m).__name__})",
                param="messages",
            )
        out.append(dict(m))
    if not out:
        raise RequestError("messages is empty: give at least one message", param="messages")
    return out


class Client:
    """Async client for OpenAI-compatible chat and completion endpoints.

    >>> client = Client()                                  # doctest: +SKIP
    >>> r = await client.chat("Say hi", model="local", max_tokens=5)  # doctest: +SKIP
    """

    def __init__(
        self,
        provider: str | Provider | None = None,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int | None = None,
        transport: Any = "aiohttp",
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        kwargs: dict[str, Any] = {"transport": transport}
        if max_connections:
            kwargs["max_connections"] = max_connections
        self.http = HTTP(self.timeouts, **kwargs)
        # Tests swap both for a virtual clock, so retry waits take no time.
        self._sleep = sleep or asyncio.sleep
        self._clock = clock
        self._rng = random.Random()
        self._local_url: str | None = None

    def __repr__(self) -> str:
        name = self.provider.name if isinstance(self.provider, Provider) else self.provider
        return f"<gptmagic.Client provider={name or 'default'!r}>"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    # -- public calls -----------------------------------------------------

    async def chat(
        self,
        messages: str | Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        provider: str | Provider | None = None,
        stream: bool = False,
        on_delta: DeltaCallback | None = None,
        timeouts: Timeouts | None = None,
        on_retry: RetryCallback | None = None,
        **params: Any,
    ) -> Result:
        """``POST /chat/completions``; returns the (possibly streamed) :class:`Result`."""
        prov, model = resolve(provider or self.provider, model)
        body: dict[str, Any] = {"model": model, "messages": _messages(messages)}
        body.update({k: v for k, v in params.items() if v is not None})
        return await self._call(
            prov, "chat", body, stream, on_delta, timeouts, prompt_len=None, on_retry=on_retry
        )

    async def complete(
        self,
        prompt: str | list[Any],
        *,
        model: str | None = None,
        provider: str | Provider | None = None,
        stream: bool = False,
        on_delta: DeltaCallback | None = None,
        timeouts: Timeouts | None = None,
        on_retry: RetryCallback | None = None,
        **params: Any,
    ) -> Result:
        """``POST /completions`` (legacy); ``suffix``, ``echo``, ``logprobs``, ``best_of``…"""
        prov, model = resolve(provider or self.provider, model)
        if not isinstance(prompt, str | list):
            raise RequestError(
                f"prompt must be a string or a list, not {type(prompt).__name__}", param="prompt"
            )
        body: dict[str, Any] = {"model": model, "prompt": prompt}
        body.update({k: v for k, v in params.items() if v is not None})
        # Echoed prompt tokens are told apart from generated ones by offset.
        prompt_len = len(prompt) if isinstance(prompt, str) and body.get("echo") else None
        return await self._call(
            prov, "completion", body, stream, on_delta, timeouts, prompt_len, on_retry=on_retry
        )

    async def models(self, *, provider: str | Provider | None = None) -> list[str]:
        """Model ids the provider lists at ``/models``."""
        prov, model = resolve(provider or self.provider, None)
        url, query = prov.endpoint("models", model, await self._base_url(prov))
        data = await self._small_json("GET", url, query, prov.auth_headers(), None)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise MalformedResponseError(f"{url}: expected {{'data': [...]}}")
        return [str(m.get("id")) for m in items if isinstance(m, dict)]

    async def moderate(
        self,
        input: str | list[str],
        *,
        model: str | None = None,
        provider: str | Provider | None = None,
    ) -> dict[str, Any]:
        """``POST /moderations``: the provider's JSON verdict on ``input``, unparsed.

        The embedded model has none: a ``local`` provider raises
        :class:`RequestError` without any HTTP.
        """
        # The profile's default_model is a chat model: never send it here.
        prov, name = resolve(provider or self.provider, model or "omni-moderation-latest")
        if prov.kind == "local":
            raise RequestError(
                "the local model has no moderation endpoint; use --moderate with a provider "
                "that has one (OpenAI)",
                param="moderate",
            )
        url, query = prov.endpoint("moderations", name)
        body: dict[str, Any] = {"input": input}
        if model:
            body["model"] = model
        data = await self._small_json("POST", url, query, prov.auth_headers(), body)
        if not isinstance(data, dict):
            raise MalformedResponseError(f"{url}: moderation response is not a JSON object")
        return data

    async def local_tokenize(
        self,
        *,
        text: str | None = None,
        messages: Sequence[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        pieces: bool = False,
    ) -> dict[str, Any]:
        """The embedded model's own tokens for ``text`` or a chat ``messages`` list.

        For messages the engine renders its chat template exactly as a chat
        request would, so ``count`` equals that request's ``usage.prompt_tokens``.
        ``pieces=True`` adds ``pieces``: per token, a string (its bytes are the
        string's UTF-8) or a list of byte values (a part of a character).
        """
        prov, _ = resolve("local", None)
        base = await self._base_url(prov)
        body: dict[str, Any] = (
            {"text": text}
            if messages is None
            else {"messages": list(messages), "add_generation_prompt": add_generation_prompt}
        )
        if pieces:
            body["pieces"] = True
        # Token lists of long conversations are megabytes: allow a full response's size.
        data = await self._small_json(
            "POST", f"{base}/tokenize", {}, {}, body, limit=MAX_RESPONSE_BYTES
        )
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise MalformedResponseError(f"{base}/tokenize: expected {{'tokens': [...]}}")
        if pieces and (not isinstance(data.get("pieces"), list)
                       or len(data["pieces"]) != len(data["tokens"])):
            raise MalformedResponseError(f"{base}/tokenize: expected one piece per token")
        return data

    # -- machinery --------------------------------------------------------

    async def _small_json(
        self,
        method: str,
        url: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: dict[str, Any] | None,
        limit: int = MAX_ERROR_BYTES,
    ) -> Any:
        """One request to a JSON side endpoint (models, moderation, tokenize); no retries."""
        payload = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        async with self.http.request(
            method, url, params=query, headers=headers, json_body=payload
        ) as r:
            try:
                raw = await r.read(limit)
            except TooLarge as e:
                raise MalformedResponseError(
                    f"{url}: response over {limit} bytes ({e.size} read); refusing it"
                ) from None
            if r.status >= 400:
                raise status_error(
                    r.status,
                    _json_or_text(raw),
                    request_id=_request_id(r.headers),
                    headers=r.headers,
                    url=url,
                )
        return _json_or_text(raw)

    async def _base_url(self, prov: Provider) -> str | None:
        if prov.kind != "local":
            return prov.base_url
        if self._local_url is None:
            from .local.engine import ensure_started

            self._local_url = await asyncio.to_thread(ensure_started)
        return self._local_url

    async def _call(
        self,
        prov: Provider,
        kind: str,
        body: dict[str, Any],
        stream: bool,
        on_delta: DeltaCallback | None,
        timeouts: Timeouts | None,
        prompt_len: int | None,
        on_retry: RetryCallback | None = None,
    ) -> Result:
        if stream:
            body["stream"] = True
            body.setdefault("stream_options", {"include_usage": True})
        else:
            body.pop("stream", None)
        path = "chat/completions" if kind == "chat" else "completions"
        url, query = prov.endpoint(path, str(body["model"]), await self._base_url(prov))
        headers = prov.auth_headers()
        try:
            payload = json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as e:
            raise RequestError(f"request body is not JSON-serialisable: {e}") from None
        t = timeouts or self.timeouts
        start = self._clock()
        attempt = 0
        while True:
            attempt += 1
            # A stream that has started registers its abort here, so the
            # deadline firing mid-stream ends it as a StreamError, not a retry.
            started: dict[str, Callable[[str], _StreamAbort]] = {}
            try:
                async with asyncio.timeout(t.deadline):
                    result = await request_once(
                        self.http,
                        kind,
                        url,
                        query,
                        headers,
                        payload,
                        stream,
                        on_delta,
                        t,
                        prompt_len,
                        started,
                        # Read at call time: gptmagic.client.MAX_RESPONSE_BYTES is the knob.
                        max_bytes=MAX_RESPONSE_BYTES,
                    )
                result.timings.attempts = attempt
                return result
            except TimeoutError:
                if "abort" in started:
                    raise started["abort"](
                        f"{url}: stream passed its {t.deadline:g} s deadline"
                    ).error from None
                err: GptmagicError = APITimeoutError(
                    f"no complete response within the {t.deadline:g} s deadline from {url}"
                )
            except (APIError, RequestError) as e:
                err = e
            if isinstance(err, _StreamAbort):
                raise err.error from None
            delay = self.retry.delay(
                err, attempt, self._clock() - start, now=time.time(), rng=self._rng
            )
            if delay is None:
                raise err
            if on_retry is not None:
                on_retry(err, delay)  # e.g. the runner's shared cooldown on 429
            log.debug(
                "retrying %s after %s (attempt %d, waiting %.2fs)",
                url,
                type(err).__name__,
                attempt,
                delay,
            )
            await self._sleep(delay)
