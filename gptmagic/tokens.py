"""Public face of token counting.

Hosted models are counted with tiktoken (:mod:`gptmagic.catalog.tokens`, no
I/O); the embedded model by its engine, through the client
(:meth:`gptmagic.client.Client.count_tokens`). :func:`count_tokens` chooses.
"""

from __future__ import annotations

from gptmagic.catalog.tokens import MessageCount, TokenCount, encoding_for, get_encoding
from gptmagic.client.facade import acount_tokens, count_tokens

__all__ = ["MessageCount", "TokenCount", "acount_tokens", "count_tokens", "encoding_for",
           "get_encoding"]
