"""The widgets' states: pure, JSON-able dicts drawn by the JS, static HTML and text views.

The shapes are the contract in ``docs/widgets.md``. Nothing here touches
IPython, widgets or the network: counting or tokenizing on the embedded
model's engine is I/O, so the caller hands in the function that does it
(``count=``, ``engine_tokens=``; :mod:`gptmagic.notebook.widgets` passes the
shared client's). No state carries a key, a header or a base URL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from gptmagic.catalog.tokens import TokenCount
from gptmagic.catalog.tokens import count as count_tiktoken
from gptmagic.core.logprobs import clamp, mean_of, perplexity_of, token_bytes
from gptmagic.core.text import preview
from gptmagic.core.types import Choice, Result, TokenLogprob, TopLogprob
from gptmagic.errors import RequestError
from gptmagic.views.widgets.pieces import alternative_piece, decode_tokens, piece_bytes
from gptmagic.views.widgets.scale import STOPS

__all__ = [
    "Counter", "EngineTokens", "NoLogprobsError", "PREVIEW_CHARS", "VERSION", "counter_state",
    "error_counter_state", "heatmap_state", "tokenview_state"
]

#: The state version every view checks before drawing.
VERSION = 1
#: Characters of a message shown in the counter's preview column.
PREVIEW_CHARS = 80
#: Most least-likely tokens listed in a heatmap summary.
_LEAST = 5

_LOGPROBS_HINT = ("ask for them: %%chat --logprobs (or %%complete --logprobs 5), "
                  "gptmagic.chat(..., logprobs=True, top_logprobs=5) or "
                  "gptmagic.complete(..., logprobs=5)")


class Counter(Protocol):
    """Counts a prompt for a model (``gptmagic.count_tokens`` has this shape)."""

    def __call__(self, messages_or_text: str | Sequence[Mapping[str, Any]], model: str, *,
                 tools: Sequence[Mapping[str, Any]] | None = None) -> TokenCount: ...


class EngineTokens(Protocol):
    """An embedded model's tokens of a text: ``{"tokens": [...], "pieces": [...]}``
    (``model``: which embedded model; None, the default one)."""

    def __call__(self, text: str, model: str | None = None) -> Mapping[str, Any]: ...


class NoLogprobsError(RequestError):
    """A logprob heatmap was asked of a result that carries no logprobs."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} has no logprobs to draw; {_LOGPROBS_HINT}", param="logprobs")


# -- token counter ---------------------------------------------------------------


def counter_state(
    messages_or_text: str | Sequence[Mapping[str, Any]],
    model: str,
    *,
    max_tokens: int | None = None,
    mode: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    count: Counter | None = None,
) -> dict[str, Any]:
    """The counter state (``kind: "counter"``) of a prompt for ``model``.

    ``mode`` is ``"text"`` (a plain prompt) or ``"chat"`` (messages); by
    default a string is text and a list is chat. A string in chat mode is
    parsed with the cell grammar (``user:`` / ``system:`` markers), so a
    :class:`~gptmagic.CellSyntaxError` may be raised. ``count`` counts the
    tokens (default: tiktoken, hosted models only; pass
    :func:`gptmagic.count_tokens` for the embedded model).
    """
    from gptmagic.catalog.models import model_info
    from gptmagic.core.messages import parse_cell

    count_tokens: Counter = count or count_tiktoken
    mode = mode or ("text" if isinstance(messages_or_text, str) else "chat")
    if mode not in ("chat", "text"):
        raise RequestError(f"mode must be 'chat' or 'text', not {mode!r}", param="mode")
    if mode == "text" and not isinstance(messages_or_text, str):
        raise RequestError("text mode counts a string; pass messages with mode='chat'",
                           param="mode")
    messages: list[Mapping[str, Any]] = []
    if mode == "chat":
        if isinstance(messages_or_text, str):
            messages.extend(parse_cell(messages_or_text) if messages_or_text.strip() else [])
        else:
            messages.extend(messages_or_text)
    if mode == "chat" and messages:
        counted = count_tokens(messages, model, tools=tools)
    else:  # text, or a chat not typed yet (nothing to count, nothing primed)
        counted = count_tokens(messages_or_text if mode == "text" else "", model)
    rows = [
        [mc.role, _name(m.get("name")), mc.content, mc.name, mc.overhead,
         _preview(m.get("content"))]
        for m, mc in zip(messages, counted.messages, strict=True)
    ]
    info = model_info(model)
    window = info.context_window
    return {
        "v": VERSION, "kind": "counter", "model": model, "encoding": counted.encoding,
        "exact": counted.exact, "note": counted.note, "mode": mode, "rows": rows,
        "reply_priming": counted.reply_priming, "tools": counted.tools, "total": counted.total,
        "context_window": window, "max_output_tokens": info.max_output_tokens,
        "fill": round(counted.total / window, 6) if window else None,
        "cost": _cost(counted.total, model, max_tokens), "error": None,
    }


