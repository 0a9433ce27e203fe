"""When OpenAI's models shut down, and whether a call should warn about it.

Pure data and date arithmetic: the clock is an argument (``today``), never
read here. :data:`SHUTDOWNS` is the package's own table of OpenAI's announced
shutdown dates, for when ``GET /v1/models`` (whose ``Model.shutdown_date``
is the live answer) cannot be reached; the client layer
(:mod:`gptmagic.client.lifecycle`) prefers the live answer.

A model is *retiring* within :data:`WARN_DAYS` days of its shutdown date and
*retired* on and after it. A dated snapshot the table does not list has the
date of its family (``gpt-4o-2024-08-06`` as ``gpt-4o``), and says so.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import MappingProxyType

__all__ = ["DEFAULT_CANDIDATES", "ModelRow", "NOT_RECORDED", "REFERENCE_PROMPT_TOKENS",
           "Retirement", "SHUTDOWNS", "Shutdown", "WARN_DAYS", "cheapest_current", "model_rows",
           "retirement", "shutdown_of"]

#: A call warns this many days before a model's shutdown date, and after it.
WARN_DAYS = 30

# Only dated snapshots (-2024-08-06) take their family's date: the older -MMDD
# names (gpt-4-0125, gpt-4-1106) are other models with lifecycles of their own.
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class Shutdown:
    """A model's announced shutdown date, where the date came from, and when that was checked."""

    model: str
    date: dt.date
    source: str
    checked: dt.date


_ISSUE_14 = ("OpenAI deprecation notice for gpt-4o, gpt-4o-mini, gpt-4.1, gpt-4.1-mini "
             "(as quoted in gptmagic issue 14)")
_LEGACY_2026_04_22 = ("OpenAI deprecations page, '2026-04-22: Legacy GPT model snapshots' "
                      "(platform.openai.com/docs/deprecations)")
_CHAT_LATEST_2026_05_08 = ("OpenAI deprecations page, '2026-05-08: gpt-5.2-chat-latest and "
                           "gpt-5.3-chat-latest model snapshots'")
_CHATGPT_4O_2025_11_18 = "OpenAI deprecations page, '2025-11-18: chatgpt-4o-latest snapshot'"
_CODEX_MINI_2025_11_17 = ("OpenAI deprecations page, '2025-11-17: codex-mini-latest model "
                          "snapshot'")
# OpenAI's deprecations page as copied into openai/openai-cookbook
# (examples/data/oai_docs/deprecations.txt, commit d2bb606c): the page itself is not
# reachable from here; the copy carries the older notices it lists.
_COOKBOOK = ("OpenAI deprecations page, '{}' (as copied in openai/openai-cookbook, "
             "examples/data/oai_docs/deprecations.txt)")
_GPT4_32K_2024_06_06 = _COOKBOOK.format("2024-06-06: GPT-4-32K and Vision Preview models")
_CHAT_2023_11_06 = _COOKBOOK.format("2023-11-06: Chat model updates")
_CHAT_2023_06_13 = _COOKBOOK.format("2023-06-13: Updated chat models")
_CHECKED = date(2026, 12, 1)

