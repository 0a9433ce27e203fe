"""The teaching notebooks (notebooks/01-06), executed by a real kernel on the embedded model.

Each notebook runs once per session (``notebook_support``); the tests read its
saved outputs and check the numbers and claims its text makes.
"""

from __future__ import annotations

import ast
import json
import re

import pytest
from lazy import lazy
from notebook_support import (
    NOTEBOOKS,
    cell,
    cell_with,
    code_cells,
    data,
    executed,
    frame,
    js_cache,
    outputs,
    plain,
    stdout,
    widget_state,
    widget_views,
)

from gptmagic import count_tokens

nbformat = lazy("nbformat")

pytestmark = pytest.mark.engine

ALL = sorted(p.name for p in NOTEBOOKS.glob("0[1-6]-*.ipynb"))


@pytest.fixture
def quickstart(request):
    return executed("01-quickstart.ipynb", js_cache(request))


@pytest.fixture
def batch(request):
    return executed("06-batch-evaluation.ipynb", js_cache(request))


@pytest.mark.parametrize("name", ALL)
def test_committed_without_outputs_and_switchable_in_one_line(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in code_cells(nb)), f"{name}: clear the outputs before committing"
    first = code_cells(nb)[0].source.splitlines()[0]
    assert re.fullmatch(r'MODEL = "local"  # hosted instead: MODEL = "[\w.-]+".*OPENAI_API_KEY.*',
                        first), first
    # Every call goes through MODEL: no other model is hard-wired for calls.
    for c in code_cells(nb):
        assert '-m local' not in c.source and 'model="local"' not in c.source, c.source


def test_six_notebooks():
    assert [n[:3] for n in ALL] == ["01-", "02-", "03-", "04-", "05-", "06-"]


# -- 1 quickstart ------------------------------------------------------------------------


def test_quickstart(quickstart):
    nb = quickstart
    first = cell(nb, "%%chat --max-tokens 40")
    md = data(first, "text/markdown")[-1]
    assert "finish: stop" in md and "smollm2-135m-instruct" in md
    meta = outputs(first, "execute_result")[-1]["metadata"]["gptmagic"]["response"]
    assert meta["usage"]["prompt_tokens"] > 0 and meta["cost_usd"] == "0"

    facts = stdout(cell_with(nb, "reply = _chat"))
    assert "finish reason: stop" in facts and "cost:          $0.00" in facts
    assert re.search(r"first token after \d+ ms", facts)

    # The token counter widget, and "counted before == reported after".
    counter = cell_with(nb, "gptmagic.token_counter(sent")
    (model_id,) = widget_views(counter)
    state = widget_state(nb)[model_id]["state"]
    assert state["data"]["kind"] == "counter" and len(state["data"]["rows"]) == 2
    before, after = map(int, re.findall(r"(\d+) (?:prompt )?tokens", stdout(
        cell(nb, "from gptmagic import count_tokens")))[:2])
    assert before == after == state["data"]["total"]
    assert "$0." in stdout(cell(nb, "from gptmagic import estimate"))

    # The %%chat cell with --top-logprobs shows a heatmap under the reply.
    heat = cell_with(nb, "--top-logprobs 5")
    (hid,) = widget_views(heat)
    hstate = widget_state(nb)[hid]["state"]["data"]
    assert hstate["kind"] == "heatmap" and "Armstrong" in "".join(hstate["choices"][0]["t"])
    assert any('class="gm-' in h for h in data(heat, "text/html"))

    ev = cell_with(nb, "gptmagic.evaluate(")
    rows = frame(ev)
    assert len(rows) == 12 and {r["prompt"] for r in rows} == {"plain", "one word"}
    summary = frame(cell(nb, "res.summary()"))
    assert [(r["prompt"], r["calls"]) for r in summary] == [("plain", "6"), ("one word", "6")]
    # The progress bar is a standard ipywidget, saved with the notebook.
    assert any(widget_state(nb)[m]["model_name"] == "HBoxModel" for m in widget_views(ev))


# -- 2 chat format -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_format():
    return executed("02-chat-format.ipynb")


def test_chat_roles_and_dry_run(chat_format):
    nb = chat_format
    parsed = ast.literal_eval(plain(cell(nb, "import gptmagic")))
    assert [m["role"] for m in parsed] == ["system", "user"]
    dry = data(cell(nb, "%%chat --dry-run"), "text/markdown")[-1]
    assert "nothing sent" in dry.lower() and "What is the capital of Italy?" in dry