def error_counter_state(model: str, message: str, mode: str = "chat") -> dict[str, Any]:
    """A counter state that shows ``message`` instead of a count."""
    return {
        "v": VERSION, "kind": "counter", "model": model, "encoding": "", "exact": False,
        "note": "", "mode": mode, "rows": [], "reply_priming": 0, "tools": 0, "total": 0,
        "context_window": None, "max_output_tokens": None, "fill": None, "cost": None,
        "error": message,
    }


def _name(value: Any) -> str | None:
    return None if value is None else str(value)


def _preview(content: Any) -> str:
    return preview(content, PREVIEW_CHARS)


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount, "f")


def _cost(total: int, model: str, max_tokens: int | None) -> dict[str, Any] | None:
    from gptmagic.catalog.pricing import estimate

    try:
        est = estimate(total, model, max_tokens=max_tokens)
    except ValueError as exc:
        raise RequestError(str(exc), param="max_tokens") from None
    if est.expected.total is None:
        return None
    return {
        "currency": est.expected.currency, "low": _money(est.low.total),
        "expected": _money(est.expected.total), "high": _money(est.high.total),
        "source": est.expected.source,
        "expected_completion_tokens": est.expected_completion_tokens,
        "max_completion_tokens": est.max_completion_tokens,
    }


# -- token view ------------------------------------------------------------------


def tokenview_state(text: str, models_or_encodings: str | Sequence[str], *,
                    engine_tokens: EngineTokens | None = None) -> dict[str, Any]:
    """The token view state (``kind: "tokens"``): ``text`` under one or two tokenizers.

    Each name is a model (``"gpt-4o"``, ``"local"``) or a tiktoken encoding
    (``"cl100k_base"``). The embedded model is tokenized by its engine,
    through ``engine_tokens``.
    """
    if not isinstance(text, str):
        raise RequestError(f"the token view shows a string, not {type(text).__name__}",
                           param="text")
    names: list[Any] = [models_or_encodings] if isinstance(models_or_encodings, str) else (
        list(models_or_encodings) if isinstance(models_or_encodings, Sequence) else [])
    if not 1 <= len(names) <= 2 or not all(isinstance(n, str) and n for n in names):
        raise RequestError("the token view shows one or two models or encodings, e.g. "
                           "model='gpt-4o', compare='cl100k_base'", param="compare")
    return {"v": VERSION, "kind": "tokens",
            "panes": [_pane(text, n, engine_tokens) for n in names]}


def _pane(text: str, name: str, engine_tokens: EngineTokens | None) -> dict[str, Any]:
    import tiktoken

    from gptmagic.catalog.embedded import SMOLLM2, embedded_model
    from gptmagic.catalog.tokens import encoding_for, get_encoding

    model: str | None = name
    note = ""
    if name in tiktoken.list_encoding_names():
        model, enc_name = None, name
    else:
        enc_name = encoding_for(name)
    if enc_name == "local":
        if engine_tokens is None:
            raise RequestError("the embedded model is tokenized by its engine: use "
                               "gptmagic.token_view (or pass engine_tokens=)", param="model")
        data = engine_tokens(text, name)
        ids = [int(t) for t in data["tokens"]]
        raw = [piece_bytes(p) for p in data["pieces"]]
        encoding, exact = (embedded_model(name) or SMOLLM2).encoding, True
    else:
        enc, exact = get_encoding("o200k_base" if enc_name == "unknown" else enc_name)
        ids = enc.encode(text, disallowed_special=())
        raw = enc.decode_tokens_bytes(ids)
        encoding = enc.name
        if enc_name == "unknown":
            exact, note = False, f"unknown model {name!r}: estimated with {encoding}"
        elif not exact:
            note = f"{enc_name} is not available offline: estimated with {encoding}"
    pieces, partial = decode_tokens(raw)[:2]
    label = encoding if model is None else f"{model} · {encoding}"
    return {"label": label, "model": model, "encoding": encoding, "exact": exact, "note": note,
            "count": len(ids), "ids": ids, "pieces": pieces, "partial": partial}


