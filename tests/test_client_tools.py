"""The tool loop end to end against the fake server (real HTTP on loopback): chat and
the Responses API, streamed and not; every request checked against OpenAI's spec."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import pytest
from fakeserver import Behaviour
from openapi_schema import validate

import gptmagic
from gptmagic import Client, Provider, Timeouts
from gptmagic.client.tools import ToolRun, total_usage
from gptmagic.core.types import Result, Usage
from gptmagic.errors import RequestError, ToolLoopInterrupted

KEY = "sk-fake-tools-0123456789abcdef"
APIS = [("chat", False), ("chat", True), ("responses", False), ("responses", True)]
PARIS = ("get_weather", {"city": "Paris"})
ROME = ("get_weather", {"city": "Rome"})


@pytest.fixture
def prov(fake_server, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", KEY)
    return Provider(name="fake", kind="compatible", base_url=fake_server.url,
                    api_key_env="FAKE_KEY", default_model="fake-model")


class Weather:
    """The tool, recording each call and the thread it ran on."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls: list[dict] = []
        self.threads: list[threading.Thread] = []
        self.fail = fail

    def __call__(self, city: str, days: int = 1) -> str:
        self.calls.append({"city": city, "days": days})
        self.threads.append(threading.current_thread())
        if self.fail is not None:
            raise self.fail
        return f"{city}: sunny"

    @property
    def tool(self) -> gptmagic.Tool:
        def get_weather(city: str, days: int = 1) -> str:
            """Get the weather for a city.

            Args:
                city: The city.
                days: Days ahead.
            """
            return self(city, days)

        return gptmagic.tool_from(get_weather)


def call(api: str, prov: Provider, prompt: str = "weather in Paris?", **kwargs) -> Result:
    fn = gptmagic.chat if api == "chat" else gptmagic.respond
    return fn(prompt, provider=prov, **kwargs)


def sent(fake_server, api: str) -> list[dict]:
    """Every request body, each checked against the spec."""
    bodies = [r.json for r in fake_server.requests if r.method == "POST"]
    for body in bodies:
        validate(body, "CreateChatCompletionRequest" if api == "chat" else "CreateResponse")
    return bodies


def last_input(body: dict, api: str) -> list[dict]:
    return body["messages"] if api == "chat" else body["input"]


@pytest.mark.parametrize("api, stream", APIS)
def test_one_call_runs_on_the_callers_thread_and_the_model_sees_its_result(
        prov, fake_server, api, stream):
    weather = Weather()
    deltas: list[str] = []
    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour())
    r = call(api, prov, tools=[weather.tool], stream=stream,
             on_delta=lambda i, t: deltas.append(t))
    assert r.text == "tool results: Paris: sunny" and r.finish_reason == "stop"
    assert weather.calls == [{"city": "Paris", "days": 1}]
    assert weather.threads == [threading.current_thread()]
    assert [len(s.calls) for s in r.steps] == [1, 0]
    c = r.steps[0].calls[0]
    assert (c.name, c.args, c.output, c.error, c.approved) == (
        "get_weather", {"city": "Paris", "days": 1}, "Paris: sunny", None, None)
    assert json.loads(c.arguments) == {"city": "Paris"} and c.seconds >= 0
    assert r.steps[0].result.finish_reason == "tool_calls"
    assert [m["role"] for m in r.exchange] == ["assistant", "tool", "assistant"]
    assert r.exchange[0]["tool_calls"][0]["id"] == c.id == r.exchange[1]["tool_call_id"]
    assert r.exchange[-1] == {"role": "assistant", "content": "tool results: Paris: sunny"}
    assert r.usage == total_usage([s.result for s in r.steps])
    assert r.usage.total_tokens == sum(s.result.usage.total_tokens for s in r.steps) > 0
    if stream:
        assert "".join(deltas) == r.text
    first, second = sent(fake_server, api)
    assert all(b.get("stream", False) is stream for b in (first, second))
    spec = first["tools"][0]
    name = spec["function"]["name"] if api == "chat" else spec["name"]
    assert name == "get_weather"
    if api == "chat":
        assert second["messages"][1:] == r.exchange[:2]
    else:
        assert second["input"][1:] == [
            {"type": "function_call", "call_id": c.id, "name": "get_weather",
             "arguments": c.arguments},
            {"type": "function_call_output", "call_id": c.id, "output": "Paris: sunny"}]


