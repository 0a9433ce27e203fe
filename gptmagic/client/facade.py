"""The convenience API: ``gptmagic.chat()`` / ``complete()`` / ``respond()`` /
``count_tokens()`` and their async forms.

All calls share one :class:`~gptmagic.client.client.Client` (one connection
pool) living on the portal loop, so the same code works in a script, in a
notebook (where a loop is already running) and under asyncio. The shared
client is made here (:func:`get_client`); only the entry points a user calls
take it by default, and below them a client is an argument.

``model="profile:model"`` picks a profile the way ``evaluate()`` does
(:func:`~gptmagic.client.config.split_model`).

``tools=[f, g]`` (Python functions) runs the tool loop
(:mod:`gptmagic.client.tools`): the model calls go through the portal, the
functions and ``approve`` run on the caller's thread (``achat``/``arespond``:
in the caller's own task). Raw OpenAI tool dicts are sent as they are.

Keys are made ready on the caller's thread before a call is scheduled on the
loop (:func:`~gptmagic.client.config.ask_key`): a profile that asks for its
key never stalls the requests already in flight.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gptmagic.catalog import context
from gptmagic.catalog.tokens import TokenCount, count, encoding_for
from gptmagic.client.client import Client
from gptmagic.client.config import ask_key, model_name
from gptmagic.client.portal import Portal, get_portal
from gptmagic.client.tools import Approve, ToolRun, check_tool_params
from gptmagic.core.defaults import DEFAULT_MAX_STEPS
from gptmagic.core.to_responses import input_items, response_fields
from gptmagic.core.tools import chat_specs, has_functions, tool_choice
from gptmagic.core.types import Result
from gptmagic.state import current

__all__ = ["achat", "acomplete", "acount_tokens", "arespond", "chat", "complete",
           "count_tokens", "count_with", "engine_tokens", "fit_messages", "get_client",
           "respond", "shutdown"]

def get_client() -> Client:
    """The shared client (created on first use; closed at exit)."""
    state = current()
    with state.lock:
        if state.client is None or state.client.http.closed:
            state.client = Client()
        client: Client = state.client
        return client


def _ready(kwargs: Mapping[str, Any]) -> Client:
    client = get_client()
    # Called from the loop itself (a judge scorer, a callback): never prompt there.
    prompt = not get_portal().owns_current_thread()
    ask_key(kwargs.get("provider"), kwargs.get("model"), prompt=prompt, default=client.provider)
    return client


def chat(messages: str | Sequence[dict[str, Any]], *, tools: Sequence[Any] | None = None,
         approve: Approve | None = None, max_steps: int = DEFAULT_MAX_STEPS,
         tool_choice: Any = None, **kwargs: Any) -> Result:
    """Send a chat request and wait for the result (see :meth:`Client.chat`).

    ``tools``: Python functions (or :class:`~gptmagic.core.tools.Tool` s) run a tool
    loop (:class:`~gptmagic.client.tools.ToolRun`) of at most ``max_steps`` model
    calls, asking ``approve(call)`` before each call when given; raw OpenAI tool dicts
    are sent with no loop. ``tool_choice``: ``"auto"``, ``"none"``, ``"required"`` or
    a tool's name.
    """
    client, portal = _ready(kwargs), get_portal()
    if not has_functions(tools):
        return portal.run(client.chat(messages, **_plain(tools, tool_choice), **kwargs))
    check_tool_params(kwargs)
    run = ToolRun(tools or [], messages, approve=approve, max_steps=max_steps,
                  tool_choice=tool_choice)
    return run.run(lambda m, p: portal.run(client.chat(m, **kwargs, **p)), run_coro=portal.run)


def complete(prompt: str | list[Any], **kwargs: Any) -> Result:
    """Send a legacy completion request and wait (see :meth:`Client.complete`)."""
    return get_portal().run(_ready(kwargs).complete(prompt, **kwargs))


def respond(input: str | Sequence[dict[str, Any]], *, tools: Sequence[Any] | None = None,
            approve: Approve | None = None, max_steps: int = DEFAULT_MAX_STEPS,
            tool_choice: Any = None, **kwargs: Any) -> Result:
    """Send a Responses API request and wait for the result (see :meth:`Client.respond`);
    ``tools``, ``approve``, ``max_steps`` and ``tool_choice`` as for :func:`chat`."""
    client, portal = _ready(kwargs), get_portal()
    if not has_functions(tools):
        return portal.run(client.respond(input, **_plain(tools, tool_choice, responses=True),
                                         **kwargs))
    run = ToolRun(tools or [], input, approve=approve, max_steps=max_steps,
                  tool_choice=tool_choice)
    return run.run(lambda m, p: portal.run(client.respond(input_items(m), **kwargs,
                                                          **response_fields(p))),
                   run_coro=portal.run)


async def achat(messages: str | Sequence[dict[str, Any]], *, tools: Sequence[Any] | None = None,
                approve: Approve | None = None, max_steps: int = DEFAULT_MAX_STEPS,
                tool_choice: Any = None, **kwargs: Any) -> Result:
    """Async :func:`chat`, awaitable from any event loop (tools run in the caller's task)."""
    client, portal = _ready(kwargs), get_portal()
    if not has_functions(tools):
        return await portal.arun(client.chat(messages, **_plain(tools, tool_choice), **kwargs))
    check_tool_params(kwargs)
    run = ToolRun(tools or [], messages, approve=approve, max_steps=max_steps,
                  tool_choice=tool_choice)
    return await run.arun(lambda m, p: portal.arun(client.chat(m, **kwargs, **p)))


async def acomplete(prompt: str | list[Any], **kwargs: Any) -> Result:
    """Async :func:`complete`, awaitable from any event loop."""
    return await get_portal().arun(_ready(kwargs).complete(prompt, **kwargs))


async def arespond(input: str | Sequence[dict[str, Any]], *,
                   tools: Sequence[Any] | None = None, approve: Approve | None = None,
                   max_steps: int = DEFAULT_MAX_STEPS, tool_choice: Any = None,
                   **kwargs: Any) -> Result:
    """Async :func:`respond`, awaitable from any event loop (tools run in the caller's task)."""
    client, portal = _ready(kwargs), get_portal()
    if not has_functions(tools):
        return await portal.arun(client.respond(
            input, **_plain(tools, tool_choice, responses=True), **kwargs))
    run = ToolRun(tools or [], input, approve=approve, max_steps=max_steps,
                  tool_choice=tool_choice)
    return await run.arun(lambda m, p: portal.arun(client.respond(
        input_items(m), **kwargs, **response_fields(p))))


def _plain(tools: Sequence[Any] | None, choice: Any, responses: bool = False) -> dict[str, Any]:
    """``tools`` with no Python function (sent as they are) and ``choice`` in the
    endpoint's shape (a tool's name as the named choice)."""
    choice = tool_choice(choice, tools or [])
    if responses and choice is not None:
        choice = response_fields({"tool_choice": choice})["tool_choice"]
    return {k: v for k, v in (("tools", tools), ("tool_choice", choice)) if v is not None}


def count_tokens(
    messages_or_text: str | Sequence[Mapping[str, Any]],
    model: str | None = None,
    *,
    tools: Sequence[Any] | None = None,
    breakdown: bool = True,
) -> TokenCount:
    """Tokens a prompt costs for ``model``: text, or a chat message list (+ tools).

    Returns a :class:`~gptmagic.catalog.tokens.TokenCount` with the total
    (what ``usage.prompt_tokens`` will say), whether it is exact, and a
    per-message breakdown (``breakdown=False`` skips the breakdown where it
    costs extra work); ``tools`` are what :func:`chat` takes (Python functions,
    :class:`~gptmagic.core.tools.Tool` objects, raw OpenAI dicts), their share in
    ``TokenCount.tools``. Hosted models are counted here with tiktoken; the
    embedded model by its engine (:meth:`Client.count_tokens`).
    """
    return count_with(get_client, get_portal(), messages_or_text,
                      model_name(model), tools=tools, breakdown=breakdown)


def count_with(
    client: Callable[[], Client],
    portal: Portal,
    messages_or_text: str | Sequence[Mapping[str, Any]],
    model: str,
    *,
    tools: Sequence[Any] | None = None,
    breakdown: bool = True,
) -> TokenCount:
    """Count from sync code: hosted models here with tiktoken (no loop hop, no client
    made); the embedded model by ``client()``'s engine, run on ``portal``."""
    tools = chat_specs(tools)
    if encoding_for(model) != "local":
        return count(messages_or_text, model, tools=tools)
    return portal.run(client().count_tokens(messages_or_text, model, tools=tools,
                                            breakdown=breakdown))


async def acount_tokens(
    messages_or_text: str | Sequence[Mapping[str, Any]],
    model: str | None = None,
    *,
    tools: Sequence[Any] | None = None,
    breakdown: bool = True,
) -> TokenCount:
    """Async :func:`count_tokens`, awaitable from any event loop."""
    model, tools = model_name(model), chat_specs(tools)
    if encoding_for(model) != "local":
        return count(messages_or_text, model, tools=tools)
    return await get_portal().arun(get_client().count_tokens(
        messages_or_text, model, tools=tools, breakdown=breakdown))


def engine_tokens(text: str, model: str | None = None) -> dict[str, Any]:
    """An embedded model's tokens and pieces of ``text`` (through the shared client);
    ``model``: which one (``"local:gemma-3-270m"``; None, the default)."""
    name = model_name(model) if model else None
    return get_portal().run(get_client().local_tokenize(text=text, pieces=True, model=name))


def fit_messages(messages: Sequence[Mapping[str, Any]], model: str, **kwargs: Any
                 ) -> context.FitResult:
    """:func:`gptmagic.catalog.context.fit_messages`, counting the embedded model on its engine."""
    kwargs.setdefault("count_tokens", count_tokens)
    return context.fit_messages(messages, model_name(model), **kwargs)


def shutdown() -> None:
    """Close the shared client and the local engine if gptmagic started it."""
    state = current()
    with state.lock:
        client, state.client = state.client, None
    if client is not None and not client.http.closed:
        try:
            get_portal().run(client.aclose(), timeout=5)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    import sys

    engine = sys.modules.get("gptmagic.local.engine")
    if engine is not None:
        engine.stop_engine()


atexit.register(shutdown)
