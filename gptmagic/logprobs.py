"""Public face of logprob normalisation and statistics (:mod:`gptmagic.core.logprobs`)."""

from __future__ import annotations

from gptmagic.core.logprobs import (
    FLOOR,
    clamp,
    from_wire,
    mean_logprob,
    mean_of,
    perplexity,
    perplexity_of,
    token_bytes,
)

__all__ = ["FLOOR", "clamp", "from_wire", "mean_logprob", "mean_of", "perplexity",
           "perplexity_of", "token_bytes"]