@pytest.mark.parametrize("api, stream", APIS)
def test_parallel_calls_all_run_in_order_and_answer_together(prov, fake_server, api, stream):
    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[PARIS, ROME]), Behaviour())
    r = call(api, prov, tools=[weather.tool], stream=stream)
    assert [c["city"] for c in weather.calls] == ["Paris", "Rome"]
    assert r.text == "tool results: Paris: sunny | Rome: sunny"
    assert len(r.steps) == 2 and [c.output for c in r.steps[0].calls] == [
        "Paris: sunny", "Rome: sunny"]
    assert len({c.id for c in r.steps[0].calls}) == 2
    assert len(sent(fake_server, api)) == 2


@pytest.mark.parametrize("api, stream", APIS)
def test_malformed_arguments_are_told_to_the_model_and_the_function_never_runs(
        prov, fake_server, api, stream):
    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[("get_weather", '{"city": "Par')]), Behaviour())
    r = call(api, prov, tools=[weather.tool], stream=stream)
    assert weather.calls == []
    c = r.steps[0].calls[0]
    assert c.arguments == '{"city": "Par' and c.args is None
    assert c.error.startswith("arguments for get_weather are not valid JSON")
    assert c.output.startswith("Error: arguments for get_weather are not valid JSON")
    assert "Call get_weather again" in c.output
    assert r.text == "tool results: " + c.output  # the model saw it
    sent(fake_server, api)


@pytest.mark.parametrize("api, stream", APIS[::3])
def test_arguments_that_do_not_validate_name_the_path(prov, fake_server, api, stream):
    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[("get_weather", {"city": "Oslo", "days": "x"})]),
                     Behaviour())
    r = call(api, prov, tools=[weather.tool], stream=stream)
    assert weather.calls == [] and "days: Input should be a valid integer" in (
        r.steps[0].calls[0].output)


@pytest.mark.parametrize("api, stream", APIS)
def test_an_unknown_tool_is_told_to_the_model(prov, fake_server, api, stream):
    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[("get_time", {"zone": "UTC"}), PARIS]), Behaviour())
    r = call(api, prov, tools=[weather.tool], stream=stream)
    unknown, known = r.steps[0].calls
    assert unknown.error == "unknown tool 'get_time'"
    assert unknown.output == ("Error: there is no tool named 'get_time'; the tools are: "
                              "get_weather.")
    assert known.output == "Paris: sunny" and len(weather.calls) == 1
    assert r.text == f"tool results: {unknown.output} | Paris: sunny"
    sent(fake_server, api)


@pytest.mark.parametrize("api, stream", APIS[::3])
def test_a_functions_exception_is_a_result_the_model_sees(prov, fake_server, api, stream):
    weather = Weather(fail=ValueError("no such city"))
    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour())
    r = call(api, prov, tools=[weather.tool], stream=stream)
    c = r.steps[0].calls[0]
    assert c.error == "ValueError: no such city"
    assert c.output == "Error: ValueError: no such city"
    assert r.text == "tool results: Error: ValueError: no such city"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_functions_sys_exit_is_told_too(prov, fake_server, api):
    """sys.exit() in a tool is its exception: the model is told, the loop goes on (the
    sync driver runs it on this thread, the async one in a worker)."""
    weather = Weather(fail=SystemExit(3))
    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour())
    r = call(api, prov, tools=[weather.tool])
    assert r.steps[0].calls[0].error == "SystemExit: 3" and r.finish_reason == "stop"

    async def via_client():
        async with Client(prov) as c:
            fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour())
            return await c.chat("weather?", tools=[weather.tool])
    assert asyncio.run(via_client()).steps[0].calls[0].error == "SystemExit: 3"


def test_a_result_that_cannot_be_sent_is_told_like_an_exception(prov, fake_server):
    def read_file(path: str) -> bytes:
        """Read a file's bytes."""
        return b"\x89PNG\xff"  # not UTF-8: no JSON text holds it

    fake_server.plan(Behaviour(tool_calls=[("read_file", {"path": "x"})]), Behaviour())
    r = gptmagic.chat("read x", provider=prov, tools=[read_file])
    c = r.steps[0].calls[0]
    assert c.error is not None and c.error.startswith("PydanticSerializationError: ")
    assert c.output == f"Error: {c.error}" and r.text == f"tool results: {c.output}"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_approval_is_asked_first_and_a_refusal_is_told(prov, fake_server, api):
    weather = Weather()
    asked: list = []

    def approve(c):
        asked.append((c.name, dict(c.args), threading.current_thread()))
        return c.args["city"] == "Rome"

    fake_server.plan(Behaviour(tool_calls=[PARIS, ROME, ("get_weather", "{")]), Behaviour())
    r = call(api, prov, tools=[weather.tool], approve=approve)
    assert asked == [("get_weather", {"city": "Paris", "days": 1}, threading.current_thread()),
                     ("get_weather", {"city": "Rome", "days": 1}, threading.current_thread())]
    paris, rome, bad = r.steps[0].calls
    assert (paris.approved, paris.error) == (False, "declined by the user")
    assert paris.output == "Error: the user declined this call; it did not run."
    assert (rome.approved, rome.output) == (True, "Rome: sunny")
    assert bad.approved is None  # bad arguments: nothing to approve
    assert [c["city"] for c in weather.calls] == ["Rome"]
    assert r.text.startswith("tool results: Error: the user declined")


