"""Widget states for the browser tests and the benchmark, made by gptmagic's own builders.

Every state comes from :mod:`gptmagic.widgets.state` (the contract in
docs/widgets.md), fed with synthetic results and prompts: model text with
markup payloads, characters split across tokens, echoed prompt tokens, two
choices. Nothing calls a model.
"""

from __future__ import annotations

import math
import random
from typing import Any

from gptmagic.core.types import Choice, Result, TokenLogprob, TopLogprob
from gptmagic.views.widgets import state as st

__all__ = ["XSS", "big_heatmap_state", "big_tokens_state", "fixture", "heatmap_result",
           "logprob_tokens"]

#: Model text that would run or restyle the page if it were treated as markup.
XSS = (
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    "</style><b>bold</b>",
)

#: An alternative offered at every position: markup again, and a line break.
_ALTS = ((" city", 0.6), (" capital", 0.2), ("<img src=x onerror=alert(1)>", 0.1), ("\n", 0.05))

# (token bytes, probability or None); the first 4 are the echoed prompt.
_CHOICE0: list[tuple[bytes, float | None]] = [
    (b"The", None), (b" capital", 0.02), (b" of", 0.9), (b" France", 0.5),
    (b" is", 0.97), (b" Paris", 0.93), (b".", 0.6), (b"\n", 0.3),
    (XSS[0].encode(), 0.004), (b" and", 0.45), (b" ", 0.08), (XSS[1].encode(), 0.0009),
    (b" then", 0.7), (XSS[2].encode(), 0.2),
    (" 日本".encode(), 0.35), (b"\xe8\xaa", 0.999), (b"\x9e", 0.998),  # 語 split in two
    (b" ok", 0.03), (b" emoji", 0.12), (b" ", 0.4),
    (b"\xf0\x9f", 0.99), (b"\x99\x82", 0.97),  # 🙂 split in two
    (b" fin", 0.25), (b".", 0.85),
]
_CHOICE1: list[tuple[bytes, float | None]] = [
    (b"The", None), (b" capital", 0.02), (b" of", 0.9), (b" France", 0.5),
    (b" is", 0.97), (b" Lyon", 0.01), (b"?", 0.05), (b" No", 0.3), (b",", 0.6),
    (b" Paris", 0.8), (b".", 0.9),
]
N_PROMPT = 4


def logprob_tokens(spec: list[tuple[bytes, float | None]], n_prompt: int = 0,
                   alts: tuple[tuple[str, float], ...] = _ALTS) -> list[TokenLogprob]:
    """TokenLogprobs for ``(bytes, prob)`` pairs; each gets the chosen token plus ``alts``."""
    out = []
    for i, (raw, p) in enumerate(spec):
        lp = None if p is None else math.log(p)
        top: tuple[TopLogprob, ...] = ()
        if lp is not None:
            rest = 1 - p
            top = (TopLogprob(raw.decode("utf-8", "replace"), lp, raw),
                   *(TopLogprob(a, math.log(rest * share), a.encode())
                     for a, share in alts if rest * share > 0))
            top = top[:5]
        out.append(TokenLogprob(raw.decode("utf-8", "replace"), lp, raw, top,
                                prompt=i < n_prompt))
    return out


def heatmap_result() -> Result:
    """A completion with echo, two choices and logprobs (see the module doc)."""
    choices = []
    for index, spec, finish in ((0, _CHOICE0, "stop"), (1, _CHOICE1, "length")):
        toks = logprob_tokens(spec, N_PROMPT)
        text = b"".join(raw for raw, _ in spec[N_PROMPT:]).decode("utf-8")
        choices.append(Choice(index=index, text=text, finish_reason=finish,
                              prompt_logprobs=toks[:N_PROMPT], logprobs=toks[N_PROMPT:]))
    return Result(kind="completion", model="test-model", choices=choices)


#: The token view's text: markup, tabs, line breaks, an emoji and CJK.
TOKENS_TEXT = ("Hello, world 🙂\tTab\n  two " + XSS[0] + XSS[1] + XSS[2] + " 日本語 ok")

#: The counter's prompt: markup in every message.
COUNTER_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. " + XSS[0]},
    {"role": "user", "name": "alice", "content": "Summarise " + XSS[1] + " please"},
    {"role": "assistant", "content": XSS[2]},
]


def fixture(name: str) -> dict[str, Any]:
    """A fresh state: ``"heatmap"``, ``"tokens"`` or ``"counter"``."""
    if name == "heatmap":
        return st.heatmap_state(heatmap_result(), threshold=0.1)
    if name == "tokens":
        return st.tokenview_state(TOKENS_TEXT, ["gpt-4o", "cl100k_base"])
    if name == "counter":
        return st.counter_state(COUNTER_MESSAGES, "gpt-4o", max_tokens=16384)
    raise ValueError(f"no fixture {name!r}")


_WORDS = ("the", "model", "token", "Paris", "is", "a", "city", "of", "light", "and", "code",
          "logprob", "über", "日本", "naïve", "🙂", "\n", "\t", "<b>", "&amp;")


def big_logprob_tokens(n: int, *, top_k: int = 5, seed: int = 0) -> list[TokenLogprob]:
    """``n`` generated tokens with ``top_k`` alternatives each (random, reproducible)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        word = rng.choice(_WORDS)
        piece = word if word in ("\n", "\t") or i == 0 else " " + word
        p = min(0.9999, max(1e-5, rng.random() ** 3 if rng.random() < 0.3 else rng.random()))
        lp = math.log(p)
        top = [TopLogprob(piece, lp, piece.encode())]
        for k in range(top_k - 1):
            alt = " " + rng.choice(_WORDS)
            top.append(TopLogprob(alt, math.log(max((1 - p) * 0.5 ** (k + 1), 1e-9)),
                                  alt.encode()))
        out.append(TokenLogprob(piece, lp, piece.encode(), tuple(top[:top_k])))
    return out


def big_heatmap_state(n: int, *, top_k: int = 5, seed: int = 0) -> dict[str, Any]:
    """A heatmap state of ``n`` tokens, each with ``top_k`` alternatives."""
    return st.heatmap_state(big_logprob_tokens(n, top_k=top_k, seed=seed))


def big_text(n_tokens: int, *, seed: int = 0) -> str:
    """A text of roughly ``n_tokens`` o200k tokens."""
    rng = random.Random(seed)
    return "".join((" " if i else "") + rng.choice(_WORDS) for i in range(n_tokens))


def big_tokens_state(n_tokens: int, *, seed: int = 0) -> dict[str, Any]:
    """A token view state of one pane (gpt-4o) of roughly ``n_tokens`` tokens."""
    return st.tokenview_state(big_text(n_tokens, seed=seed), "gpt-4o")
