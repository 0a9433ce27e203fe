from __future__ import annotations

import types

import pytest

import gptmagic
from gptmagic import errors
from gptmagic.errors import register_secret, status_error


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (409, errors.ConflictError),
        (422, errors.UnprocessableEntityError),
        (429, errors.RateLimitError),
        (500, errors.InternalServerError),
        (502, errors.InternalServerError),
        (503, errors.InternalServerError),
        (418, errors.APIStatusError),
    ],
)
def test_status_classes(status, cls):
    body = {"error": {"message": "nope", "type": "t", "code": "c1"}}
    e = status_error(status, body, request_id="req_1", headers={"x-a": "b"}, url="http://h/v1/x")
    assert type(e) is cls
    assert isinstance(e, errors.APIStatusError) and isinstance(e, gptmagic.GptmagicError)
    assert (e.status_code, e.request_id, e.body, e.code) == (status, "req_1", body, "c1")
    assert f"HTTP {status}" in str(e) and "nope" in str(e) and "req_1" in str(e)


def test_error_with_text_body():
    e = status_error(502, "<html>Bad gateway</html>")
    assert "Bad gateway" in str(e) and e.body == "<html>Bad gateway</html>"


def test_tree():
    assert issubclass(errors.APITimeoutError, errors.APIConnectionError)
    assert issubclass(errors.QuotaExceededError, errors.RateLimitError)
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.GptmagicError)


def test_secrets_are_redacted_from_messages_and_bodies():
    key = "sk-test-" + "x" * 30
    register_secret(key)
    e = status_error(401, {"error": {"message": f"Incorrect API key provided: {key}"}})
    assert key not in str(e) and key not in repr(e.body) and "[REDACTED]" in str(e)
    assert key not in str(errors.ConfigError(f"bad key {key}"))


def test_public_all_matches_module():
    public = {
        n for n in dir(gptmagic)
        if not n.startswith("_") and not isinstance(getattr(gptmagic, n), types.ModuleType)
    } - {"annotations", "TYPE_CHECKING", "Any", "load_ipython_extension",
         "unload_ipython_extension"}
    assert sorted(gptmagic.__all__) == gptmagic.__all__
    for name in gptmagic.__all__:
        assert getattr(gptmagic, name) is not None
    assert public <= set(gptmagic.__all__)