def test_max_steps_one_says_one_step(prov, fake_server):
    """The warning counts the steps in English: "1 tool step", not "1 tool steps"."""
    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour())
    r = call("chat", prov, tools=[weather.tool], max_steps=1)
    assert r.warnings[-1] == "stopped after 1 tool step (max_steps)"


@pytest.mark.parametrize("api, stream", APIS[::3])
def test_max_steps_stops_the_loop_and_keeps_everything(prov, fake_server, api, stream):
    weather = Weather()
    fake_server.plan(*[Behaviour(tool_calls=[PARIS])] * 3, Behaviour())
    r = call(api, prov, tools=[weather.tool], max_steps=2, stream=stream)
    assert len(sent(fake_server, api)) == 2 and len(weather.calls) == 2
    assert r.finish_reason == "tool_calls"
    assert r.warnings[-1] == "stopped after 2 tool steps (max_steps)"
    assert [len(s.calls) for s in r.steps] == [1, 1]
    assert [m["role"] for m in r.exchange] == ["assistant", "tool", "assistant", "tool"]
    with pytest.raises(RequestError, match="max_steps must be a whole number") as e:
        call(api, prov, tools=[weather.tool], max_steps=0)
    assert e.value.param == "max_steps"


def _cut(reply: dict) -> dict:
    """The reply as a max-tokens cut leaves it: the finish reason (chat) or status
    (Responses) says so, and the last call's arguments end early. (Stream events pass
    unchanged: these requests are not streamed.)"""
    if reply.get("object") not in ("chat.completion", "response"):
        return reply
    if "choices" in reply:
        choice = reply["choices"][0]
        choice["finish_reason"] = "length"
        fn = choice["message"]["tool_calls"][-1]["function"]
    else:
        reply["status"] = "incomplete"
        reply["incomplete_details"] = {"reason": "max_output_tokens"}
        fn = [o for o in reply["output"] if o["type"] == "function_call"][-1]
    fn["arguments"] = fn["arguments"][:-3]
    return reply


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_reply_cut_at_max_tokens_runs_none_of_its_calls(prov, fake_server, api):
    """The last call's arguments were cut off: none runs (the model made no mistake to
    be told about), the loop stops, and the result says to raise the max tokens."""
    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[PARIS, ROME], mangle=_cut), Behaviour())
    r = call(api, prov, tools=[weather.tool])
    assert len(sent(fake_server, api)) == 1 and weather.calls == []
    assert r.finish_reason == "length" and r.exchange == [] and r.steps[0].calls == []
    assert "none was run: raise max_tokens" in r.warnings[-1]


@pytest.mark.parametrize("api, stream", APIS)
def test_a_model_call_failing_after_steps_keeps_them_on_the_error(prov, fake_server, api,
                                                                   stream):
    """The function ran, its call was paid: the error carries the steps done, and says so."""
    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour(status=400))
    with pytest.raises(gptmagic.APIStatusError) as e:
        call(api, prov, tools=[weather.tool], stream=stream)
    assert weather.calls == [{"city": "Paris", "days": 1}]
    kept = e.value.partial
    assert [c.output for s in kept.steps for c in s.calls] == ["Paris: sunny"]
    assert [m["role"] for m in kept.exchange] == ["assistant", "tool"]
    assert "this error's .partial" in e.value.__notes__[0]


