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


def _one_of_each() -> list[errors.GptmagicError]:
    """An instance of every error class, with every field it has set."""
    from gptmagic.core.types import Choice, Result

    made: list[errors.GptmagicError] = []
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not (isinstance(cls, type) and issubclass(cls, errors.GptmagicError)):
            continue
        if issubclass(cls, errors.APIStatusError):
            made.append(cls("HTTP 429: slow down", status_code=429, request_id="req_9",
                            body={"error": {"message": "slow", "code": "c"}},
                            headers={"retry-after": "2"}))
        elif issubclass(cls, errors.StreamError):
            partial = Result(kind="chat", model="m", choices=[Choice(index=0, text="half")])
            made.append(cls("cut", partial=partial, request_id="req_8"))
        elif issubclass(cls, errors.APIError):
            made.append(cls("no route", request_id="req_7"))
        elif issubclass(cls, errors.RequestError):
            made.append(cls("bad n", param="n"))
        else:
            made.append(cls("wrong"))
    return made


@pytest.mark.parametrize("err", _one_of_each(), ids=lambda e: type(e).__name__)
def test_every_error_pickles_with_its_fields(err):
    import pickle

    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err)
    fields = {k: v for k, v in vars(err).items() if k != "partial"}
    assert {k: v for k, v in vars(back).items() if k != "partial"} == fields
    if isinstance(err, errors.StreamError):
        assert back.partial.choices[0].text == "half"


def test_status_error_keeps_no_credential_or_secret_response_header():
    key = "sk-test-" + "y" * 30
    register_secret(key)
    e = status_error(401, {"error": {"message": "no"}}, headers={
        "set-cookie": "session=abc", "www-authenticate": f"Bearer realm={key}",
        "x-request-id": "req_1", "retry-after": "1"})
    assert "set-cookie" not in e.headers and e.headers["retry-after"] == "1"
    assert key not in repr(e.headers) and "[REDACTED]" in e.headers["www-authenticate"]