_TABLE: tuple[tuple[str, str, str], ...] = (
    *((m, "2027-01-14", _ISSUE_14) for m in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini")),
    *((m, "2026-07-23", _LEGACY_2026_04_22) for m in (
        "computer-use-preview", "computer-use-preview-2025-03-11",
        "gpt-4o-audio-preview-2024-12-17", "gpt-4o-mini-audio-preview-2024-12-17",
        "gpt-4o-mini-realtime-preview-2024-12-17", "gpt-4o-mini-search-preview-2025-03-11",
        "gpt-4o-mini-tts-2025-03-20", "gpt-4o-search-preview-2025-03-11", "gpt-5-chat-latest",
        "gpt-5-codex", "gpt-5.1-chat-latest", "gpt-5.1-codex", "gpt-5.1-codex-max",
        "gpt-5.1-codex-mini", "gpt-5.2-codex", "gpt-audio-mini-2025-10-06",
        "gpt-realtime-mini-2025-10-06", "o3-deep-research", "o3-deep-research-2025-06-26",
        "o4-mini-deep-research", "o4-mini-deep-research-2025-06-26")),
    *((m, "2026-10-23", _LEGACY_2026_04_22) for m in (
        "gpt-3.5-turbo", "gpt-3.5-turbo-0125", "gpt-4", "gpt-4-0613")),
    *((m, "2026-08-10", _CHAT_LATEST_2026_05_08) for m in (
        "gpt-5.2-chat-latest", "gpt-5.3-chat-latest")),
    ("chatgpt-4o-latest", "2026-02-17", _CHATGPT_4O_2025_11_18),
    ("codex-mini-latest", "2026-01-16", _CODEX_MINI_2025_11_17),
    *((m, "2025-06-06", _GPT4_32K_2024_06_06) for m in (
        "gpt-4-32k", "gpt-4-32k-0613", "gpt-4-32k-0314")),
    *((m, "2024-12-06", _GPT4_32K_2024_06_06) for m in (
        "gpt-4-vision-preview", "gpt-4-1106-vision-preview")),
    *((m, "2024-09-13", _CHAT_2023_11_06) for m in (
        "gpt-3.5-turbo-0613", "gpt-3.5-turbo-16k-0613")),
    ("gpt-3.5-turbo-0301", "2024-09-13", _CHAT_2023_06_13),
)

#: OpenAI's announced shutdown dates by model id (read-only), as checked on the date
#: each entry carries. Sources: OpenAI's deprecations page and notices; genai-prices
#: 0.2.3 and the vendored OpenAPI spec carry no dates of their own. A model absent
#: here is *not recorded* (gptmagic has no source for it; o1-preview and o1-mini,
#: for one), which is not the same as "none announced".
SHUTDOWNS: Mapping[str, Shutdown] = MappingProxyType({
    model: Shutdown(model, date.fromisoformat(day), source, _CHECKED)
    for model, day, source in _TABLE})


@dataclass(frozen=True, slots=True)
class Retirement:
    """A model at or near its shutdown date, on ``today``."""

    model: str
    shutdown_date: date
    today: date
    source: str

    @property
    def retired(self) -> bool:
        """True on and after the shutdown date."""
        return self.today >= self.shutdown_date

    @property
    def days_left(self) -> int:
        """Days from ``today`` to the shutdown date (negative once past)."""
        return (self.shutdown_date - self.today).days

    def warning(self) -> str:
        """One line for the user: the model, the date, the days, the source, where to look.

        Said the same in a terminal and a notebook, so it names both commands.
        """
        day = self.shutdown_date.isoformat()
        left = self.days_left
        if self.retired:
            ago = -left
            when = (f"was shut down on {day}, {ago} day{'s' if ago != 1 else ''} ago"
                    if ago else f"was shut down on {day}, today")
        else:
            when = f"shuts down on {day}, in {left} day{'s' if left != 1 else ''}"
        return (f"model {self.model!r} {when} (source: {self.source}); for a current model "
                "see `gptmagic models` (`%gptmagic models` in a notebook)")


#: :func:`shutdown_of`'s source for a model neither the provider nor the table records.
NOT_RECORDED = "not recorded"


def shutdown_of(model: str, listed: Mapping[str, date | None] | None = None, *,
                table: bool = True) -> tuple[date | None, str]:
    """``model``'s shutdown date and where it came from.

    ``listed`` is what a provider's ``GET /models`` said (id -> ``shutdown_date``,
    None meaning none announced); it wins over the package table for the
    models it lists. ``table=False`` leaves the package table out: it holds
    OpenAI's notices, which say nothing of another server's models. The source
    is short, for a one-line warning (:data:`SHUTDOWNS` has each table entry's
    full source and check date); a date of None is either ``"none announced
    (...)"`` (the provider says so) or :data:`NOT_RECORDED` (no one says).
    """
    name = model.strip()
    if listed is not None and name in listed:
        day = listed[name]
        return day, "the provider's /models" if day else "none announced (the provider's /models)"
    if not table:
        return None, NOT_RECORDED
    key = name.lower().removeprefix("openai/")
    entry = SHUTDOWNS.get(key)
    if entry is None and (family := _SNAPSHOT.sub("", key)) != key:
        entry = SHUTDOWNS.get(family)
        if entry is not None:
            return entry.date, f"as {family}, gptmagic's table of OpenAI notices"
    if entry is None:
        return None, NOT_RECORDED
    return entry.date, "gptmagic's table of OpenAI notices"


def retirement(model: str, today: date, listed: Mapping[str, date | None] | None = None,
               *, warn_days: int = WARN_DAYS, table: bool = True) -> Retirement | None:
    """A :class:`Retirement` if ``model`` is past, or within ``warn_days`` of, its shutdown."""
    day, source = shutdown_of(model, listed, table=table)
    if day is None or (day - today).days > warn_days:
        return None
    return Retirement(model, day, today, source)


#: OpenAI chat models of the catalog (:mod:`.models`) that take ``logprobs`` and
#: ``temperature``, which the heatmaps and the magics use: the candidates for the default
#: hosted model. Reasoning models (gpt-5, gpt-5-mini, gpt-5-nano, o-series) are left out:
#: they return no logprobs and bill hidden reasoning tokens.
DEFAULT_CANDIDATES = ("gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini",
                      "chatgpt-4o-latest", "gpt-5-chat-latest", "gpt-4-turbo", "gpt-4",
                      "gpt-3.5-turbo")

#: The call the candidates are priced on: a short prompt and a chat answer.
REFERENCE_PROMPT_TOKENS = 1_000


def cheapest_current(today: date, candidates: tuple[str, ...] = DEFAULT_CANDIDATES
                     ) -> str | None:
    """The candidate with no shutdown announced that costs least for a reference call.

    The reference call is :data:`REFERENCE_PROMPT_TOKENS` prompt tokens and
    :data:`~gptmagic.catalog.pricing.DEFAULT_EXPECTED_COMPLETION_TOKENS`
    completion tokens, priced by genai-prices at ``today``; ties go to the
    earlier candidate. This is how :data:`gptmagic.core.defaults.DEFAULT_OPENAI_MODEL`
    was chosen (a test checks it still is).
    """
    from datetime import UTC, datetime, time

    from gptmagic.catalog.pricing import DEFAULT_EXPECTED_COMPLETION_TOKENS, cost_of

    at = datetime.combine(today, time(12), tzinfo=UTC)
    priced = []
    for model in candidates:
        if shutdown_of(model)[0] is not None:
            continue
        cost = cost_of({"prompt_tokens": REFERENCE_PROMPT_TOKENS,
                        "completion_tokens": DEFAULT_EXPECTED_COMPLETION_TOKENS},
                       model, provider="openai", at=at)
        if cost.total is not None:
            priced.append((cost.total, model))
    return min(priced, key=lambda p: p[0])[1] if priced else None


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One line of ``gptmagic models``: a model's window, prices per 1M tokens, shutdown date.

    None is unknown (a price) or no date (``shutdown_date``): ``recorded``
    tells "none announced" (True: the provider says so) from "not recorded"
    (False: neither the provider nor gptmagic's table says anything).
    ``status`` is ``"retiring"`` (a shutdown is announced), ``"shut down"``
    (the date has passed) or ``""``.
    """

    model: str
    context_window: int | None
    input: Decimal | None
    cached_input: Decimal | None
    output: Decimal | None
    shutdown_date: dt.date | None
    status: str
    recorded: bool = True


def model_rows(models: Iterable[str], today: dt.date,
               listed: Mapping[str, dt.date | None] | None = None, *,
               provider: str | None = None, table: bool = True) -> list[ModelRow]:
    """The rows of ``models`` on ``today``, their dates from ``listed`` or (``table``) the table."""
    from gptmagic.catalog.models import model_info
    from gptmagic.catalog.pricing import rates_per_mtok

    rows = []
    for model in models:
        day, source = shutdown_of(model, listed, table=table)
        status = "" if day is None else "shut down" if today >= day else "retiring"
        inp, cached, out = rates_per_mtok(model, provider=provider)
        rows.append(ModelRow(model, model_info(model).context_window, inp, cached, out, day,
                             status, source != NOT_RECORDED))
    return rows