@pytest.mark.parametrize("choice, first, later", [
    ("required", "required", None),
    ("get_weather", {"type": "function", "function": {"name": "get_weather"}}, None),
    ("auto", "auto", "auto"),
])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_tool_choice_shapes_and_a_forced_choice_holds_once(prov, fake_server, api, choice,
                                                          first, later):
    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour())
    r = call(api, prov, tools=[weather.tool], tool_choice=choice)
    bodies = sent(fake_server, api)
    if api == "responses" and isinstance(first, dict):
        first = {"type": "function", "name": "get_weather"}
    assert bodies[0]["tool_choice"] == first
    assert bodies[1].get("tool_choice") == later
    assert len(weather.calls) == 1 and r.finish_reason == "stop"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_tool_choice_none_sends_none_and_the_model_answers(prov, fake_server, api):
    r = call(api, prov, tools=[Weather().tool], tool_choice="none")
    assert sent(fake_server, api)[0]["tool_choice"] == "none"
    assert r.text == "echo: weather in Paris?" and len(r.steps) == 1 and r.steps[0].calls == []
    with pytest.raises(RequestError, match="got 'get_wether'"):
        call(api, prov, tools=[Weather().tool], tool_choice="get_wether")


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_raw_dict_tools_are_sent_with_no_loop(prov, fake_server, api):
    spec = Weather().tool.chat_spec()
    raw = spec if api == "chat" else {"type": "function", **spec["function"]}
    r = call(api, prov, tools=[raw], tool_choice="get_weather")
    assert len(sent(fake_server, api)) == 1 and r.steps == [] and r.exchange == []
    assert r.finish_reason == "tool_calls"
    assert r.choices[0].tool_calls[0]["function"]["name"] == "get_weather"


def test_a_call_to_a_raw_dict_tool_ends_the_loop_for_the_caller(prov, fake_server):
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {}}}}
    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[("lookup", {})]))
    r = gptmagic.chat("x", provider=prov, tools=[weather.tool, lookup])
    assert len(fake_server.requests) == 1 and weather.calls == []
    assert r.finish_reason == "tool_calls" and r.steps[0].calls == []
    assert "called lookup, which has no Python function here" in r.warnings[-1]
    assert r.exchange == [r.choices[0].message]
    sent(fake_server, "chat")


def test_more_than_one_reply_is_refused(prov, fake_server):
    with pytest.raises(RequestError, match="n must be 1") as e:
        gptmagic.chat("x", provider=prov, tools=[Weather().tool], n=2)
    assert e.value.param == "n" and fake_server.requests == []


def test_ctrl_c_while_approval_is_asked_keeps_the_steps_done(prov, fake_server):
    """The steps done and their messages are kept, each call of the stopped step
    answered as stopped, so the exchange is a conversation the API takes."""
    weather = Weather()

    def approve(c):
        if c.args["city"] == "Rome":
            raise KeyboardInterrupt
        return True

    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour(tool_calls=[ROME, PARIS]))
    with pytest.raises(ToolLoopInterrupted, match="after 2 of at most 5 tool steps") as e:
        gptmagic.chat("x", provider=prov, tools=[weather.tool], approve=approve, stream=True)
    partial = e.value.partial
    assert partial.finish_reason == "interrupted" and len(partial.steps) == 2
    assert partial.steps[0].calls[0].output == "Paris: sunny"
    rome, paris = partial.steps[1].calls
    assert rome.error == paris.error == "interrupted before it ran"
    assert [m["role"] for m in partial.exchange] == ["assistant", "tool", "assistant", "tool",
                                                     "tool"]
    assert partial.exchange[-1]["content"] == "Error: the user stopped the run before it ran."
    assert partial.usage.total_tokens == sum(s.result.usage.total_tokens
                                             for s in partial.steps)
    validate({"model": "m", "messages": [{"role": "user", "content": "x"}, *partial.exchange]},
             "CreateChatCompletionRequest")


def test_ctrl_c_during_a_model_call_keeps_the_steps_before_it(prov, fake_server):
    """A real SIGINT while the second model call waits on the portal."""
    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour(delay=3))
    main = threading.main_thread().ident
    assert main == threading.get_ident()

    def interrupt_when_asked() -> None:
        for _ in range(300):  # bounded: 3 s
            if len(fake_server.requests) == 2:
                signal.pthread_kill(main, signal.SIGINT)
                return
            time.sleep(0.01)

    threading.Thread(target=interrupt_when_asked, daemon=True).start()
    with pytest.raises(ToolLoopInterrupted, match="after 1 of at most 5") as e:
        gptmagic.chat("x", provider=prov, tools=[Weather().tool])
    partial = e.value.partial
    assert [len(s.calls) for s in partial.steps] == [1]
    assert [m["role"] for m in partial.exchange] == ["assistant", "tool"]
    assert partial.exchange[1]["content"] == "Paris: sunny"


