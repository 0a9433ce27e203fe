"""schemathesis against the embedded server: requests generated from OpenAI's spec.

A short run (a few dozen requests per operation, valid and invalid); the long
one is ``benchmarks/bench_spec_fuzz.py``. The rules are in ``spec_fuzz``: no
5xx, every 4xx OpenAI-shaped, every 200 valid against the spec. Failures
print the request, so a case can be replayed by hand.
"""

from __future__ import annotations

import pytest
from conftest_local import local_client, local_engine, local_url  # noqa: F401
from spec_fuzz import OPERATIONS, run_cases

pytestmark = [pytest.mark.engine, pytest.mark.slow]  # about 30 s: a few hundred requests

EXAMPLES = 30


@pytest.mark.parametrize("path, method, negative", OPERATIONS,
                         ids=[f"{m} {p} {'invalid' if n else 'valid'}" for p, m, n in OPERATIONS])
def test_answers_follow_the_spec(local_url: str, path: str, method: str,  # noqa: F811
                                 negative: bool) -> None:
    tally = run_cases(local_url, path, method, negative, EXAMPLES, derandomize=True)
    assert not tally.broken, tally.line() + "\n" + "\n".join(tally.broken[:5])
    assert sum(tally.statuses.values()) >= (1 if method == "GET" else 10)
    if method == "POST" and not negative:
        assert tally.statuses[200] > 0, tally.line()  # it reached the engine


@pytest.mark.parametrize("path", ["/chat/completions", "/responses"])
def test_streams_follow_the_spec(local_url: str, path: str) -> None:  # noqa: F811
    """Generated requests, each streamed: every event valid, in order, and finished."""
    tally = run_cases(local_url, path, "POST", False, EXAMPLES, derandomize=True, stream=True)
    assert not tally.broken, tally.line() + "\n" + "\n".join(tally.broken[:5])
    assert tally.statuses[200] > 0, tally.line()
