"""Pure conversions of llama.cpp logprobs into OpenAI's two logprob shapes.

The engine always answers in the *chat* shape::

    {"content": [{"id", "token", "bytes", "logprob", "top_logprobs": [{"id", "token",
                                                                         "bytes", "logprob"}]}]}

even on the legacy ``/v1/completions`` endpoint, whose OpenAI shape is::

    {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{token: logprob}],
     "text_offset": [...]}

Token strings: when a token's bytes are not valid UTF-8 on their own (a piece
of a multi-byte character), the engine reports ``""``; OpenAI reports
``"bytes:\\xe2\\x80"`` (a literal backslash-x escape per byte), and so do we.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from gptmagic.core.logprobs import mean_of

__all__ = [
    "chat_logprobs",
    "legacy_logprobs",
    "mean_logprob",
    "token_piece",
    "token_text",
]


def token_piece(token: str, raw: Sequence[int] | None) -> str | None:
    """The text a token adds, or ``None`` if its bytes are not valid UTF-8 alone."""
    if raw is None:
        return token
    try:
        return bytes(raw).decode("utf-8")
    except (UnicodeDecodeError, ValueError, TypeError):
        return None


def token_text(token: str, raw: Sequence[int] | None) -> str:
    """A token as OpenAI names it: its text, or ``bytes:\\xNN...`` for a partial character."""
    piece = token_piece(token, raw)
    if piece is not None:
        return piece
    return "bytes:" + "".join(f"\\x{b:02x}" for b in bytes(raw or []))


def _alternative(entry: dict[str, Any]) -> dict[str, Any]:
    raw = entry.get("bytes")
    return {
        "token": token_text(str(entry.get("token", "")), raw),
        "logprob": entry.get("logprob"),
        "bytes": list(raw) if raw is not None else None,
    }


def _entries(logprobs: Any) -> list[dict[str, Any]]:
    if not isinstance(logprobs, dict):
        return []
    content = logprobs.get("content")
    return [e for e in content if isinstance(e, dict)] if isinstance(content, list) else []


def chat_logprobs(logprobs: Any, top_n: int) -> dict[str, Any] | None:
    """Normalise engine logprobs to OpenAI's chat shape with exactly ``top_n`` alternatives.

    OpenAI gives ``top_logprobs: []`` per token when ``top_logprobs`` was not
    asked for; the engine gives 20 (or at least 1, since 0 switches logprobs
    off upstream), so the list is trimmed. The engine's extra ``id`` is
    dropped and ``refusal: null`` added, as the spec requires.
    """
    if logprobs is None:
        return None
    content = []
    for entry in _entries(logprobs):
        alts = entry.get("top_logprobs") or []
        item = _alternative(entry)
        item["top_logprobs"] = [_alternative(a) for a in alts[:top_n] if isinstance(a, dict)]
        content.append(item)
    return {"content": content, "refusal": None}


def _complete(buffer: bytes) -> tuple[int, bytes]:
    """Characters ``buffer`` completes, and the bytes of an unfinished one at its end."""
    try:
        return len(buffer.decode("utf-8")), b""
    except UnicodeDecodeError as exc:
        if exc.reason != "unexpected end of data":
            return len(buffer.decode("utf-8", errors="replace")), b""
        head = buffer[: exc.start]
        return len(head.decode("utf-8", errors="replace")), buffer[exc.start:]


def legacy_logprobs(logprobs: Any, top_n: int, offset: int,
                    pending: bytes = b"") -> tuple[dict[str, Any], int, bytes]:
    """Convert engine logprobs to the legacy completions shape.

    ``offset`` is the character offset of the first token in prompt + completion
    text (``len(prompt)`` when the prompt is not echoed), and ``pending`` the
    bytes of a character the tokens before began but did not finish. Returns the
    legacy object, the offset and pending bytes after the last token, so a
    stream can carry them on. A token's offset is that of the character it
    begins or continues: the tokens of one character share it. ``top_n == 0``
    gives one empty mapping per token: the sampled token's logprob is in
    ``token_logprobs`` and there are no alternatives.
    """
    tokens: list[str] = []
    token_logprobs: list[float | None] = []
    top: list[dict[str, float | None]] = []
    offsets: list[int] = []
    for entry in _entries(logprobs):
        raw = entry.get("bytes")
        token = str(entry.get("token", ""))
        tokens.append(token_text(token, raw))
        token_logprobs.append(entry.get("logprob"))
        alternatives: dict[str, float | None] = {}
        for alt in (entry.get("top_logprobs") or [])[:top_n]:
            if isinstance(alt, dict):
                # setdefault: two ids rendering to one string keep the likelier one.
                alternatives.setdefault(token_text(str(alt.get("token", "")), alt.get("bytes")),
                                        alt.get("logprob"))
        top.append(alternatives)
        offsets.append(offset)
        own = bytes(raw) if isinstance(raw, list) else token.encode()
        chars, pending = _complete(pending + own)
        offset += chars
    legacy = {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top,
              "text_offset": offsets}
    return legacy, offset, pending


def mean_logprob(logprobs: Any) -> float:
    """Mean logprob per token of one choice (``-inf`` when it has no tokens).

    This is the ``best_of`` ranking: OpenAI keeps the candidates with the
    highest log probability per token.
    """
    values = [e.get("logprob") for e in _entries(logprobs)]
    mean = mean_of(float(v) for v in values if isinstance(v, int | float))
    return -math.inf if mean is None else mean
