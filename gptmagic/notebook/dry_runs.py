"""What a cell would send, without sending it: a dry run's body, URL, count and estimate,
and the server's exact prompt count when asked for (``--exact-count``).

The count a dry run shows is an offline estimate for hosted models (tiktoken and
the published chat format; reasoning models' own overhead is not published) and
the engine's own for the embedded model. Only OpenAI's API counts a prompt
exactly (``POST /responses/input_tokens``), so it alone is asked, and only with a
key: without one nothing is sent and the dry run says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from gptmagic.catalog.embedded import embedded_model
from gptmagic.catalog.pricing import estimate
from gptmagic.client.config import Provider
from gptmagic.errors import APIError, GptmagicError
from gptmagic.notebook.apis import Outgoing
from gptmagic.notebook.replies import DryRun

if TYPE_CHECKING:
    from gptmagic.catalog.tokens import TokenCount
    from gptmagic.client.client import Client
    from gptmagic.client.portal import Portal

__all__ = ["chat_dry_run", "dry_run", "exact_count", "tool_costs"]

_LOCAL = ("--exact-count: nothing asked; the embedded model's count is its engine's own, "
          "exact already")
_ESTIMATED = "the prompt count is the offline estimate"
#: Why a Responses prompt's count is an estimate even where chat's format is verified.
_RESPONSES = ("the Responses API's prompt overhead is not published, so it is counted in "
              "chat's format")


class Sender(Protocol):
    """What a dry run needs of the session: its client, portal and counter."""

    @property
    def client(self) -> Client: ...

    @property
    def portal(self) -> Portal: ...

    def count_tokens(self, value: Any, model: str, *, tools: Any = None,
                     breakdown: bool = True) -> TokenCount: ...


def max_out(params: Mapping[str, Any]) -> int | None:
    """The completion bound of a request in either endpoint's name."""
    return params.get("max_tokens") or params.get("max_output_tokens")


def dry_run(session: Sender, prov: Provider, model: str, path: str, body: dict[str, Any],
            counted: Any, params: Mapping[str, Any], note: str | None = None,
            tools: Sequence[Mapping[str, Any]] | None = None) -> DryRun:
    """``body`` as the client would send it, to ``path``, with its count and estimate
    (``tools``: the chat-shaped definitions sent, counted with the prompt)."""
    # The embedded engine's URL is only known once it runs; say where it will be.
    url, _ = prov.endpoint(path, model, prov.base_url or "http://127.0.0.1:<engine>/v1")
    costs, said = tool_costs(session, counted, model, tools) if tools else (None, None)
    count = session.count_tokens(counted, model, tools=tools if costs else None)
    cap = _engine_cap(prov, model, path, params)
    note = "\n".join(x for x in (note, said, cap and cap[1]) if x) or None
    est = estimate(count.total, model, max_tokens=max_out(params) or (cap and cap[0]),
                   provider=prov.kind)
    engine_prompt = None
    if prov.kind == "local" and isinstance(counted, list):
        # What the model reads: names written in, the template's own tokens, the tools'
        # description the engine writes into the system message (this model's template).
        rendered = session.portal.run(session.client.local_tokenize(messages=counted,
                                                                    tools=tools, model=model))
        engine_prompt = rendered.get("prompt") if isinstance(rendered, dict) else None
    return DryRun(body, url, count, est, note, engine_prompt=engine_prompt, tool_costs=costs,
                  tools=[dict(t) for t in tools] if costs and tools else None)


def _engine_cap(prov: Provider, model: str, path: str,
                params: Mapping[str, Any]) -> tuple[int, str] | None:
    """The cap the engine gives a chat with no token limit, and the note saying so: the
    body above does not show it, the reply's ``finish: length`` would."""
    served = embedded_model(model) if prov.kind == "local" else None
    if served is None or max_out(params) is not None or path == "completions":
        return None  # a completion's default is OpenAI's 16, as on OpenAI
    return served.default_max_tokens, (
        f"the embedded engine caps this reply at {served.default_max_tokens} tokens "
        f"({served.id}'s default, a {served.kind} model's); pass --max-tokens to change it")


