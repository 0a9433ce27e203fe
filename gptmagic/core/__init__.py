"""The pure floor: data types and the rules every other layer shares.

Owns the result types (:mod:`.types`), the cell grammar (:mod:`.messages`, its
error and ``{name}`` scanner :mod:`.cellsyntax`, its images :mod:`.images`),
conversation threads (:mod:`.threads`), logprob normalisation and statistics
(:mod:`.logprobs`), building a result from JSON or stream chunks
(:mod:`.response`), what a reply shows its server did not do
(:mod:`.reply_checks`), the one SSE parser (:mod:`.sse`), the retry policy
(:mod:`.retry`) and the named defaults (:mod:`.defaults`).

May import: the standard library and :mod:`gptmagic.errors`. No I/O, no
network library, no IPython: everything here is a pure function or a value.
"""
