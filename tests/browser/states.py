"""Widget states for the browser tests and the benchmark.

Small hand-written states (``fixtures/*.json``, written to the contract in
docs/widgets.md, with markup payloads in the model text) and synthetic large
ones. Large states come from gptmagic's own state builders when they exist.
"""

from __future__ import annotations

import json
import math
import random
from functools import cache
from pathlib import Path
from typing import Any

from gptmagic.widgets import _scale

__all__ = ["XSS", "big_heatmap_state", "big_tokens_state", "fixture"]

FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: Model text that would run or restyle the page if it were treated as markup.
XSS = (
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    "</style><b>bold</b>",
)

_WORDS = ("the", "model", "token", "Paris", "is", "a", "city", "of", "light", "and", "code",
          "logprob", "über", "日本", "naïve", "🙂", "\n", "\t", "<b>", "&amp;")


@cache
def _load(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text(encoding="utf-8")


def fixture(name: str) -> dict[str, Any]:
    """A fresh copy of ``fixtures/<name>.json`` (heatmap, tokens, counter)."""
    return json.loads(_load(name))


def _summary(lp: list[float | None], n_prompt: int) -> dict[str, Any]:
    gen = [(i, v) for i, v in enumerate(lp) if i >= n_prompt and v is not None]
    mean = sum(v for _, v in gen) / len(gen) if gen else 0.0
    return {"tokens": len(gen), "mean_logprob": round(mean, 4),
            "perplexity": round(math.exp(-mean), 4),
            "least": [[i, v] for i, v in sorted(gen, key=lambda x: x[1])[:5]]}


def big_heatmap_state(n: int, *, top_k: int = 5, seed: int = 0,
                      n_prompt: int = 0) -> dict[str, Any]:
    """A heatmap state of ``n`` tokens, each with ``top_k`` alternatives."""
    rng = random.Random(seed)
    t: list[str] = []
    lp: list[float | None] = []
    top: list[list[list[Any]]] = []
    for i in range(n):
        word = rng.choice(_WORDS)
        piece = word if word in ("\n", "\t") or i == 0 else " " + word
        p = min(0.9999, max(1e-5, rng.random() ** 3 if rng.random() < 0.3 else rng.random()))
        v = round(math.log(p), 4)
        t.append(piece)
        lp.append(v)
        rest = 1 - p
        alts = [[piece, v]]
        for k in range(top_k - 1):
            q = rest * (0.5 ** (k + 1))
            alts.append([" " + rng.choice(_WORDS), round(math.log(max(q, 1e-9)), 4)])
        top.append(alts[:top_k])
    return {"v": 1, "kind": "heatmap", "scale": _scale.STOPS, "threshold": 0.1,
            "choices": [{"index": 0, "finish_reason": "length", "t": t, "lp": lp,
                         "n_prompt": n_prompt, "top": top, "partial": [],
                         "summary": _summary(lp, n_prompt)}]}


def big_tokens_state(n: int, *, seed: int = 0) -> dict[str, Any]:
    """A token view state of one pane of ``n`` tokens."""
    rng = random.Random(seed)
    pieces = [(" " if i else "") + rng.choice(_WORDS) for i in range(n)]
    return {"v": 1, "kind": "tokens", "panes": [
        {"label": "synthetic", "model": None, "encoding": "o200k_base", "exact": True,
         "count": n, "ids": [rng.randrange(200_000) for _ in range(n)], "pieces": pieces,
         "partial": []}]}
