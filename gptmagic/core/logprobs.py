"""Logprobs of both endpoints, normalised to :class:`~gptmagic.types.TokenLogprob`.

Chat completions send ``{"content": [{"token", "logprob", "bytes",
"top_logprobs": [...]}, ...]}``. Legacy completions send parallel arrays
``tokens`` / ``token_logprobs`` / ``top_logprobs`` (a dict per position) /
``text_offset``; with ``echo`` the prompt's tokens come first (the very first
has a null logprob). Some OpenAI-compatible servers (llama.cpp) send the chat
form from the legacy endpoint; both forms are accepted on both endpoints.

Legacy tokens that are not valid UTF-8 on their own arrive as
``"bytes:\\xe2\\x80"``; their bytes are recovered here.

The statistics (:func:`mean_of`, :func:`perplexity_of` and their
per-token forms) are the only ones in gptmagic: the magics, the heatmap, the
results table and the engine's ``best_of`` ranking all use them. A logprob
below the API's floor (:data:`FLOOR`, what OpenAI sends for an impossible
token) counts as the floor; a missing or NaN one is left out; a perplexity
too large for a float is ``math.inf``, never an ``OverflowError``.

What a server sends is checked here, once (:func:`from_wire`): a logprob
must be a number at most 0 (a rounding error up to :data:`ROUNDING` above
it counts as 0), ``-Infinity`` becomes :data:`FLOOR`, and anything else (NaN,
+Infinity, 1000, a string) raises :class:`~gptmagic.errors.MalformedResponseError`,
so every logprob a result holds is finite and a probability stays <= 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from gptmagic.core.types import TokenLogprob, TopLogprob
from gptmagic.errors import MalformedResponseError

__all__ = ["FLOOR", "clamp", "from_wire", "mean_logprob", "mean_of", "perplexity", "perplexity_of",
           "token_bytes"]

#: OpenAI's logprob for an impossible token; anything lower (-inf) is clamped to it.
FLOOR = -9999.0

#: A logprob this far above 0 is float rounding of a certain token, not a bad server.
ROUNDING = 1e-4

_BYTES_TOKEN = re.compile(r"^bytes:((?:\\x[0-9a-fA-F]{2})+)$")


def token_bytes(token: str, raw: Any = None) -> bytes:
    """The bytes of a token: the provider's list if given, else from the string."""
    if isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        return bytes(raw)
    m = _BYTES_TOKEN.match(token)
    if m:
        return bytes(int(h, 16) for h in m.group(1).split("\\x")[1:])
    return token.encode("utf-8")