def test_ctrl_c_during_a_function_keeps_the_first_step(prov, fake_server):
    weather = Weather()
    seen: list[str] = []

    def get_weather(city: str) -> str:
        """Weather."""
        seen.append(city)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return weather(city)

    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour(tool_calls=[ROME, PARIS]))
    with pytest.raises(ToolLoopInterrupted) as e:
        gptmagic.chat("x", provider=prov, tools=[get_weather])
    rome, paris = e.value.partial.steps[1].calls
    assert rome.error == "interrupted while it ran" and paris.error == "interrupted before it ran"
    assert e.value.partial.steps[0].calls[0].output == "Paris: sunny"


def test_an_async_tool_runs_from_the_sync_api(prov, fake_server):
    async def get_weather(city: str) -> dict:
        """Weather as data."""
        await asyncio.sleep(0)
        return {"city": city, "sky": "clear"}

    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour())
    r = gptmagic.chat("x", provider=prov, tools=[get_weather])
    assert r.steps[0].calls[0].output == '{"city":"Paris","sky":"clear"}'


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_the_async_api_runs_tools_in_the_callers_task(prov, fake_server, api):
    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour(), Behaviour(tool_calls=[ROME]),
                     Behaviour())
    fn = gptmagic.achat if api == "chat" else gptmagic.arespond
    r = await fn("x", provider=prov, tools=[weather.tool])
    assert r.text == "tool results: Paris: sunny"
    assert weather.threads == [threading.current_thread()]

    async def approve(c):
        return True

    r = await fn("x", provider=prov, tools=[weather.tool], approve=approve)
    assert r.steps[0].calls[0].approved is True and r.text == "tool results: Rome: sunny"
    sent(fake_server, api)


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_client_runs_tools_off_its_event_loop(prov, fake_server, api):
    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[PARIS, ROME]), Behaviour())
    async with Client(prov, timeouts=Timeouts(connect=2, read=5, write=5, pool=5,
                                              deadline=20)) as client:
        fn = client.chat if api == "chat" else client.respond
        r = await fn("x", tools=[weather.tool], approve=lambda c: True, max_steps=3)
    assert r.text == "tool results: Paris: sunny | Rome: sunny"
    assert threading.current_thread() not in weather.threads  # a worker thread, not the loop
    assert [c.approved for c in r.steps[0].calls] == [True, True]
    sent(fake_server, api)


def test_earlier_steps_warnings_are_kept_and_usage_sums():
    """Pure: the loop's rules with a scripted ask (no server)."""
    replies = iter([
        Result("chat", "m", [gptmagic.Choice(0, "", "tool_calls", role="assistant", tool_calls=[
            {"id": "a", "type": "function",
             "function": {"name": "echo", "arguments": '{"x": 1}'}}])],
               usage=Usage(3, 1, 4, cached_tokens=2), warnings=["usage under-reported"]),
        Result("chat", "m", [gptmagic.Choice(0, "done", "stop", role="assistant")],
               usage=Usage(5, 2, 7)),
    ])
    asked: list = []

    def echo(x: int) -> int:
        """Echo."""
        return x

    def ask(messages, params):
        asked.append((messages, params))
        return next(replies)

    run = ToolRun([echo], "go")
    r = run.run(ask)
    assert r.text == "done" and r.warnings == ["step 1: usage under-reported"]
    assert r.usage == Usage(8, 3, 11, cached_tokens=2)
    assert asked[1][0][-1] == {"role": "tool", "tool_call_id": "a", "content": "1"}
    assert repr(r).endswith("steps=2>") and repr(run) == "<ToolRun tools=['echo'] steps=2/5>"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_schema_shapes_the_final_answer_of_a_loop(prov, fake_server, api):
    """``schema=`` with ``tools=``: every step sends the strict format; the final answer
    is parsed (structured outputs' rules, core.structured)."""
    from pydantic import BaseModel

    class Forecast(BaseModel):
        city: str
        sunny: bool

    weather = Weather()
    fake_server.plan(Behaviour(tool_calls=[PARIS]), Behaviour())
    r = call(api, prov, tools=[weather.tool], schema=Forecast)
    assert len(weather.calls) == 1 and isinstance(r.parsed, Forecast) and r.valid
    bodies = sent(fake_server, api)
    key = "response_format" if api == "chat" else "text"
    assert all(key in b for b in bodies) and len(bodies) == 2


def test_two_tools_with_one_name_are_refused():
    def get_weather(city: str) -> str:
        """Another weather."""
        return city

    with pytest.raises(RequestError, match="two tools are named 'get_weather'") as e:
        ToolRun([Weather().tool, get_weather], "x")
    assert e.value.param == "tools"
    with pytest.raises(RequestError, match=r"not function \(tools=\[get_weather\]\)"):
        gptmagic.chat("x", tools=get_weather)  # type: ignore[arg-type]
