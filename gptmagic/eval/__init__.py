"""Evaluation: prompts × models × parameters over a table of cases.

Owns the runner (:mod:`.runner`: grid, limits, budget, the run), the SQLite
store of calls and results (:mod:`.store`), the results table and its plots
(:mod:`.results`) and scoring (:mod:`.scoring`, :mod:`.scorers_text`,
:mod:`.scorers_model`; the public face is :mod:`gptmagic.scorers`).

May import: :mod:`gptmagic.client` (a run takes a client), :mod:`gptmagic.local`
facts, :mod:`gptmagic.catalog`, :mod:`gptmagic.core`, pandas, tqdm. Never the
views or IPython.
"""