def tool_costs(session: Sender, messages: Any, model: str,
               tools: Sequence[Mapping[str, Any]]) -> tuple[list[tuple[str, int]] | None,
                                                            str | None]:
    """What each tool definition adds to the prompt: the count with every tool less the
    count without that one (what leaving it out would save), then ``("all", total)``;
    or None and why they cannot be counted (a counter that takes no tools)."""
    try:
        whole = session.count_tokens(messages, model, tools=tools, breakdown=False)
    except GptmagicError as e:
        return None, f"the tool definitions are not in the count: {e}"
    rows = []
    for i, tool in enumerate(tools):
        rest = [t for j, t in enumerate(tools) if j != i]
        less = session.count_tokens(messages, model, tools=rest or None, breakdown=False)
        fn = tool.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else tool.get("name")
        rows.append((str(name), whole.total - less.total))
    return [*rows, ("all", whole.tools)], None


def chat_dry_run(session: Sender, prov: Provider, model: str, out: Outgoing,
                 messages: list[dict[str, Any]], stream: bool, note: str | None, *,
                 exact_count: bool = False,
                 tools: Sequence[Mapping[str, Any]] | None = None) -> DryRun:
    """A chat cell's dry run on either endpoint; ``exact_count`` asks the server.

    A request chained on a stored response (``previous_response_id``) is counted as
    sent, its instructions and new input: the server adds the turns it holds, which
    no offline count sees, and the dry run says so."""
    counted = messages
    if out.chained:
        counted = ([{"role": "system", "content": out.payload["instructions"]}]
                   if out.payload.get("instructions") else []) + out.input
    dry = dry_run(session, prov, model, out.path, out.body(model, stream), counted,
                  out.params, note, tools=tools)
    if prov.kind == "local":
        dry.exact_note = _LOCAL if exact_count else None
        return dry
    said = []
    if out.api == "responses":  # never "exact": only the server's own count is
        dry.count = replace(dry.count, exact=False, note=_RESPONSES)
        said.append(_RESPONSES)  # the counter says "approximate count" itself
    if out.chained:
        said.append("not counting the chained turns the server holds")
    dry.counter_note = "; ".join(said) or None
    _ask_exact(session, prov, model, out, dry, exact_count)
    if out.chained:
        chained = (f"chained on stored response {out.chained} (previous_response_id): the "
                   "server adds the thread's earlier turns it holds to this prompt; ")
        if dry.exact_count is not None:
            chained += ("the offline count covers only the input sent; the server's exact "
                        "count includes them, and the cost estimate is priced on it")
        else:
            chained += ("they are not in the count or the cost estimate, which cover only "
                        "the input sent")
            if prov.kind == "openai":
                chained += ("; --exact-count asks OpenAI's server for the whole prompt, and "
                            "prices it")
        dry.note = "\n".join(x for x in (dry.note, chained) if x)
    return dry


def _ask_exact(session: Sender, prov: Provider, model: str, out: Outgoing, dry: DryRun,
               exact_count: bool) -> None:
    """Ask the server for the count when asked to, and price it; else say why not."""
    if not exact_count:
        hint = ("; --exact-count asks OpenAI's server for the exact one" if prov.kind == "openai"
                else "")
        dry.exact_note = ("The prompt count is an offline estimate (tiktoken and the published "
                          f"chat format){hint}.")
        return
    exact, why = _ask(session, prov, model, out)
    dry.exact_count, dry.exact_note = exact, why
    if exact is not None:
        dry.estimate = estimate(exact, model, max_tokens=max_out(out.params),
                                provider=prov.kind)


def exact_count(session: Sender, prov: Provider, model: str,
                out: Outgoing) -> tuple[int | None, str]:
    """The server's count of ``out``'s prompt, or None and why none was asked for."""
    if prov.kind == "local":
        return None, _LOCAL
    return _ask(session, prov, model, out)


def _ask(session: Sender, prov: Provider, model: str, out: Outgoing) -> tuple[int | None, str]:
    """``POST /responses/input_tokens`` on OpenAI's API with a key; else nothing is sent."""
    if prov.kind != "openai":
        return None, (f"--exact-count: nothing asked; profile {prov.name!r} ({prov.kind}) is "
                      f"not OpenAI's API, which alone counts input tokens; {_ESTIMATED}")
    try:
        key = prov.api_key()
    except GptmagicError:
        key = None
    if not key:
        return None, (f"--exact-count: nothing asked; profile {prov.name!r} has no API key "
                      f"({prov.api_key_env or 'api_key_env'} is not set); {_ESTIMATED}")
    try:
        exact = session.portal.run(session.client.input_tokens(
            out.input, model=model, provider=prov, **out.count_fields()))
    except APIError as e:
        return None, f"--exact-count: the server did not count ({e}); {_ESTIMATED}"
    return int(exact), "counted by the server"