def _logprob(v: Any, where: str) -> float | None:
    """A server's logprob checked: None if missing, finite and <= 0 if given."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise MalformedResponseError(f"{where} is {v!r}, not a number")
    v = float(v)
    if v == -math.inf:
        return FLOOR
    if not v <= ROUNDING:  # NaN fails every comparison
        raise MalformedResponseError(
            f"{where} is {v!r}: a log probability is a number at most 0")
    return min(v, 0.0)


def _offset(v: Any, where: str) -> int | None:
    if v is None:
        return None
    if (isinstance(v, bool) or not isinstance(v, int | float) or v < 0
            or (isinstance(v, float) and not v.is_integer())):
        raise MalformedResponseError(f"{where} is {v!r}, not a character offset")
    return int(v)


def _chat_entries(entries: Sequence[Any], where: str, prompt: bool = False
                  ) -> list[TokenLogprob]:
    out: list[TokenLogprob] = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            continue
        token = str(e.get("token", ""))
        logprob = _logprob(e.get("logprob"), f"{where}[{i}].logprob")
        tops = tuple(
            TopLogprob(
                token=str(t.get("token", "")),
                logprob=_logprob(t.get("logprob"), f"{where}[{i}].top_logprobs[{j}].logprob")
                or 0.0,
                bytes=token_bytes(str(t.get("token", "")), t.get("bytes")),
            )
            for j, t in enumerate(e.get("top_logprobs") or [])
            if isinstance(t, dict)
        )
        out.append(
            TokenLogprob(
                token=token,
                logprob=logprob,
                bytes=token_bytes(token, e.get("bytes")),
                top=tops,
                prompt=prompt,
            )
        )
    return out


def _legacy_entries(lp: dict[str, Any]) -> list[TokenLogprob]:
    tokens = lp.get("tokens") or []
    lps = lp.get("token_logprobs") or []
    tops = lp.get("top_logprobs") or []
    offsets = lp.get("text_offset") or []
    out: list[TokenLogprob] = []
    for i, tok in enumerate(tokens):
        tok = str(tok)
        top_d = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        top = tuple(
            sorted(
                (
                    TopLogprob(token=str(t),
                               logprob=_logprob(v, f"logprobs.top_logprobs[{i}][{t!r}]") or 0.0,
                               bytes=token_bytes(str(t)))
                    for t, v in top_d.items()
                ),
                key=lambda a: -a.logprob,
            )
        )
        off = offsets[i] if i < len(offsets) else None
        out.append(
            TokenLogprob(
                token=tok,
                logprob=_logprob(lps[i], f"logprobs.token_logprobs[{i}]") if i < len(lps)
                else None,
                bytes=token_bytes(tok),
                top=top,
                offset=_offset(off, f"logprobs.text_offset[{i}]"),
            )
        )
    return out


def from_wire(
    lp: Any, *, prompt_len: int | None = None
) -> tuple[list[TokenLogprob] | None, list[TokenLogprob] | None]:
    """Normalise one choice's ``logprobs`` field.

    Returns ``(completion_tokens, prompt_tokens)``; ``prompt_tokens`` is not
    None only for echoed legacy completions, split from the completion by
    ``text_offset < prompt_len``. A value no server can mean (a logprob
    above 0, NaN, a negative offset) raises :class:`MalformedResponseError`.
    """
    if not isinstance(lp, dict):
        return None, None
    if "content" in lp or "refusal" in lp:
        content = _chat_entries(lp.get("content") or [], "logprobs.content")
        refusal = _chat_entries(lp.get("refusal") or [], "logprobs.refusal")
        return (content + refusal), None
    if "tokens" in lp:
        entries = _legacy_entries(lp)
        if prompt_len is None:
            return entries, None
        prompt = [_as_prompt(e) for e in entries if e.offset is not None and e.offset < prompt_len]
        rest = [e for e in entries if e.offset is None or e.offset >= prompt_len]
        return rest, prompt
    return None, None


def _as_prompt(e: TokenLogprob) -> TokenLogprob:
    return TokenLogprob(e.token, e.logprob, e.bytes, e.top, e.offset, True)


def clamp(value: float | None) -> float | None:
    """A logprob raised to :data:`FLOOR`; None for a missing or NaN one."""
    if value is None or value != value:
        return None
    return max(float(value), FLOOR)


def mean_of(values: Iterable[float | None]) -> float | None:
    """Mean of clamped logprobs, leaving out missing ones (None if none are left)."""
    kept = [v for v in map(clamp, values) if v is not None]
    return math.fsum(kept) / len(kept) if kept else None


def perplexity_of(mean: float | None) -> float | None:
    """exp(-mean logprob); ``math.inf`` past a float's range; None for None."""
    if mean is None:
        return None
    try:
        return math.exp(-mean)
    except OverflowError:
        return math.inf


def mean_logprob(tokens: Sequence[TokenLogprob]) -> float | None:
    """Mean logprob over tokens that have one, clamped at :data:`FLOOR` (None if none do)."""
    return mean_of(t.logprob for t in tokens)


def perplexity(tokens: Sequence[TokenLogprob]) -> float | None:
    """exp(-mean logprob): 1.0 means the model was certain of every token (inf at the floor)."""
    return perplexity_of(mean_logprob(tokens))