def test_few_shot_examples_as_turns_give_the_format(chat_format):
    lines = stdout(cell(chat_format, "examples = [")).splitlines()
    got = {}
    for line in lines:
        m = re.match(r"(.+?)\s+(\d+) prompt \+\s+(\d+) completion tokens\s+'(.*)'$", line)
        assert m, line
        got[m[1]] = (int(m[2]), int(m[3]), m[4])
    assert set(got) == {"no example", "named examples", "examples as turns"}
    # Examples cost prompt tokens; as turns they get the bare city name (the text says so).
    assert got["no example"][0] < got["examples as turns"][0] < got["named examples"][0]
    assert got["examples as turns"][2] == "Rome"
    assert got["examples as turns"][1] == min(v[1] for v in got.values())
    named = cell(chat_format, "%%chat --no-history --max-tokens 10")
    assert data(named, "text/markdown")


def test_history_is_resent_and_needed(chat_format):
    out = stdout(cell(chat_format, "first = ["))
    alone = re.search(r"follow-up alone: '(.*)' \((\d+) prompt tokens\)", out)
    with_h = re.search(r"with history:\s+'(.*)' \((\d+) prompt tokens\)", out)
    assert alone and with_h, out
    assert "Cairo" in with_h[1] and "Cairo" not in alone[1]
    assert int(with_h[2]) > int(alone[2])


def test_threads_and_fork(chat_format):
    nb = chat_format
    history = data(cell(nb, "%chat history --thread geo"), "text/markdown")[-1]
    assert "thread 'geo': 4 message(s)" in history and "And of Egypt?" in history
    assert "of 8,192 tokens" in history
    assert "forked with 1 turn(s)" in stdout(cell(nb, "%chat fork geo-b"))
    assert data(cell(nb, "%%chat --thread geo-b"), "text/markdown")
    assert stdout(cell(nb, "%chat threads")).split() == ["geo:", "2", "turn(s)", "geo-b:", "2",
                                                         "turn(s)"]


# -- 3 tokens and cost -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokens_nb():
    return executed("03-tokens-and-cost.ipynb")


def _samples(nb):
    scope: dict = {}
    exec(cell(nb, "samples = {").source, scope)  # a plain dict literal
    return scope["samples"]


def test_token_counts_equal_count_tokens(tokens_nb):
    nb = tokens_nb
    for line in stdout(cell(nb, "from gptmagic.tokens import")).splitlines():
        model, _enc, n, _, pieces = line.split(maxsplit=4)
        sentence = "Tokenization isn't magic: unbelievably, it's just statistics."
        assert int(n) == count_tokens(sentence, model).total == len(pieces.split("|"))
        assert pieces.replace("|", "") == sentence
    samples = _samples(nb)
    rows = {r[""]: r for r in frame(cell(nb, 'models = ["gpt-4o"'))}
    assert set(rows) == set(samples)
    for lang, text in samples.items():
        assert int(rows[lang]["characters"]) == len(text)
        for model in ("gpt-4o", "gpt-4", "local"):
            assert int(rows[lang][model]) == count_tokens(text, model).total, (lang, model)
    # The text's claims: Hindi costs several times English in cl100k (gpt-4), less so in
    # o200k (gpt-4o); the embedded model is the least efficient outside English.
    ratio = {m: int(rows["Hindi"][m]) / int(rows["English"][m]) for m in ("gpt-4o", "gpt-4",
                                                                          "local")}
    assert ratio["gpt-4"] > 2 and ratio["gpt-4o"] < ratio["gpt-4"] < ratio["local"]
    for lang in ("German", "Japanese", "Hindi", "Emoji"):
        r = {m: int(rows[lang][m]) / int(rows["English"][m]) for m in ("gpt-4o", "gpt-4",
                                                                       "local")}
        assert r["local"] >= max(r["gpt-4o"], r["gpt-4"]), lang


def test_chat_overhead_and_context_window(tokens_nb):
    nb = tokens_nb
    rows = frame(cell(nb, "messages = ["))
    assert [r["role"] for r in rows] == ["system", "user", "assistant", "user", "reply priming"]
    assert [r["format"] for r in rows] == ["4", "4", "4", "4", "3"]  # OpenAI's rule
    assert rows[3]["name"] == "2"
    out = stdout(cell(nb, "content = int("))
    assert re.search(r"gpt-4o: 19 tokens of content, 40 tokens sent", out), out
    assert "default system prompt" in stdout(cell(nb, "no_system ="))
    too_long = stdout(cell(nb, "long_text ="))
    n = int(re.search(r"([\d,]+) prompt tokens; window 8,192", too_long)[1].replace(",", ""))
    assert n > 8192 and "context_length_exceeded" in too_long
    fitted = stdout(cell(nb, "fitted = fit_messages("))
    assert fitted.startswith("dropped the ") and "to fit 8,192" in fitted
    now = int(re.search(r"now ([\d,]+) prompt tokens", fitted)[1].replace(",", ""))
    assert now <= 8192 - 100


