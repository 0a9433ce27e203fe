"""schemathesis against the embedded server: requests generated from OpenAI's spec.

A short run (a few dozen requests per operation, valid and invalid); the long
one is ``benchmarks/bench_spec_fuzz.py``. The rules are in ``spec_fuzz``: no
5xx, every 4xx OpenAI-shaped, every 200 valid against the spec. Failures
print the request, so a case can be replayed by hand.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from conftest_local import local_client, local_engine, local_url  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_fuzz import OPERATIONS, Tally, judge, send, strategy, tame

pytestmark = [pytest.mark.engine, pytest.mark.slow]  # about 30 s: a few hundred requests

EXAMPLES = 30


@pytest.mark.parametrize("path, method, negative", OPERATIONS,
                         ids=[f"{m} {p} {'invalid' if n else 'valid'}" for p, m, n in OPERATIONS])
def test_answers_follow_the_spec(local_url: str, path: str, method: str,  # noqa: F811
                                 negative: bool) -> None:
    tally = Tally()
    cases = strategy(path, method, negative)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data: Any) -> None:
        case = data.draw(cases)
        body = tame(case.body) if method == "POST" else None
        with httpx.Client(base_url=local_url, timeout=httpx.Timeout(60, connect=5)) as client:
            try:
                response = send(client, path, method, body)
            except httpx.TimeoutException:
                shown = json.dumps(body, default=str)[:400]
                tally.broken.append(f"no answer within 60 s for {shown}")
                return
        tally.statuses[response.status_code] += 1
        problem = judge(path, body, response)
        if problem:
            tally.broken.append(problem)

    run()
    assert not tally.broken, tally.line() + "\n" + "\n".join(tally.broken[:5])
    assert sum(tally.statuses.values()) >= (1 if method == "GET" else 10)
    if method == "POST" and not negative:
        assert tally.statuses[200] > 0, tally.line()  # it reached the engine
