"""Batch evaluation: prompts × models × parameter grid × repeats over a table of cases.

:func:`evaluate` expands the grid, answers what it can from the SQLite store
(never paying twice), sends the rest concurrently (a limit per provider, a
shared cooldown when a provider says 429, a spending cap), stores each result
as it completes (an interrupted run resumes with only the missing calls),
scores every output, and returns :class:`~gptmagic.results.EvalResults`.
The same call works in a script and in a notebook, where an event loop is
already running; :func:`aevaluate` is the async form.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gptmagic.client.config import Provider
from gptmagic.errors import (
    APITimeoutError,
    GptmagicError,
    MalformedResponseError,
    QuotaExceededError,
    RequestError,
    StreamError,
)
from gptmagic.eval.batch import answered_in, batch_options, in_batches, run_batch
from gptmagic.eval.budget import over_budget, unbounded
from gptmagic.eval.calls import call, price, restore
from gptmagic.eval.estimate import estimate_run
from gptmagic.eval.extras import extras_by_prompt
from gptmagic.eval.jobs import Job, build_jobs, load_cases, resolve_model, set_keys
from gptmagic.eval.limits import Limiter
from gptmagic.eval.runs import record
from gptmagic.eval.scoring import ask_scorer_keys
from gptmagic.eval.store import HEARTBEAT, Store
from gptmagic.eval.tally import Tally, open_store

if TYPE_CHECKING:
    from gptmagic.client.client import Client

__all__ = ["Job", "aevaluate", "estimate_run", "evaluate", "load_cases"]


def _prepare(models: Sequence[str] | str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """On the caller's thread: the client to use, and every provider's key at hand."""
    from gptmagic.client.facade import get_client

    if "approve" in kwargs:
        raise RequestError("evaluate() has no approve: a run is unattended and runs every call "
                           "its tools' functions are asked for; give only functions that are "
                           "safe to run on any arguments", param="approve")
    for spec in [models] if isinstance(models, str) else list(models):
        resolve_model(spec, kwargs.get("provider"))[0].api_key()  # a prompt_key profile asks here
    ask_scorer_keys(kwargs.get("scorers") or ())
    if kwargs.get("client") is None:
        kwargs["client"] = get_client()
    return kwargs


async def aevaluate(data: Any, prompt: Any, models: Sequence[str] | str,
                    **kwargs: Any) -> Any:
    """Async :func:`evaluate` (runs on the portal loop, awaitable from any loop)."""
    from gptmagic.client.portal import get_portal

    kwargs = _prepare(models, kwargs)
    return await get_portal().arun(_run(data, prompt, models, **kwargs))


#: Seconds an interrupted evaluate() waits for the run to stop and its writes to land.
_SETTLE = 10.0


def evaluate(data: Any, prompt: Any, models: Sequence[str] | str, **kwargs: Any) -> Any:
    """Run prompts × models × ``grid`` × ``repeats`` over ``data`` and score every output.

    ``prompt`` is a cell-grammar template (``{column}`` filled from each row),
    a list of message dicts, or a dict of named prompts to compare. ``models``
    are names (``"local"``, ``"gpt-4.1-nano"``) or ``"profile:model"``.
    ``params`` are sent with every call; ``grid`` maps a parameter to values
    to try (``grid={"reasoning_effort": ["low", "high"]}`` gives one variant
    per effort level, on either API). ``api`` sends calls to the Responses API
    instead of Chat Completions: ``api="responses"`` for every model, or a dict
    of model (as named in ``models``) -> ``"chat"`` / ``"responses"``; a model
    it does not name uses its profile's ``api`` setting, else chat. Prompts
    and ``params`` stay in chat terms and are translated (``max_tokens`` ->
    ``max_output_tokens``, ``logprobs`` -> ``include``, ``response_format`` ->
    ``text.format``, ``reasoning_effort`` -> ``reasoning.effort``);
    ``grid={"api": ["chat", "responses"]}`` compares the two.
    ``schema`` (a Pydantic model, TypedDict, dataclass or JSON-schema dict; or a
    dict of prompt name -> one) asks for replies in that shape (strict
    structured outputs): the results gain ``parsed`` (the validated object),
    ``valid`` and ``schema_errors`` columns. ``tools`` (Python functions; or a
    dict of prompt name -> a list) runs each call as a tool loop of at most
    ``max_steps`` model calls (``tool_choice``: ``"auto"``, ``"none"``,
    ``"required"`` or a tool's name): the functions run on worker threads, a
    function's exception is a tool result the model sees, and the results gain a
    ``steps`` column (every call's name, arguments, output and error); the row's
    tokens and cost add up all its model calls. There is no ``approve``: a run is
    unattended, so only give functions that are safe to run on any arguments.
    The schema and the tools' definitions and code are part of the cache key.
    ``rpm`` / ``tpm`` cap requests and tokens per minute per provider
    (otherwise the provider's ``x-ratelimit-limit-*`` headers are adopted);
    ``timeouts`` (a :class:`gptmagic.Timeouts`) overrides the client's;
    ``stream=True`` streams each call (time to first token is then measured).
    Results are cached in SQLite (``cache=False`` to bypass, ``refresh=True``
    to re-ask, ``cache=PATH`` or a :class:`~gptmagic.eval.store.Store` for
    another file); two runs on one file share their calls rather than pay
    twice, and a file that cannot be written only costs a warning.
    ``max_cost`` (USD) stops issuing calls before the budget is exceeded.
    ``batch=True`` sends the calls not in the cache through the provider's Batch
    API (:mod:`gptmagic.eval.batch`): about half the price, done within 24 hours,
    no rate limits to pace; one batch per provider × endpoint × model, split at
    50,000 requests or 200 MB (``batch=gptmagic.BatchOptions(poll=..., max_requests=
    ..., max_bytes=...)`` or a dict of those changes the polling and the limits).
    Each batch is written in the cache the moment it is made: the same call again
    (after a kernel restart, a kill) waits for the same batches or collects them,
    never submitting a call twice. ``wait=False`` submits and returns at once (rows
    not answered yet have a ``pending`` note; a later call collects them). A batch
    that expired or was cancelled keeps what it answered; its other calls stay
    pending until ``resubmit=True`` (which also re-sends calls a batch answered with
    an error). Prompts with tools, and the embedded model, run live (said once).
    The results gain a ``batch`` column (the batch's id; empty for a call run live).
    Without ``batch``, a call a batch still holds is not sent live: its row is
    ``pending`` until ``batch=True`` collects it (``resubmit=True`` sends it live
    anyway, paying twice if the batch runs it too).
    Every run is recorded in the cache file it used, under ``run`` (a name; by
    default one made from the time, ``run-20261201-153500``): its settings, its
    prompts' text, its data's hash and size, its totals, and every call's key and
    scores (``res.run`` is that record). ``gptmagic.runs()`` lists the runs,
    ``gptmagic.run(name)`` rebuilds the results from the file (no call, no scoring),
    ``gptmagic.compare(a, b)`` says what changed. A name may be used again: ``run(name)``
    gives the latest run of that name (each has its own id). With ``cache=False``
    nothing is stored, so no run is recorded (``res.run`` is None).
    ``client`` (a :class:`gptmagic.Client`) sends the calls; by default the
    shared one. Interrupted (Ctrl-C, Kernel ▸ Interrupt), it raises
    :class:`~gptmagic.errors.RunInterrupted` saying how many calls are stored:
    run it again to resume.
    """
    from gptmagic.client.portal import get_portal

    kwargs = _prepare(models, kwargs)
    tally = Tally()
    try:
        return get_portal().run(_run(data, prompt, models, tally=tally, **kwargs))
    except KeyboardInterrupt:
        # Ctrl-C / Kernel > Interrupt: the run is cancelled; say what was kept, once
        # its store has finished the writes in flight, instead of a traceback.
        tally.finished.wait(_SETTLE)
        raise tally.interrupted() from None


async def _run(data: Any, prompt: Any, models: Sequence[str] | str, *,
               params: Mapping[str, Any] | None = None,
               grid: Mapping[str, Sequence[Any]] | None = None,
               scorers: Sequence[Any] = (), repeats: int = 1,
               provider: str | Provider | None = None, concurrency: int = 16,
               cache: bool | str | Path | Store = True, refresh: bool = False,
               max_cost: float | Decimal | None = None, progress: bool = True,
               rpm: float | None = None, tpm: float | None = None,
               timeouts: Any = None, stream: bool = False,
               api: str | Mapping[str, str] | None = None, schema: Any = None,
               tools: Any = None, max_steps: int | None = None, tool_choice: Any = None,
               batch: Any = False, wait: bool = True, resubmit: bool = False,
               run: str | None = None, client: Client, tally: Tally | None = None) -> Any:
    # The one place evaluate()'s keywords are declared (see evaluate() for their meaning);
    # ``tally`` is evaluate()'s own, to say what an interrupted run kept.
    from gptmagic.eval.results import EvalResults

    tally = tally or Tally()
    started = time.time()
    try:
        batching = batch_options(batch)
        if repeats < 1 or concurrency < 1:
            raise RequestError("repeats and concurrency must be >= 1", param="repeats")
        models = [models] if isinstance(models, str) else list(models)
        prompts = prompt if isinstance(prompt, Mapping) else {"prompt": prompt}
        cases = load_cases(data)
        extras = extras_by_prompt(list(prompts), schema=schema, tools=tools,
                                  max_steps=max_steps, tool_choice=tool_choice, params=params)
        jobs = build_jobs(cases, prompts, models, provider, dict(params or {}),
                          dict(grid or {}), repeats, api, extras)
        tally.total = len(jobs)
        await client.http.reserve(concurrency * len({j.provider.name for j in jobs}) or 1)
        store = await open_store(cache)
        tally.store, tally.batch = store, batching is not None
        tally.written_before = store.written if store is not None else 0
        answer = functools.partial(_answer, store=store, refresh=refresh,
                                   concurrency=concurrency, progress=progress, rpm=rpm,
                                   tpm=tpm, timeouts=timeouts, stream=stream, client=client,
                                   tally=tally)
        try:
            if batching is None:
                await answer(jobs, max_cost=max_cost, resend=resubmit)
            else:
                await run_batch(jobs, store, batching, client=client, max_cost=max_cost,
                                live=lambda js, budget: answer(js, max_cost=budget),
                                wait=wait, resubmit=resubmit, refresh=refresh,
                                progress=progress, tally=tally)
            if store is not None:
                await store.arelease()  # every call is done: a waiting run need not wait
            res = await EvalResults.build(jobs, cases, list(scorers))
            if store is not None:
                res.run = await store.athread(functools.partial(
                    record, store, res, name=run, started=started, prompts=prompts,
                    models=models, cases=cases, settings={
                        "params": dict(params or {}), "grid": dict(grid or {}), "api": api,
                        "repeats": repeats, "schema": schema, "tools": tools,
                        "batch": batching is not None}))
        finally:
            if store is not None and store is not cache:
                await asyncio.to_thread(store.close)
            elif store is not None:
                await store.arelease()
        for said in (res.failures(), res.waiting()) if progress else ():
            if said:  # the bar only counts them; say why, where it is seen
                print(f"gptmagic: {said}", file=sys.stderr)
        return res
    finally:
        tally.finished.set()


#: Seconds between looks at the store for calls another run is answering.
_POLL = 0.2


async def _answer(jobs: list[Job], *, store: Store | None, refresh: bool, concurrency: int,
                  max_cost: float | Decimal | None, progress: bool, rpm: float | None,
                  tpm: float | None, timeouts: Any, stream: bool, client: Client,
                  tally: Tally, resend: bool = False) -> None:
    """Give every job a result or an error: from the store, from another run on the same
    store, or by sending it; or a ``pending`` note when a batch is running it (unless
    ``resend``: then it is sent all the same)."""
    from gptmagic.catalog.context import check_window, may_exceed
    from gptmagic.catalog.models import model_info
    from gptmagic.catalog.pricing import PriceMemo, estimate

    base_urls = set_keys(jobs)
    since = time.time() if refresh else None  # what is stored from before is not wanted
    if store is not None and not refresh:
        hits = await store.aget_many([j.key for j in jobs])
        done_in = (await store.athread(answered_in, store, list(hits))
                   if hits and store.batches else {})
        for job in jobs:
            if job.key in hits:
                job.result, job.cached = hits[job.key], True
                job.batch = done_in.get(job.key)  # priced as the batch that answered it
    todo = [j for j in jobs if not j.cached]
    waiting: list[Job] = []  # another run on the same store is asking for these
    batched: list[Job] = []  # in a batch not collected yet: the batch pays for these
    stored = len(jobs) - len(todo)
    tally.hits += stored  # a batch run's live jobs add to its own
    limiters: dict[str, Limiter] = {}
    prices = PriceMemo()  # genai-prices asked once per model, not once per row
    budget = None if max_cost is None else Decimal(str(max_cost))
    spent = Decimal(0)
    reserved = Decimal(0)
    errors = 0
    exhausted: dict[str, str] = {}  # provider -> the quota error that ended it
    bar = _progress(len(jobs), progress)
    bar.update(stored)
    if stored:  # say that these came from the cache, not from a model
        bar.set_postfix_str(f"{stored} from cache", refresh=False)

    async def send(job: Job, lim: Limiter) -> Decimal:
        """Ask for one job (within its provider's limits); sets its result or error.
        Returns the most the call could cost: the budget counts that when no usage
        comes back to price it."""
        nonlocal reserved, spent
        worst = charge = Decimal(0)
        if job.provider.name in exhausted:
            job.error, job.error_type = (f"not sent: {exhausted[job.provider.name]}",
                                         "QuotaExceededError")
            return worst
        n, exact = 0, True
        # A hosted model's window is checked before sending (the engine checks its own).
        window = (model_info(job.model).context_window if job.provider.kind != "local"
                  else None)
        oversized = may_exceed(job.messages, window, job.max_tokens)
        if budget is not None or lim.tokens is not None or oversized:
            try:
                count = await client.count_tokens(job.messages, job.model, breakdown=False)
                n, exact = count.total, count.exact
            except GptmagicError as e:  # a row with its error, never a failed run
                job.error, job.error_type = (f"not sent: its prompt could not be counted "
                                             f"for the budget or tpm: {e}", type(e).__name__)
                return worst
        if oversized:
            try:
                check_window(n, job.model, context_window=window,
                             max_tokens=job.max_tokens, exact=exact)
            except RequestError as e:
                job.error, job.error_type = f"not sent: {e}", type(e).__name__
                return worst
        if budget is not None:
            est = estimate(n, job.model, max_tokens=job.max_tokens,
                           provider=job.provider.kind)
            if est.high.total is None:  # a call without a price could spend anything
                job.error, job.error_type = unbounded(job.model, est), "BudgetExceeded"
                return worst
            # A tool loop may make max_steps calls, each counted at this one's worst case
            # (later prompts grow with the exchange: an estimate, not a bound).
            calls = job.extras.max_steps if job.extras.tools else 1
            if spent + reserved + est.high.total * calls > budget:
                job.error, job.error_type = (over_budget(budget, spent, reserved, est,
                                                          job.max_tokens, calls),
                                             "BudgetExceeded")
                return worst
            worst = est.high.total * calls
            reserved += worst
        try:
            if lim.requests is not None or lim.tokens is not None:
                need = job.max_tokens or 0
                if lim.tokens is not None:
                    need += n
                await lim.pace(need)
            job.result = await call(client, job, on_retry=lim.on_retry, timeouts=timeouts,
                                    stream=stream)
            price(job, prices)
            # A call whose usage has no price (none reported) counts its worst case.
            charge = job.cost if job.cost is not None else worst
        except QuotaExceededError as e:
            # More calls cannot succeed: stop issuing them to this provider.
            exhausted.setdefault(job.provider.name, f"quota exhausted ({e})")
            job.error, job.error_type = str(e), type(e).__name__
        except GptmagicError as e:
            job.error, job.error_type = str(e), type(e).__name__
            charge = worst if _maybe_billed(e) else Decimal(0)
        finally:
            # Spent before the reservation goes, with no await between: another call's
            # check always sees one or the other.
            spent += charge
            reserved -= worst
        return worst

    def reuse(job: Job, result: Any) -> None:
        job.result, job.cached = result, True
        tally.hits += 1
        bar.update(1)

    async def one(job: Job) -> None:
        nonlocal errors
        if store is not None:
            # Claimed just before sending: another run on the same file that needs the
            # call waits for this one's result, and this one reuses a result it stored.
            claim = await store.aclaim([job.key], since, batched=not resend)
            if claim.stored:
                return reuse(job, claim.stored[job.key])
            if claim.batched:
                batched.append(job)
                bar.update(1)
                return
            if claim.theirs:
                waiting.append(job)
                return
        lim = limiters.get(job.provider.name)
        if lim is None:
            lim = limiters[job.provider.name] = Limiter(concurrency, rpm, tpm)
        async with lim:
            await send(job, lim)
        if job.result is not None:
            tally.answered += 1
            # The raw body is not needed past this point; 100k of them cost ~0.5 GB.
            job.result.raw = None
            lim.learn(job.result.rate_limits)
            if store is not None:
                # Awaited, so at most `concurrency` paid results are ever unstored; a write
                # that fails is a warning (the store gives up writing), never a lost result.
                await store.aput(job.key, base_urls[job.provider.name], job.model,
                                 {**job.body, **job.extras.key(), "api": job.api,
                                  "repeat": job.repeat}, job.result)
        elif store is not None:
            await store.arelease([job.key])  # a waiting run asks for it itself
        errors += job.error is not None
        bar.update(1)
        if not bar.disable:
            bar.set_postfix(cached=tally.hits, errors=errors, cost=f"${spent:.4f}",
                            refresh=False)

    # A fixed pool of workers per provider pulls jobs, so waiting costs O(C), not O(jobs).
    queues: dict[str, asyncio.Queue[Job]] = {}
    for job in todo:
        queues.setdefault(job.provider.name, asyncio.Queue()).put_nowait(job)
    poll = asyncio.Lock()

    async def look_at_waiting() -> None:
        """One look at what the other run did: reuse its results, ask for what it let go."""
        assert store is not None
        await asyncio.sleep(_POLL)
        done, free = await store.apoll(sorted({j.key for j in waiting}), since)
        let_go = set(free)
        still = []
        for job in waiting:
            if job.key in done:
                reuse(job, done[job.key])
            elif job.key in let_go:
                queues[job.provider.name].put_nowait(job)  # one() claims it again
            else:
                still.append(job)
        waiting[:] = still

    async def worker(q: asyncio.Queue[Job]) -> None:
        while True:
            if not q.empty():
                await one(q.get_nowait())
            elif not waiting:
                return
            else:
                async with poll:
                    if q.empty() and waiting:
                        await look_at_waiting()

    async def heartbeat() -> None:
        assert store is not None
        while True:
            await asyncio.sleep(HEARTBEAT)
            await store.aheartbeat()

    beat = asyncio.create_task(heartbeat()) if store is not None and todo else None
    try:
        await asyncio.gather(*(worker(q) for q in queues.values()
                               for _ in range(min(concurrency, q.qsize()))))
    finally:
        if beat is not None:
            beat.cancel()
        bar.close()
    for job in jobs:
        if job.cached and job.result is not None:
            restore(job)
            price(job, prices)
    if batched:
        assert store is not None
        await store.athread(in_batches, store, batched)


def _maybe_billed(error: GptmagicError) -> bool:
    """Whether a failed call may still have been paid for: the server answered 200 and
    generated (a malformed body, a stream cut or past its deadline), or the request went
    out and no answer came in time (a timeout). An HTTP error status is not billed, nor
    is a connection that could not be made; a request refused here was never sent."""
    return isinstance(error, MalformedResponseError | StreamError | APITimeoutError)


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc="gptmagic eval", unit="call")
