"""Evaluation: prompts × models × parameters over a table of cases.

Owns the runner (:mod:`.runner`: budget, claims, the run; :mod:`.tally`: how far it
got), batch mode (:mod:`.batch`: the provider's Batch API; :mod:`.batchfiles` its
files, :mod:`.batchsubmit` / :mod:`.batchwatch` submitting and collecting,
:mod:`.ledger` the batches in the store, :mod:`.batchlist` listing and cancelling
them), the calls of a run
(:mod:`.jobs`: cases and the grid; :mod:`.apis`: which API each goes to and its
request there; :mod:`.extras`: each prompt's schema and tools; :mod:`.calls`: one
job sent, or its tool loop run, and priced), what each cost and its parts
(:mod:`.costs`), what a run would cost before it runs (:mod:`.estimate`), the rate
limits (:mod:`.limits`), the SQLite store of calls and results (:mod:`.store`, its
rows in :mod:`.rows`, its tables in :mod:`.schema`), each run recorded there
(:mod:`.runs`) and two compared (:mod:`.compare`), the magics' call log
(:mod:`.calllog`), the results table (:mod:`.results`, its columns in
:mod:`.columns`, the axes it is weighed on in :mod:`.axes`) and scoring
(:mod:`.scoring`, :mod:`.scorers_text`,
:mod:`.scorers_structured`, :mod:`.scorers_model`; the public face is
:mod:`gptmagic.scorers`).

May import: :mod:`gptmagic.client` (a run takes a client), :mod:`gptmagic.local`
facts, :mod:`gptmagic.catalog`, :mod:`gptmagic.core`, pandas, tqdm. Never the
views or IPython.
"""
