"""The pure floor: data types and the rules every other layer shares.

Owns the result types (:mod:`.types`), the cell grammar (:mod:`.messages`, its
error and ``{name}`` scanner :mod:`.cellsyntax`, its images :mod:`.images`),
conversation threads (:mod:`.threads`), logprob normalisation and statistics
(:mod:`.logprobs`), building a result from JSON or stream chunks
(:mod:`.response`), what a reply shows its server did not do
(:mod:`.reply_checks`), the one SSE parser (:mod:`.sse`), the retry policy
(:mod:`.retry`), the named defaults (:mod:`.defaults`), and structured outputs:
strict schemas and replies validated against them (:mod:`.structured`,
:mod:`.strict`).

May import: the standard library, :mod:`gptmagic.errors`, and pydantic and
jsonschema (structured outputs, loaded on first use). No I/O, no
network library, no IPython: everything here is a pure function or a value.
"""