# -- logprob heatmap ---------------------------------------------------------------


def heatmap_state(
    source: Result | Choice | Sequence[Choice] | Sequence[TokenLogprob],
    *,
    threshold: float = 0.1,
) -> dict[str, Any]:
    """The heatmap state (``kind: "heatmap"``) of a result's logprobs.

    ``source`` is a :class:`~gptmagic.Result`, one :class:`~gptmagic.Choice`,
    a list of choices, or a list of :class:`~gptmagic.TokenLogprob`. Tokens
    with probability below ``threshold`` are highlighted by the views.
    Raises :class:`NoLogprobsError` when there are no logprobs to draw.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not (
            0.0 <= threshold <= 1.0):
        raise RequestError(f"threshold is a probability from 0 to 1, got {threshold!r}",
                           param="threshold")
    choices = _choices(source)
    return {"v": VERSION, "kind": "heatmap", "scale": [list(s) for s in STOPS],
            "threshold": float(threshold), "choices": [_choice_state(c) for c in choices]}


def _has_logprobs(c: Choice) -> bool:
    return bool(c.logprobs or c.prompt_logprobs)


def _choices(source: Any) -> list[Choice]:
    if isinstance(getattr(source, "result", None), Result):  # a magic's Reply
        source = source.result
    if isinstance(source, Result):
        if not any(_has_logprobs(c) for c in source.choices):
            raise NoLogprobsError(f"this {source.kind} result")
        return list(source.choices)
    if isinstance(source, Choice):
        if not _has_logprobs(source):
            raise NoLogprobsError(f"choice {source.index}")
        return [source]
    if isinstance(source, Sequence) and not isinstance(source, str | bytes):
        items = list(source)
        if items and all(isinstance(c, Choice) for c in items):
            if not any(_has_logprobs(c) for c in items):
                raise NoLogprobsError("none of these choices")
            return items
        if items and all(isinstance(t, TokenLogprob) for t in items):
            return [Choice(index=0, logprobs=items)]
        if not items:
            raise NoLogprobsError("an empty list")
    raise RequestError("logprob_heatmap takes a Result (or a magic's Reply), a Choice, a list "
                       f"of choices or a list of TokenLogprob, not {type(source).__name__}",
                       param="result")


def _lp(value: float | None) -> float | None:
    v = clamp(value)
    return None if v is None else round(v, 4) + 0.0  # + 0.0 turns -0.0 into 0.0


def _bytes(t: TokenLogprob | TopLogprob) -> bytes:
    return t.bytes if t.bytes is not None else token_bytes(t.token)


def _choice_state(c: Choice) -> dict[str, Any]:
    tokens = [*(c.prompt_logprobs or ()), *(c.logprobs or ())]
    n_prompt = len(c.prompt_logprobs or ())
    while n_prompt < len(tokens) and tokens[n_prompt].prompt:
        n_prompt += 1
    decoded = decode_tokens([_bytes(t) for t in tokens])
    lps = [_lp(t.logprob) for t in tokens]
    top = [[[alternative_piece(decoded.pending[i], _bytes(a)), _lp(a.logprob)] for a in t.top]
           for i, t in enumerate(tokens)]
    return {"index": c.index, "finish_reason": c.finish_reason, "t": decoded.pieces, "lp": lps,
            "n_prompt": n_prompt, "top": top, "partial": decoded.partial,
            "summary": _summary(tokens, lps, n_prompt)}


def _summary(tokens: list[TokenLogprob], lps: list[float | None], n_prompt: int) -> dict[str, Any]:
    mean = mean_of(t.logprob for t in tokens[n_prompt:])
    ppl = perplexity_of(mean)
    # JSON has no infinity: a perplexity past a float's range is shown as none.
    perplexity = round(ppl, 4) if ppl is not None and math.isfinite(ppl) else None
    scored = [(i, lp) for i, lp in enumerate(lps) if i >= n_prompt and lp is not None]
    least = sorted(scored, key=lambda p: p[1])[:_LEAST]
    return {"tokens": len(tokens) - n_prompt,
            "mean_logprob": None if mean is None else round(mean, 4) + 0.0,
            "perplexity": perplexity, "least": [[i, lp] for i, lp in least]}
