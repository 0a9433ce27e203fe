"""Public face of token counting.

Hosted models are counted with tiktoken (:mod:`gptmagic.catalog.tokens`, no
I/O); the embedded model by its engine, through the client
(:meth:`gptmagic.client.Client.count_tokens`). :func:`count_tokens` chooses.
The client (and its HTTP stack) is imported on first use of a counting
function, so ``from gptmagic.tokens import encoding_for`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gptmagic.catalog.tokens import MessageCount, TokenCount, encoding_for, get_encoding

if TYPE_CHECKING:
    from gptmagic.client.facade import acount_tokens, count_tokens

__all__ = ["MessageCount", "TokenCount", "acount_tokens", "count_tokens", "encoding_for",
           "get_encoding"]


def __getattr__(name: str) -> Any:
    if name in ("acount_tokens", "count_tokens"):
        from gptmagic.client import facade

        return getattr(facade, name)
    raise AttributeError(f"module 'gptmagic.tokens' has no attribute {name!r}")
