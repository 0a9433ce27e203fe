"""The ``gptmagic`` command: ``serve``, ``demo``, ``tokens``, ``eval``, ``batches``,
``models``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from gptmagic.errors import GptmagicError, RunInterrupted

__all__ = ["main"]

#: Scorers a config file may name (judge, custom and combine need Python objects).
_CONFIG_SCORERS = ("exact", "contains", "icontains", "regex", "json_valid", "json_schema",
                   "numeric", "choice", "similarity", "logprob_confidence", "schema_valid",
                   "field_equals", "tool_called", "tool_sequence")


def _demo(args: argparse.Namespace) -> int:
    if args.report is not None:
        return _demo_report(args)
    from gptmagic.client.facade import chat, complete
    from gptmagic.core.logprobs import perplexity

    model = args.model
    print(f"== chat ({model}), streamed ==")
    r = chat(
        [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Name three primary colours."},
        ],
        model=model,
        provider=args.profile,
        stream=True,
        max_tokens=48,
        temperature=0,
        seed=1,
        on_delta=lambda i, text: print(text, end="", flush=True),
    )
    print()
    u = r.usage
    ttft = f"{r.timings.ttft * 1000:.0f} ms" if r.timings.ttft is not None else "n/a"
    print(
        f"-- finish_reason={r.finish_reason}  tokens: {u.prompt_tokens if u else '?'} prompt"
        f" + {u.completion_tokens if u else '?'} completion  time to first token {ttft}"
        f"  total {r.timings.total:.2f} s"
    )
    prompt = "The capital of France is"
    print(f"\n== completion ({model}) with logprobs: {prompt!r} ==")
    c = complete(
        prompt, model=model, provider=args.profile, max_tokens=8, temperature=0, logprobs=3
    )
    print(f"{prompt}\033[1m{c.text}\033[0m" if sys.stdout.isatty() else prompt + c.text)
    print(f"{'token':>14} {'prob':>6}   top alternatives")
    for t in c.logprobs or []:
        alts = "  ".join(f"{a.token!r} {a.prob:.2f}" for a in t.top)
        p = f"{t.prob:.2f}" if t.prob is not None else "  - "
        print(f"{t.token!r:>14} {p:>6}   {alts}")
    ppl = perplexity(c.logprobs or [])
    print(f"-- finish_reason={c.finish_reason}  perplexity {ppl:.2f}" if ppl else "")
    return 0


def _demo_report(args: argparse.Namespace) -> int:
    """``gptmagic demo --report DIR``: run the quickstart and batch-evaluation notebooks."""
    import time

    from gptmagic import report

    if args.model != "local" or args.profile:
        print("gptmagic: --report runs the notebooks as written (MODEL = \"local\"); "
              "--model/--profile are ignored", file=sys.stderr)
    t = time.monotonic()
    rep = report.build(args.report, html=not args.no_html)
    print(report.describe(rep))
    print(f"\nDone in {time.monotonic() - t:.0f} s.")
    return 0


def _tokens(args: argparse.Namespace) -> int:
    import json

    from gptmagic.catalog.pricing import estimate
    from gptmagic.client.facade import count_tokens
    from gptmagic.core.text import count_of
    from gptmagic.errors import RequestError

    if args.file in (None, "-"):
        text = sys.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise RequestError(f"cannot read {args.file}: {e.strerror}", param="FILE") from None
    value: object = text
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            value = json.loads(text)
        except ValueError as e:
            raise RequestError(
                f"{args.file or 'stdin'} starts with '[' but is not a JSON message list: {e}",
                param="FILE") from None
        if not isinstance(value, list):
            raise RequestError("a JSON input must be a list of messages", param="FILE")
    c = count_tokens(value, args.model)  # type: ignore[arg-type]
    kind = "exact" if c.exact else "approximate"
    print(f"{count_of(c.total, 'token')} ({kind}; {c.encoding}; model {c.model})")
    if c.note:
        print(f"note: {c.note}")
    for m in c.messages:
        name = f" name={m.name}" if m.name else ""
        print(f"  [{m.index}] {m.role:<9} {m.total:>7}  (content {m.content}{name}, "
              f"format {m.overhead})")
    if c.messages:
        print(f"  reply priming {c.reply_priming}")
    est = estimate(c.total, c.model, max_tokens=args.max_tokens)
    print(f"cost: {est.low} prompt only; {est.expected} expected; {est.high} at most "
          f"({est.low.source})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    """``gptmagic eval CONFIG``: a run described in TOML or YAML, results to CSV."""
    from gptmagic import scorers as sc
    from gptmagic.errors import ConfigError
    from gptmagic.eval.runner import evaluate

    path = Path(args.config)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError("YAML configs need pyyaml: pip install pyyaml") from None
        try:
            cfg = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
    else:
        import tomllib

        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a table of settings")
    known = {"data", "prompt", "prompts", "models", "params", "grid", "repeats", "scorers",
             "concurrency", "max_cost", "output", "cache", "api", "schema", "tools",
             "max_steps", "tool_choice", "batch"}
    unknown = set(cfg) - known
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(known))}")
    for need in ("data", "models"):
        if need not in cfg:
            raise ConfigError(f"{path}: '{need}' is required")
    prompt = cfg.get("prompts") or cfg.get("prompt")
    if not prompt:
        raise ConfigError(f"{path}: give 'prompt' (a template) or 'prompts' (a table of them)")
    chosen = []
    for spec in cfg.get("scorers", []):
        spec = {"type": spec} if isinstance(spec, str) else dict(spec)
        kind = spec.pop("type", None)
        if kind not in _CONFIG_SCORERS:
            raise ConfigError(f"{path}: unknown scorer {kind!r}; use "
                              f"{', '.join(_CONFIG_SCORERS)}")
        try:
            chosen.append(getattr(sc, kind)(**spec))
        except TypeError as e:
            raise ConfigError(f"{path}: scorer {kind!r}: {e}") from None
    data = cfg["data"]
    if isinstance(data, str) and not Path(data).is_absolute():
        data = str(path.parent / data)
    batch = cfg.get("batch") or args.batch
    res = evaluate(data, prompt, cfg["models"], params=cfg.get("params"), grid=cfg.get("grid"),
                   repeats=int(cfg.get("repeats", 1)), scorers=chosen, api=cfg.get("api"),
                   concurrency=int(cfg.get("concurrency", 16)), max_cost=cfg.get("max_cost"),
                   cache=cfg.get("cache", True), progress=sys.stderr.isatty(),
                   batch=batch, wait=not args.no_wait, resubmit=args.resubmit,
                   run=args.run, **_config_extras(cfg, path))
    out = Path(args.output or cfg.get("output") or path.with_suffix(".results.csv"))
    res.to_csv(str(out))
    print(res.summary().to_string(index=False))
    print(f"\n{res.describe()}; results written to {out}")
    said = _against_previous(res, cfg.get("cache", True))
    if said:
        print(said)
    waiting = res.waiting()
    if waiting:
        print(f"{waiting}\nRun the same command again to collect them." if batch else
              f"{waiting}\nRun it with --batch to collect them (--resubmit sends them live "
              "now, paying again for any the batch runs).")
    return 0


def _against_previous(res: Any, cache: Any) -> str | None:
    """What changed since the previous run of the same prompts and models (in the same
    cache): ``run run-2 (id) vs run-1 (id): score 0.61 → 0.66 (+0.05), ...``."""
    from gptmagic.eval.compare import diff_runs
    from gptmagic.eval.runs import load, previous
    from gptmagic.eval.store import Store

    if res.run is None:
        return None
    store = Store(None if cache is True else cache)
    try:
        prev = previous(store, res.run)
        if prev is None:
            return (f"run {res.run.name} ({res.run.id}): the first of these prompts and "
                    "models in this cache; the next run says what changed")
        line = diff_runs(load(store, prev), res).line()
    finally:
        store.close()
    return f"run {res.run.name} ({res.run.id}) {line}"


def _batches(args: argparse.Namespace) -> int:
    """``gptmagic batches`` (list) and ``gptmagic batches cancel ID``."""
    import pandas as pd

    from gptmagic.eval.batchlist import batches, cancel_batch

    if args.action == "cancel":
        if not args.id:
            raise GptmagicError("gptmagic batches cancel needs the batch's id "
                                "(gptmagic batches lists them)")
        b = cancel_batch(args.id, args.cache)
        print(f"{b.id}: {b.status} ({b.request_counts.completed:,} of "
              f"{b.request_counts.total:,} done; what finished is kept: the next run of "
              "the same evaluation collects it)")
        return 0
    table = batches(args.cache, refresh=not args.no_refresh)
    if table.empty:
        print("no batches in the cache (evaluate(..., batch=True) makes them)")
        return 0
    shown = table.drop(columns=["endpoint"])
    with pd.option_context("display.max_colwidth", 48, "display.width", 200):
        print(shown.to_string(index=False))
    return 0


def _imported(spec: str, key: str, path: Path) -> Any:
    """The object a ``"module:Name"`` setting names (the config's folder is importable)."""
    import pkgutil

    from gptmagic.errors import ConfigError

    if ":" not in spec:
        raise ConfigError(f"{path}: {key} = {spec!r}: name a Python object as "
                          f"'module:Name' (e.g. 'schemas:Person', from schemas.py beside the "
                          f"config)")
    folder = str(path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        return pkgutil.resolve_name(spec)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{path}: {key} = {spec!r} cannot be imported: "
                          f"{type(e).__name__}: {e}") from None


def _config_extras(cfg: dict[str, Any], path: Path) -> dict[str, Any]:
    """``schema`` (a JSON-schema table or ``"module:Name"``; or a table of them by prompt),
    ``tools`` (a list of ``"module:function"``; or a table of lists by prompt),
    ``max_steps`` and ``tool_choice``, as evaluate() takes them."""
    from gptmagic.eval.extras import is_schema

    out: dict[str, Any] = {k: cfg[k] for k in ("max_steps", "tool_choice") if k in cfg}
    schema = cfg.get("schema")
    if isinstance(schema, str):
        schema = _imported(schema, "schema", path)
    elif isinstance(schema, dict) and not is_schema(schema):  # one per prompt
        schema = {p: _imported(s, f"schema.{p}", path) if isinstance(s, str) else s
                  for p, s in schema.items()}
    if schema is not None:
        out["schema"] = schema

    def functions(specs: Any, key: str) -> Any:
        if not isinstance(specs, list):
            return specs  # evaluate() says what it takes
        return [_imported(f, key, path) if isinstance(f, str) else f for f in specs]

    tools = cfg.get("tools")
    if isinstance(tools, dict):
        out["tools"] = {p: functions(fs, f"tools.{p}") for p, fs in tools.items()}
    elif tools is not None:
        out["tools"] = functions(tools, "tools")
    return out


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from None


def _models(args: argparse.Namespace) -> int:
    from gptmagic.client.facade import get_client
    from gptmagic.client.portal import get_portal
    from gptmagic.views.models import models_text

    rows, note = get_portal().run(get_client().model_table(provider=args.profile,
                                                           today=args.today))
    print(models_text(rows, note))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from gptmagic.local.server import main as serve_main

    return serve_main(["--host", args.host, "--port", str(args.port)])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gptmagic", description="Prompt engineering tools.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the embedded model as an OpenAI-compatible server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    s.set_defaults(fn=_serve)
    d = sub.add_parser("demo", help="a streamed chat and a completion with logprobs; with "
                       "--report, run the quickstart and batch-evaluation notebooks")
    d.add_argument("--model", default="local")
    d.add_argument("--profile", default=None)
    d.add_argument("--report", nargs="?", const="report", default=None, metavar="DIR",
                   help="execute notebooks 01 and 06 into DIR (default: report) with an "
                   "offline HTML report (needs the 'notebooks' extra)")
    d.add_argument("--no-html", action="store_true",
                   help="with --report: executed notebooks only (no npm needed)")
    d.set_defaults(fn=_demo)
    t = sub.add_parser("tokens", help="count the tokens (and cost) of text or a JSON message list")
    t.add_argument("file", nargs="?", metavar="FILE", help="a file, or - / nothing for stdin")
    t.add_argument("--model", default=None, help="default: the configured default model")
    t.add_argument("--max-tokens", type=int, default=None, help="reply budget for the estimate")
    t.set_defaults(fn=_tokens)
    e = sub.add_parser("eval", help="run a batch evaluation described in TOML or YAML")
    e.add_argument("config", metavar="CONFIG")
    e.add_argument("-o", "--output", help="results CSV (default: the config's name with "
                   ".results.csv, e.g. run.toml -> run.results.csv)")
    e.add_argument("--batch", action="store_true", help="send the calls through the "
                   "provider's Batch API (about half the price, within 24 h); the same "
                   "command again collects them (as 'batch = true' in the config)")
    e.add_argument("--no-wait", action="store_true", help="with --batch: submit and exit; "
                   "run again to collect")
    e.add_argument("--resubmit", action="store_true", help="with --batch: send again the "
                   "calls an expired or cancelled batch did not run (or answered with an "
                   "error); without: send live even the calls a batch still holds")
    e.add_argument("--run", default=None, help="the run's name in the cache (default: "
                   "run-YYYYMMDD-HHMMSS); gptmagic.runs() lists them")
    e.set_defaults(fn=_eval)
    b = sub.add_parser("batches", help="list the batches evaluations made (status, counts, "
                       "created/expires), or cancel one")
    b.add_argument("action", nargs="?", choices=["list", "cancel"], default="list")
    b.add_argument("id", nargs="?", help="the batch to cancel")
    b.add_argument("--cache", default=None, help="the cache file (default: "
                   "$GPTMAGIC_CACHE or ~/.cache/gptmagic/calls.sqlite)")
    b.add_argument("--no-refresh", action="store_true",
                   help="show the statuses the cache last saw, asking no provider")
    b.set_defaults(fn=_batches)
    m = sub.add_parser("models", help="list the models a provider offers: context window, "
                       "prices per 1M tokens, shutdown date (retiring ones marked)")
    m.add_argument("--provider", "--profile", dest="profile", default=None,
                   help="a profile name (default: the configured provider)")
    # Hidden, for tests: the date the RETIRING / SHUT DOWN statuses are for, so a test
    # frozen on one day passes on every day (YYYY-MM-DD; the default is today, UTC).
    m.add_argument("--today", type=_iso_date, default=None, help=argparse.SUPPRESS)
    m.set_defaults(fn=_models)
    args = ap.parse_args(argv)
    try:
        return int(args.fn(args))
    except RunInterrupted as e:  # Ctrl-C in `gptmagic eval`: what is kept, and how to resume
        print(f"gptmagic: interrupted: {e}", file=sys.stderr)
        return 130
    except GptmagicError as e:
        print(f"gptmagic: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
