"""What a run would cost before it runs: :func:`estimate_run` (no call is sent)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gptmagic.client.config import Provider
from gptmagic.eval.batchfiles import not_batchable
from gptmagic.eval.extras import extras_by_prompt
from gptmagic.eval.jobs import build_jobs, load_cases

__all__ = ["estimate_run"]


def estimate_run(data: Any, prompt: Any, models: Sequence[str] | str, *,
                 params: Mapping[str, Any] | None = None,
                 grid: Mapping[str, Sequence[Any]] | None = None, repeats: int = 1,
                 provider: str | Provider | None = None,
                 api: str | Mapping[str, str] | None = None, schema: Any = None,
                 tools: Any = None, max_steps: int | None = None,
                 tool_choice: Any = None, batch: Any = False) -> Any:
    """What :func:`evaluate` with the same arguments would cost, before running it.

    Per prompt × model × API: calls, prompt tokens (counted exactly where the
    encoding is known), and the cost range (prompt only, expected, at most
    ``max_tokens`` per reply) in USD; unknown prices stay unknown (NaN). A
    reasoning model bills its hidden reasoning as output, beyond the expected
    reply: ``cost_high`` (at most ``max_tokens``, reasoning included) bounds it.
    A prompt with ``tools`` may make ``max_steps`` calls: its ``cost_high`` counts
    them all at the first call's worst case (later calls carry the exchange, so
    this is an estimate, not a bound).

    ``batch=True`` prices the calls :func:`evaluate` with ``batch=True`` would put in
    batches at the batch price (genai-prices' where it has one, else the standard
    price less OpenAI's published 50% discount); the table gains ``batch`` (whether
    that row's calls go in batches: a prompt with tools runs live) and
    ``price_source`` (which price, in words).
    """
    import pandas as pd

    from gptmagic.catalog.pricing import estimate
    from gptmagic.client.facade import count_tokens

    models = [models] if isinstance(models, str) else list(models)
    prompts = prompt if isinstance(prompt, Mapping) else {"prompt": prompt}
    extras = extras_by_prompt(list(prompts), schema=schema, tools=tools, max_steps=max_steps,
                              tool_choice=tool_choice, params=params)
    jobs = build_jobs(load_cases(data), prompts, models, provider, dict(params or {}),
                      dict(grid or {}), repeats, api, extras)
    agg: dict[tuple[str, str, str], dict[str, Any]] = {}
    counted: dict[tuple[str, int, str], int] = {}
    for j in jobs:
        ck = (j.prompt, j.row, j.model)
        if ck not in counted:
            counted[ck] = count_tokens(j.messages, j.model, breakdown=False).total
        n = counted[ck]
        batched = bool(batch) and not_batchable(j) is None
        e = estimate(n, j.model, max_tokens=j.max_tokens,
                     provider=j.provider.kind, batch=batched)
        a = agg.setdefault((j.prompt, j.model, j.api),
                           {"prompt": j.prompt, "model": j.model, "api": j.api, "calls": 0,
                            "prompt_tokens": 0, "cost_low": 0.0, "cost_expected": 0.0,
                            "cost_high": 0.0,
                            **({"batch": batched, "price_source": e.expected.source}
                               if batch else {})})
        a["calls"] += 1
        a["prompt_tokens"] += n
        loop = j.extras.max_steps if j.extras.tools else 1
        for col, c, times in (("cost_low", e.low, 1), ("cost_expected", e.expected, 1),
                              ("cost_high", e.high, loop)):
            a[col] = (a[col] + float(c.total) * times if c.total is not None
                      else float("nan"))
    return pd.DataFrame(list(agg.values()))
