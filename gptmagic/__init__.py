"""gptmagic: prompt engineering in Jupyter.

``import gptmagic`` needs no IPython. The public names are listed in
``__all__``; the HTTP stack is imported only when a client is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gptmagic.catalog.models import ModelInfo, model_info, register_model
from gptmagic.client.config import Provider, add_profile, get_profile, profiles
from gptmagic.core.messages import CellSyntaxError, parse_cell, render_cell
from gptmagic.core.retry import RetryPolicy
from gptmagic.core.types import (
    Choice,
    Parsed,
    Result,
    Step,
    Timings,
    TokenLogprob,
    ToolCall,
    TopLogprob,
    Usage,
)
from gptmagic.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    GptmagicError,
    InternalServerError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestError,
    RunInterrupted,
    StreamError,
    ToolArgumentsError,
    ToolLoopInterrupted,
    UnprocessableEntityError,
)

if TYPE_CHECKING:
    from gptmagic.catalog.context import FitResult
    from gptmagic.catalog.pricing import (
        Cost,
        CostBreakdown,
        Estimate,
        cost_of,
        estimate,
        set_price,
    )
    from gptmagic.client.client import Client
    from gptmagic.client.facade import (
        achat,
        acomplete,
        arespond,
        chat,
        complete,
        fit_messages,
        get_client,
        respond,
        shutdown,
    )
    from gptmagic.client.http import Timeouts
    from gptmagic.core.structured import Schema, schema_from
    from gptmagic.core.tools import Tool, tool_from
    from gptmagic.eval.batchfiles import BatchOptions
    from gptmagic.eval.batchlist import batches, cancel_batch
    from gptmagic.eval.calllog import log
    from gptmagic.eval.results import EvalResults
    from gptmagic.eval.runner import estimate_run
    from gptmagic.eval.runs import runs
    from gptmagic.evaluation import aevaluate, compare, evaluate, run, show_call
    from gptmagic.scorers import Score
    from gptmagic.tokens import MessageCount, TokenCount, acount_tokens, count_tokens
    from gptmagic.widgets import (
        LogprobHeatmap,
        TokenCounter,
        TokenView,
        logprob_heatmap,
        token_counter,
        token_view,
    )

__version__ = "0.1.0"

# Names whose modules pull in the HTTP stack (~0.9 s): imported on first use.
_LAZY = {
    "Timeouts": "gptmagic.client.http",
    "Client": "gptmagic.client.client",
    # pydantic (~0.3 s) comes with the first tool.
    "Tool": "gptmagic.core.tools",
    "tool_from": "gptmagic.core.tools",
    "achat": "gptmagic.client.facade",
    "acomplete": "gptmagic.client.facade",
    "arespond": "gptmagic.client.facade",
    "respond": "gptmagic.client.facade",
    "chat": "gptmagic.client.facade",
    "complete": "gptmagic.client.facade",
    "get_client": "gptmagic.client.facade",
    "shutdown": "gptmagic.client.facade",
    "FitResult": "gptmagic.catalog.context",
    # Structured outputs: pydantic and jsonschema load when a schema is first made.
    "Schema": "gptmagic.core.structured",
    "schema_from": "gptmagic.core.structured",
    "fit_messages": "gptmagic.client.facade",
    "Cost": "gptmagic.catalog.pricing",
    "CostBreakdown": "gptmagic.catalog.pricing",
    "Estimate": "gptmagic.catalog.pricing",
    "cost_of": "gptmagic.catalog.pricing",
    "estimate": "gptmagic.catalog.pricing",
    "set_price": "gptmagic.catalog.pricing",
    "MessageCount": "gptmagic.tokens",
    "TokenCount": "gptmagic.tokens",
    "acount_tokens": "gptmagic.tokens",
    "count_tokens": "gptmagic.tokens",
    "evaluate": "gptmagic.evaluation",
    "estimate_run": "gptmagic.eval.runner",
    "aevaluate": "gptmagic.evaluation",
    "EvalResults": "gptmagic.eval.results",
    "Score": "gptmagic.scorers",
    # Batch mode's batches, as the cache keeps them.
    "BatchOptions": "gptmagic.eval.batchfiles",
    "batches": "gptmagic.eval.batchlist",
    "cancel_batch": "gptmagic.eval.batchlist",
    # Runs recorded in the cache, compared; the magics' call log.
    "runs": "gptmagic.eval.runs",
    "run": "gptmagic.evaluation",  # its results show the explorer, as evaluate's do
    "compare": "gptmagic.evaluation",
    "show_call": "gptmagic.evaluation",
    "log": "gptmagic.eval.calllog",
    # Widgets: anywidget and ipywidgets are imported only when one is made.
    "LogprobHeatmap": "gptmagic.widgets",
    "TokenCounter": "gptmagic.widgets",
    "TokenView": "gptmagic.widgets",
    "logprob_heatmap": "gptmagic.widgets",
    "token_counter": "gptmagic.widgets",
    "token_view": "gptmagic.widgets",
}


#: Public submodules, reachable as attributes after a bare ``import gptmagic``.
_SUBMODULES = frozenset({"client", "local", "logprobs", "messages", "scorers", "tokens",
                         "widgets"})


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:  # gptmagic.scorers.exact works without importing gptmagic.scorers
        return importlib.import_module(f"gptmagic.{name}")
    raise AttributeError(f"module 'gptmagic' has no attribute {name!r}")

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchOptions",
    "CellSyntaxError",
    "Choice",
    "Client",
    "ConfigError",
    "ConflictError",
    "Cost",
    "CostBreakdown",
    "Estimate",
    "EvalResults",
    "FitResult",
    "GptmagicError",
    "InternalServerError",
    "LogprobHeatmap",
    "MalformedResponseError",
    "MessageCount",
    "ModelInfo",
    "NotFoundError",
    "Parsed",
    "PermissionDeniedError",
    "Provider",
    "QuotaExceededError",
    "RateLimitError",
    "RequestError",
    "Result",
    "RetryPolicy",
    "RunInterrupted",
    "Schema",
    "Score",
    "Step",
    "StreamError",
    "Timeouts",
    "Timings",
    "TokenCount",
    "TokenCounter",
    "TokenLogprob",
    "TokenView",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolLoopInterrupted",
    "TopLogprob",
    "UnprocessableEntityError",
    "Usage",
    "achat",
    "acomplete",
    "acount_tokens",
    "add_profile",
    "aevaluate",
    "arespond",
    "batches",
    "cancel_batch",
    "chat",
    "compare",
    "complete",
    "cost_of",
    "count_tokens",
    "estimate",
    "estimate_run",
    "evaluate",
    "fit_messages",
    "get_client",
    "get_profile",
    "log",
    "logprob_heatmap",
    "model_info",
    "parse_cell",
    "profiles",
    "register_model",
    "render_cell",
    "respond",
    "run",
    "runs",
    "schema_from",
    "set_price",
    "show_call",
    "shutdown",
    "token_counter",
    "token_view",
    "tool_from",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext gptmagic``: register ``%%chat``, ``%%complete``, ``%chat``, ``%gptmagic``."""
    from gptmagic.notebook import extension

    extension.load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext gptmagic``: remove the magics, close the client, stop the engine."""
    from gptmagic.notebook import extension

    extension.unload(ipython)
