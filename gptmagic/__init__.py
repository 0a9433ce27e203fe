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
from .retry import RetryPolicy
from .types import Choice, Result, Timings, TokenLogprob, TopLogprob, Usage

if TYPE_CHECKING:
    from ._http import Timeouts
    from .api import achat, acomplete, chat, complete, get_client, shutdown
    from .client import Client

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
    "Choice",
    "Client",
    "ConfigError",
    "ConflictError",
    "GptmagicError",
    "InternalServerError",
    "MalformedResponseError",
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
    "TokenLogprob",
    "TopLogprob",
    "UnprocessableEntityError",
    "Usage",
    "achat",
    "acomplete",
    "add_profile",
    "chat",
    "complete",
    "get_client",
    "get_profile",
    "profiles",
    "shutdown",
]
