"""The calls of a run: cases read from a table, and the grid of prompts × models ×
parameters × repeats expanded into :class:`Job` s (each one call, or one tool loop,
with its messages, its API, the body it sends there, and its prompt's schema and
tools). A prompt's ``![alt](path)`` images are read as a cell's are (relative to the
working directory; ``![x]({column})`` names one per row)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from gptmagic.client.config import APIS, Provider, refuse_misrouted, resolve
from gptmagic.client.images import load_images
from gptmagic.core.messages import interpolate, read_cell
from gptmagic.core.structured import with_format
from gptmagic.errors import GptmagicError, RequestError
from gptmagic.eval.apis import call_body, check_api, choose_api
from gptmagic.eval.extras import Extras
from gptmagic.eval.rows import call_key

__all__ = ["Job", "build_jobs", "load_cases", "resolve_model", "set_keys"]


def load_cases(data: Any) -> list[dict[str, Any]]:
    """Rows as dicts from a DataFrame, a list of dicts, or a CSV/JSONL path."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data.to_dict(orient="records")
    if isinstance(data, str | Path):
        path = Path(data)
        if not path.exists():
            raise RequestError(f"data file {path} does not exist", param="data")
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True).to_dict(orient="records")
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path).to_dict(orient="records")
        raise RequestError(f"{path}: expected a .csv or .jsonl file", param="data")
    rows = list(data)
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise RequestError(f"data row {i} is a {type(r).__name__}, not a dict", param="data")
    return [dict(r) for r in rows]


def _messages(template: Any, row: Mapping[str, Any], name: str, i: int) -> list[dict[str, Any]]:
    where = f"the data (its columns: {', '.join(map(str, row)) or 'none'})"
    try:
        if isinstance(template, str):  # its images read (a path is no URL a server takes)
            return load_images(read_cell(template, namespace=row, where=where),
                               base=os.getcwd()).messages
        return [{**m, "content": interpolate(str(m.get("content", "")), row, where=where)}
                for m in template]
    except GptmagicError as e:
        raise RequestError(f"prompt {name!r}, data row {i}: {e}", param="prompt") from None


@dataclass
class Job:
    """One call of the grid: ``params`` as the user wrote them (chat terms), ``body``
    what is sent to ``api`` besides the model (``messages`` or ``input`` and the
    parameters under that API's names, a schema's strict format among them);
    ``extras`` its prompt's schema (to parse the reply) and tools (a loop runs them;
    their definitions are part of ``key``)."""

    row: int
    prompt: str
    model: str
    provider: Provider
    params: dict[str, Any]
    grid: dict[str, Any]
    repeat: int
    messages: list[dict[str, Any]]
    api: str = "chat"
    body: dict[str, Any] = field(default_factory=dict)
    extras: Extras = field(default_factory=Extras)
    key: str = ""
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    cached: bool = False
    cost: Decimal | None = None
    #: The cost's parts (``reasoning``, ``cached_input``, ``cache_write``): None where unknown.
    parts: dict[str, Decimal | None] = field(default_factory=dict)
    #: The provider's id of the Batch API batch it went in (None: sent live).
    batch: str | None = None
    #: Why it has no answer yet, for a job in a batch that has not given one (None: it has
    #: a result or an error).
    pending: str | None = None

    @property
    def max_tokens(self) -> int | None:
        """The reply's limit, under whichever name the user gave it."""
        for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
            if self.params.get(name) is not None:
                return int(self.params[name])
        return None


def resolve_model(spec: str, provider: str | Provider | None) -> tuple[Provider, str]:
    """A model of the run (``"profile:model"`` read by :func:`resolve`) and its provider;
    a hosted model name that would reach the embedded model is an error here."""
    prov, model = resolve(provider, spec)
    refuse_misrouted(prov, model, spec, named=provider is not None or ":" in spec)
    return prov, model


def build_jobs(cases: list[dict[str, Any]], prompts: Mapping[str, Any], models: Sequence[str],
               provider: str | Provider | None, params: Mapping[str, Any],
               grid: Mapping[str, Sequence[Any]], repeats: int,
               api: str | Mapping[str, str] | None = None,
               extras: Mapping[str, Extras] | None = None) -> list[Job]:
    """Every call of the run, in a stable order (row, prompt, model, grid, repeat).

    ``api`` (see :mod:`gptmagic.eval.apis`) picks each model's API; a grid over
    ``"api"`` sends every call to each API named there instead. ``extras`` are the
    prompts' schemas and tools (:func:`gptmagic.eval.extras.extras_by_prompt`)."""
    if "api" in params:
        raise RequestError("'api' is not a request parameter: give evaluate(..., api=...) "
                           "or grid={'api': [...]}", param="params")
    check_api(api, models)
    for name in grid.get("api", ()):
        if name not in APIS:
            raise RequestError(f"grid 'api' has {name!r}; use 'chat' or 'responses'",
                               param="grid")
    combos = [dict(zip(grid, values, strict=True))
              for values in itertools.product(*grid.values())] or [{}]
    resolved = [(*resolve_model(m, provider), m) for m in models]
    jobs: list[Job] = []
    for i, row in enumerate(cases):
        for pname, template in prompts.items():
            msgs = _messages(template, row, pname, i)
            ask = (extras or {}).get(pname, Extras())
            for prov, model, spec in resolved:
                for combo in combos:
                    p = {**params, **combo}
                    how = p.pop("api", None) or choose_api(api, spec, prov)
                    if ask.schema is not None:  # sent as chat's format; Responses translates
                        p = with_format(p, ask.schema, "chat")
                    body = call_body(how, msgs, p, model, prov)
                    jobs.extend(Job(i, pname, model, prov, p, combo, rep, msgs, how, body, ask)
                                for rep in range(repeats))
    return jobs


def set_keys(jobs: list[Job]) -> dict[str, str]:
    """Set every job's cache key; returns each provider's base URL (as stored)."""
    base_urls: dict[str, str] = {}
    for job in jobs:
        prov = job.provider
        if prov.name not in base_urls:
            base_urls[prov.name] = ("local-engine" if prov.kind == "local"
                                    else prov.endpoint("chat/completions", job.model)[0])
        # The API is in the key (as its kind): a chat result is never a Responses answer;
        # so are the prompt's schema and tools: changing one asks again.
        kind = "response" if job.api == "responses" else "chat"
        job.key = call_key(base_urls[prov.name], kind,
                           {"model": job.model, **job.body, **job.extras.key()}, job.repeat)
    return base_urls