def test_cost_before_and_after(tokens_nb):
    nb = tokens_nb
    rows = {r["model"]: r for r in frame(cell(nb, "question = ["))}
    assert rows["local"]["low"] == rows["local"]["high"] == "$0.00"
    for m in ("gpt-4o-mini", "gpt-4o", "gpt-4.1"):
        low, exp, high = (float(rows[m][k].lstrip("$")) for k in ("low", "expected", "high"))
        assert 0 < low < exp < high
    after = stdout(cell(nb, "r = gptmagic.chat(question"))
    assert "cost: $0.00" in after
    m = re.search(r"counted before the call: (\d+) · reported by the provider: (\d+)", after)
    assert m and m[1] == m[2]


# -- 4 logprobs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logprobs_nb():
    return executed("04-logprobs.ipynb")


def test_heatmaps_are_widgets_with_static_fallbacks(logprobs_nb):
    nb = logprobs_nb
    for start in ('moon = ask(', 'gptmagic.logprob_heatmap(unknown)'):
        c = cell(nb, start)
        (model_id,) = widget_views(c)
        st = widget_state(nb)[model_id]
        assert st["model_module"] == "anywidget" and st["state"]["data"]["kind"] == "heatmap"
        assert 'class="gm-' in data(c, "text/html")[-1]


def test_label_probabilities_beat_the_top_answer(logprobs_nb):
    nb = logprobs_nb
    rows = frame(cell(nb, "reviews = pd.DataFrame("))
    assert len(rows) == 8
    for r in rows:
        p, n = float(r["p_positive"]), float(r["p_negative"])
        assert 0 < p + n <= 1.001
    out = stdout(cell(nb, "argmax_accuracy ="))
    top = int(re.search(r"top answer:\s+accuracy (\d+)%", out)[1])
    fitted = int(re.search(r"positive_share >= [\d.]+: accuracy (\d+)%", out)[1])
    assert fitted > top  # what the text says the threshold is for


def test_made_up_answer_is_less_likely_and_perplexity(logprobs_nb):
    nb = logprobs_nb
    out = stdout(cell(nb, "known = ask("))
    ppl = dict(re.findall(r"(known|unknown)\s+'.*?'\n\s+least likely token .*perplexity "
                          r"([\d.]+)", out.replace('"', "'")))
    assert float(ppl["unknown"]) > float(ppl["known"]) >= 1
    again = stdout(cell(nb, "for label, r in ((\"known\""))
    for label in ("known", "unknown"):
        m = re.search(label + r"\s+\d+ tokens, mean logprob (-[\d.]+), perplexity ([\d.]+) "
                      r"\(gptmagic.logprobs.perplexity: ([\d.]+)\)", again)
        assert m and m[2] == m[3] == ppl[label]


def test_temperature_spreads_samples_and_seed_repeats(logprobs_nb):
    nb = logprobs_nb
    out = stdout(cell(nb, "for temperature in"))
    found = re.findall(r"temperature ([\d.]+): (\d) distinct", out)
    distinct = {float(t): int(d) for t, d in found}
    assert distinct[0.0] == 1 and distinct[1.5] > distinct[0.0]
    seeds = stdout(cell(nb, "def sample(seed)"))
    assert "same seed, same text: True" in seeds and "other seed, other text: True" in seeds


# -- 5 insertion -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def insertion_nb():
    return executed("05-insertion.ipynb")


def test_insertion_is_refused_honestly(insertion_nb):
    c = cell(insertion_nb, "%%complete --max-tokens 30 --temperature 0\n")
    (err,) = outputs(c)
    assert err["output_type"] == "stream" and err["name"] == "stderr"
    assert err["text"].startswith("UsageError: HTTP 400") and "'suffix'" in err["text"]
    assert "Traceback" not in err["text"]


