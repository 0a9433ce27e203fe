"""gptmagic: prompt engineering in Jupyter.

``import gptmagic`` needs no IPython. The public names are listed in
``__all__``; the HTTP stack is imported only when a client is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Provider, add_profile, get_profile, profiles
from .errors import (
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
    StreamError,
    UnprocessableEntityError,
)
from .messages import CellSyntaxError, parse_cell, render_cell
from .models import ModelInfo, model_info, register_model
from .retry import RetryPolicy
from .types import Choice, Result, Timings, TokenLogprob, TopLogprob, Usage

if TYPE_CHECKING:
    from ._http import Timeouts
    from .api import achat, acomplete, chat, complete, get_client, shutdown
    from .client import Client
    from .context import FitResult, fit_messages
    from .pricing import Cost, Estimate, cost_of, estimate, set_price
    from .results import EvalResults
    from .runner import aevaluate, estimate_run, evaluate
    from .tokens import MessageCount, TokenCount, acount_tokens, count_tokens
    from .widgets import (
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
    "Timeouts": "._http",
    "Client": ".client",
    "achat": ".api",
    "acomplete": ".api",
    "chat": ".api",
    "complete": ".api",
    "get_client": ".api",
    "shutdown": ".api",
    "FitResult": ".context",
    "fit_messages": ".context",
    "Cost": ".pricing",
    "Estimate": ".pricing",
    "cost_of": ".pricing",
    "estimate": ".pricing",
    "set_price": ".pricing",
    "MessageCount": ".tokens",
    "TokenCount": ".tokens",
    "acount_tokens": ".tokens",
    "count_tokens": ".tokens",
    "evaluate": ".runner",
    "estimate_run": ".runner",
    "aevaluate": ".runner",
    "EvalResults": ".results",
    # Widgets: anywidget and ipywidgets are imported only when one is made.
    "LogprobHeatmap": ".widgets",
    "TokenCounter": ".widgets",
    "TokenView": ".widgets",
    "logprob_heatmap": ".widgets",
    "token_counter": ".widgets",
    "token_view": ".widgets",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gptmagic' has no attribute {name!r}")

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CellSyntaxError",
    "Choice",
    "Client",
    "ConfigError",
    "ConflictError",
    "Cost",
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
    "PermissionDeniedError",
    "Provider",
    "QuotaExceededError",
    "RateLimitError",
    "RequestError",
    "Result",
    "RetryPolicy",
    "StreamError",
    "Timeouts",
    "Timings",
    "TokenCount",
    "TokenCounter",
    "TokenLogprob",
    "TokenView",
    "TopLogprob",
    "UnprocessableEntityError",
    "Usage",
    "achat",
    "acomplete",
    "acount_tokens",
    "add_profile",
    "aevaluate",
    "chat",
    "complete",
    "cost_of",
    "count_tokens",
    "estimate",
    "estimate_run",
    "evaluate",
    "fit_messages",
    "get_client",
    "get_profile",
    "logprob_heatmap",
    "model_info",
    "parse_cell",
    "profiles",
    "register_model",
    "render_cell",
    "set_price",
    "shutdown",
    "token_counter",
    "token_view",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext gptmagic``: register ``%%chat``, ``%%complete``, ``%chat``, ``%gptmagic``."""
    from . import _ipython

    _ipython.load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext gptmagic``: remove the magics, close the client, stop the engine."""
    from . import _ipython

    _ipython.unload(ipython)
