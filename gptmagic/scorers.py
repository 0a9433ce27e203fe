"""Scorers: grade one model output against its data row, from 0 (bad) to 1 (good).

A scorer is called with a :class:`Case` (the output text, the data row and,
when available, the full :class:`~gptmagic.types.Result`) and returns a float
in ``[0, 1]`` (or a :class:`Score`: the number and a sentence saying why, kept as the
results' ``explain.<name>`` column; :func:`judge` explains with its judge's reply),
or raises :class:`ScorerError` when it cannot grade the case
(missing column, no logprobs, an unparseable judge reply). The batch runner
records the error and a NaN score; it never stops the run.

Sync scorers implement ``__call__``; async ones (:func:`judge`, async
:func:`custom`) set ``is_async = True`` and implement ``ascore``.
:func:`score_async` awaits either kind.

Every constructor takes ``name=`` (the score's column in the results) and
``weight=`` (its share in :func:`combine`).

- Text: :func:`exact`, :func:`contains`, :func:`icontains`, :func:`regex`,
  :func:`similarity`, :func:`choice`, :func:`numeric`.
- JSON: :func:`json_valid`, :func:`json_schema`.
- Structured replies (``evaluate(schema=...)``): :func:`schema_valid`,
  :func:`field_equals`, and ``field=`` on every text scorer (``exact(field="answer")``).
- Tool loops (``evaluate(tools=...)``): :func:`tool_called`, :func:`tool_sequence`.
- Model: :func:`logprob_confidence` (needs logprobs), :func:`judge` (LLM as judge, async).
- Your own and mixes: :func:`custom`, :func:`combine`.

The base lives in :mod:`gptmagic.eval.scoring`, the text and JSON scorers in
:mod:`gptmagic.eval.scorers_text`, the structured and tool ones in
:mod:`gptmagic.eval.scorers_structured`, the rest in :mod:`gptmagic.eval.scorers_model`;
this module is the public face.
"""

from __future__ import annotations

from gptmagic.eval.scorers_model import combine, custom, judge, logprob_confidence
from gptmagic.eval.scorers_structured import (
    field_equals,
    schema_valid,
    tool_called,
    tool_sequence,
)
from gptmagic.eval.scorers_text import (
    choice,
    contains,
    exact,
    icontains,
    json_schema,
    json_valid,
    numeric,
    regex,
    similarity,
)
from gptmagic.eval.scoring import Case, Score, Scorer, ScorerError, score_async

__all__ = [
    "Case",
    "Score",
    "Scorer",
    "ScorerError",
    "choice",
    "combine",
    "contains",
    "custom",
    "exact",
    "field_equals",
    "icontains",
    "json_schema",
    "json_valid",
    "judge",
    "logprob_confidence",
    "numeric",
    "regex",
    "schema_valid",
    "score_async",
    "similarity",
    "tool_called",
    "tool_sequence",
]

# Re-exported names belong to this module, as httpx does: reprs, docs and
# pickles then name ``gptmagic.scorers``, not the private module defining them.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