def test_max_tokens_and_bounded_resampling(insertion_nb):
    nb = insertion_nb
    budget = stdout(cell(nb, 'prompt = "How to make tea'))
    assert re.search(r"max_tokens= 3\s+finish_reason='length'", budget)
    assert re.search(r"max_tokens=30\s+finish_reason='stop'", budget)
    loop = stdout(cell(nb, "K = 6"))
    reasons = re.findall(r"attempt (\d): finish_reason='(\w+)'", loop)
    assert 1 <= len(reasons) <= 6  # bounded
    assert [int(i) for i, _ in reasons] == list(range(1, len(reasons) + 1))
    # The loop stops at the first 'stop', and only then.
    assert all(r == "length" for _, r in reasons[:-1])
    calls = int(re.search(r"(\d+) calls, \d+ tokens billed", loop)[1])
    assert calls == len(reasons)
    if reasons[-1][1] == "stop":
        assert f"kept attempt {len(reasons)} of at most 6" in loop
    cut = data(cell(nb, "%%complete --max-tokens 3 "), "text/markdown")[-1]
    assert "all 3 samples stopped at max\\_tokens=3" in cut
    kept = data(cell(nb, "%%complete --max-tokens 30 --temperature 0.8"), "text/markdown")[-1]
    assert "finish: stop" in kept and "ending in 'stop'" in kept


# -- 6 batch evaluation ------------------------------------------------------------------


def test_batch_evaluation(batch):
    nb = batch
    assert ast.literal_eval(plain(cell(nb, "import os"))) == ["local"]  # no key: local only
    plan = frame(cell(nb, "params = {"))
    assert [(r["prompt"], r["calls"]) for r in plan] == [
        ("plain", "36"), ("instruction", "36"), ("few-shot", "36")]
    summary = frame(cell(nb, "summary = res.summary()"))
    keys = [(r["prompt"], r["temperature"]) for r in summary]
    assert keys == [(p, t) for p in ("plain", "instruction", "few-shot") for t in ("0.0", "1.0")]
    assert all(r["calls"] == "18" and r["model"] == "smollm2-135m-instruct" for r in summary)
    score = {(r["prompt"], r["temperature"]): float(r["score"]) for r in summary}
    cost = {(r["prompt"], r["temperature"]): float(r["total_cost"]) for r in summary}
    # The text's claims: temperature 1.0 scores below 0 for every prompt; quality varies by
    # prompt; the notional price makes costs differ.
    for p in ("plain", "instruction", "few-shot"):
        assert score[(p, "1.0")] < score[(p, "0.0")]
    assert max(score.values()) - min(score.values()) > 0.2
    assert all(c > 0 for c in cost.values()) and len(set(cost.values())) > 1
    tokens = {r[""]: r for r in frame(cell(nb, "best = summary"))}
    assert float(tokens["few-shot"]["prompt_tokens"]) > float(tokens["plain"]["prompt_tokens"])
    assert float(tokens["few-shot"]["completion_tokens"]) < float(
        tokens["plain"]["completion_tokens"])

    # The plot and the Pareto frontier: non-empty, costs rising and scores rising along it.
    assert len(data(cell(nb, "ax = res.plot()"), "image/png")) == 1  # one figure, not two
    front = frame(cell(nb, "res.pareto()"))
    assert front
    costs = [float(r["total_cost"]) for r in front]
    scores = [float(r["score"]) for r in front]
    assert costs == sorted(costs) and scores == sorted(scores)
    best = max(score, key=score.get)
    assert (front[-1]["prompt"], front[-1]["temperature"]) == best

    routes = frame(cell(nb, 'res.recommend("kind"'))
    assert sorted(r["kind"] for r in routes) == ["capital", "continent", "country"]

    hosted = frame(cell(nb, "# \"openai:\" names the provider"))
    assert {r["model"] for r in hosted} == {"gpt-4o-mini", "gpt-4.1-nano", "gpt-4o"}
    assert all(0 < float(r["cost_low"]) <= float(r["cost_high"]) for r in hosted)
    totals = stdout(cell(nb, "totals = hosted_plan"))
    assert len(re.findall(r"108 calls: \$0\.\d+ to \$0\.\d+", totals)) == 3
    # The evaluation's progress bar (a standard ipywidget) is saved with the notebook.
    ev = cell(nb, "res = gptmagic.evaluate(")
    assert any(widget_state(nb)[m]["model_name"] == "HBoxModel" for m in widget_views(ev))
    assert "108 calls, 0 from cache, 0 errors" in plain(ev)


def test_data_set_is_small_and_labelled():
    import csv

    with open(NOTEBOOKS / "data" / "geography.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert 15 <= len(rows) <= 30
    assert all(r["question"] and r["answer"] and r["kind"] for r in rows)
    kinds = {r["kind"] for r in rows}
    assert kinds == {"capital", "country", "continent"}
    assert json.dumps(rows)  # plain strings only
