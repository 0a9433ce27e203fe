"""Translate between the OpenAI API and the llama.cpp server inside xllamacpp.

Pure functions, no I/O: :mod:`gptmagic.local.server` does the HTTP and calls
these. Stream state machines live in :mod:`gptmagic.local.stream` and logprob
conversions in :mod:`gptmagic.local.logprobs`; both are re-exported here.

The adapter's contract (what any client of the local engine can rely on):

* **model** -- an embedded model's id or alias (any case; see
  :mod:`gptmagic.catalog.embedded`) or its GGUF path is accepted; anything else is
  a 404 ``model_not_found`` error. Every response reports the id of the model
  that answered (``smollm2-135m-instruct`` for ``local``, ``gemma-3-270m``);
  ``/v1/models`` lists the installed ones.
* **errors** -- always ``{"error": {"message", "type", "param", "code"}}`` with
  ``code`` a string or null and the HTTP status kept. An over-long prompt is
  ``code: "context_length_exceeded"``.
* **refused, never ignored** (400, ``param`` names the field, e.g.
  ``messages[0].content[1]``; see :mod:`.checks`): ``suffix`` (the model has
  no fill-in-the-middle tokens), ``echo`` together with ``logprobs`` (the
  engine cannot score prompt tokens), ``best_of`` with ``stream`` or below
  ``n``, ``max_tokens`` < 1 (the engine always generates one token),
  ``top_logprobs`` without ``logprobs: true``, image, audio and file parts
  (the model reads text), ``custom`` tools and tool calls, an assistant
  ``audio`` reference, a tool message whose ``tool_call_id`` answers no
  earlier call, a ``tool_choice`` naming a tool not in ``tools``,
  ``logprobs`` with tools (they would be the logprobs of the reply's JSON),
  and every field of the wrong type or out of OpenAI's range.
  Integer-valued floats (``"n": 2.0``) are integers.
* **tools, emulated** (SmolLM2's template has no tool support) -- function
  ``tools`` are described in the system message and the reply is decoded
  under a JSON schema of "call these tools" or "reply with this text", then
  read back as ``tool_calls`` (``finish_reason: "tool_calls"``) or text,
  streamed as OpenAI streams them. Every ``tool_choice`` is honoured
  (``required``, a named tool, ``allowed_tools``), and
  ``parallel_tool_calls: false``; earlier calls and tool results are written
  into the prompt as text. See :mod:`.toolcalls` and :mod:`.toolreply`.
* **emulated** -- ``echo`` without logprobs: the prompt is prepended to each
  choice's text (streams send it as each choice's first chunk). An empty or
  null ``prompt`` is the start of a document (``<|endoftext|>``), as on
  OpenAI; ``"prompt": []`` is no choices. ``best_of`` > ``n``: ``best_of``
  candidates are generated and the ``n`` with the highest mean logprob per
  token returned; completion usage counts every candidate.
  ``n`` > 1 without streaming: ``n`` single requests (seed ``s + i`` when a
  seed is given), because the engine's own ``n`` reports the usage of one
  choice only. Message ``name``: the template drops it, so the content of a
  system, developer, user or tool message is prefixed with ``"{name}: "``
  (string content, or the first text part); an assistant message's name is
  dropped, because a prefix on the model's own turns teaches it to open its
  reply with one (few-shot ``assistant (example_assistant):`` turns made the
  embedded model answer ``example_assistant: ...`` 8 times in 8). An
  assistant ``refusal`` with null content is sent as that message's text. A
  final assistant message is a finished turn (the engine's prefill is off).
* **capped** -- a chat (or Responses) request without ``max_tokens``,
  ``max_completion_tokens`` or ``max_output_tokens`` gets its model's
  ``default_max_tokens`` (SmolLM2 1024, Gemma 3 270M 256; listed by
  ``/v1/models``), a completion OpenAI's 16; the engine's own default is
  unlimited, and a base model that never ends its turn would run to the
  window. A reply cut there ends ``finish_reason: "length"``.
* **mapped or dropped** -- ``max_completion_tokens`` becomes ``max_tokens``;
  ``user``, ``store``, ``metadata``, ``service_tier`` (and
  ``stream_options`` without ``stream``) are dropped; unknown parameters
  pass through to the engine. Chat roles are checked (the engine accepts any
  role string and renders it into the prompt). Token-id prompts are
  detokenised by the server when ``echo`` or ``text_offset`` needs their text.
* **shapes** -- chat messages get ``refusal: null`` and choices ``logprobs``;
  chat ``top_logprobs`` lists hold exactly the number asked for (``[]`` when
  only ``logprobs: true``); legacy completions get ``cmpl-`` ids and legacy
  logprobs (``tokens``, ``token_logprobs``, ``top_logprobs`` with exactly
  ``logprobs`` alternatives, ``text_offset`` counted in characters of prompt +
  completion); partial UTF-8 tokens read ``"bytes:\\xe2\\x80"``. One entry per
  token, as many as ``completion_tokens``: the engine merges the tokens of one
  character into one entry, and the adapter rebuilds them (see
  :mod:`.fragments`, :mod:`.rescore`); a character cut off by ``max_tokens``
  gets its entries back when decoding was greedy (``temperature: 0``).
* **clients that leave** -- every generation is streamed from the engine
  (collected when the client wants JSON), admitted only when a slot is free,
  and cancelled the moment its client goes (see :mod:`.collect`, :mod:`.gate`
  and the watchdog in :mod:`.server`).
* **usage** -- counts every choice (the engine counts one); in streams it is
  sent once, as a final ``choices: []`` chunk, only with
  ``stream_options.include_usage``. The engine's ``timings`` field is kept
  when a response comes from one engine request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gptmagic.catalog.context import too_long
from gptmagic.catalog.embedded import SMOLLM2, EmbeddedModel, embedded_model
from gptmagic.local.checks import (
    LocalRequestError,
    bad,
    boolean,
    check_messages,
    check_no_reasoning,
    check_output,
    check_tool_choice,
    check_tools,
    error_body,
    integer,
    number,
    optional_string,
)
from gptmagic.local.logprobs import chat_logprobs, legacy_logprobs, mean_logprob
from gptmagic.local.model import MODEL_ID
from gptmagic.local.plans import ChatPlan, CompletionPlan
from gptmagic.local.stream import ChatStream, CompletionStream, legacy_id, sum_usage
from gptmagic.local.toolcalls import explain_schema_error, plan_tools, render_history
from gptmagic.local.toolreply import decode_message

__all__ = [
    "ChatPlan", "ChatStream", "CompletionPlan", "CompletionStream", "DROPPED_PARAMS",
    "LocalRequestError", "check_model", "error_body", "legacy_id", "merge_chat",
    "merge_completions", "models_list", "name_prefix", "no_completions", "normalise_error",
    "prepare_chat", "prepare_completion"
]

#: OpenAI parameters with no meaning for a local model; removed before forwarding.
DROPPED_PARAMS = frozenset({"user", "store", "metadata", "service_tier"})

_MAX_N = 128  # OpenAI's own limit for n
_MAX_BEST_OF = 20  # OpenAI's own limit for best_of
_MAX_LOGPROBS = 20  # what the engine returns at most per token


_TYPE_MAP = {"not_found_error": "invalid_request_error", "unavailable_error": "server_error",
             "not_supported_error": "invalid_request_error"}


def normalise_error(status: int, body: Any, *, prompt_param: str = "messages",
                    model: str = MODEL_ID) -> dict[str, Any]:
    """Rewrite an engine error body (JSON or text) in OpenAI's shape.

    The engine puts the HTTP status in ``code``; OpenAI's ``code`` is a string
    or null, so numbers become null. ``prompt_param`` names the parameter an
    over-long prompt is blamed on (``messages`` or ``prompt``); ``model`` is the
    id the advice names.
    """
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        text = err if isinstance(err, str) else body if isinstance(body, str) else None
        message = (text or "").strip() or f"The local engine answered HTTP {status}."
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return error_body(message, type=kind)
    message = str(err.get("message") or f"The local engine answered HTTP {status}.")
    kind = str(err.get("type") or ("server_error" if status >= 500 else "invalid_request_error"))
    code = err.get("code") if isinstance(err.get("code"), str) else None
    param = err.get("param") if isinstance(err.get("param"), str) else None
    if kind == "exceed_context_size_error":
        kind, code, param = "invalid_request_error", "context_length_exceeded", prompt_param
        message = _too_long(err, message, chat=prompt_param != "prompt", model=model)
    kind = _TYPE_MAP.get(kind, kind)
    if param is None and (m := re.match(r"Field '([A-Za-z_]+)'", message)):
        param = m.group(1)
    if param is None and (explained := explain_schema_error(message)) is not None:
        param, message = explained
    return error_body(message, type=kind, param=param, code=code)


_CONTEXT_SIZES = re.compile(r"\((\d+) tokens\).*\((\d+) tokens\)")


def _too_long(err: dict[str, Any], message: str, *, chat: bool, model: str) -> str:
    """The engine's "request (N tokens) exceeds the available context size (M tokens),
    try increasing it" (advice for whoever runs the engine) as advice for the user."""
    prompt, window = err.get("n_prompt_tokens"), err.get("n_ctx")
    if not (isinstance(prompt, int) and isinstance(window, int)):
        found = _CONTEXT_SIZES.search(message)
        if found is None:
            return message
        prompt, window = int(found[1]), int(found[2])
    return "Too long for the local model: " + too_long(prompt, window, model, chat=chat)


def models_list(created: int, models: tuple[EmbeddedModel, ...] = (SMOLLM2,),
                loaded: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The ``/v1/models`` answer: the installed ``models``, in OpenAI's shape.

    Beyond OpenAI's fields: ``context_window``, ``default_max_tokens`` (the
    reply's cap when a request sets none), ``kind`` (``instruct`` or ``base``),
    ``licence`` and ``loaded`` (whether its engine runs yet).
    """
    data = [{"id": m.id, "object": "model", "created": created, "owned_by": "gptmagic-local",
             "context_window": m.context_window, "default_max_tokens": m.default_max_tokens,
             "kind": m.kind, "licence": m.licence, "loaded": m.id in loaded} for m in models]
    return {"object": "list", "data": data}


# --- requests -------------------------------------------------------------------------------


def check_model(body: Any, served: EmbeddedModel, gguf_path: str | None) -> None:
    """``body``'s ``model`` must name ``served`` (the model chosen for it) or its GGUF path."""
    if not isinstance(body, dict):
        raise LocalRequestError("The request body must be a JSON object.")
    model = body.get("model", served.id)
    if not isinstance(model, str):
        raise bad(f"'model' must be a string, got {model!r:.60}.", "model")
    if not (embedded_model(model) is served or (gguf_path is not None and model == gguf_path)):
        raise LocalRequestError(
            f"The model '{model}' does not exist on the local engine; use '{MODEL_ID}' "
            "(alias 'local') or 'gemma-3-270m'.", param="model", status=404,
            code="model_not_found")


def _common(body: Any, gguf_path: str | None, served: EmbeddedModel) -> dict[str, Any]:
    """Checks and rewrites shared by both endpoints; returns the upstream body."""
    check_model(body, served, gguf_path)
    req = {k: v for k, v in body.items() if k not in DROPPED_PARAMS}
    req["model"] = served.id
    if req.get("max_completion_tokens") is not None:
        req["max_tokens"] = req.pop("max_completion_tokens")
    req.pop("max_completion_tokens", None)
    if req.get("max_tokens") is not None:
        try:
            integer(req, "max_tokens", None, 1, served.context_window)
        except LocalRequestError as exc:
            raise bad(f"{exc} The local engine always generates at least one token.",
                       "max_tokens") from None
    integer(req, "n", 1, 1, _MAX_N)
    integer(req, "seed", None, -2**63, 2**63 - 1)
    number(req, "temperature", 0, 2)
    number(req, "top_p", 0, 1)
    number(req, "presence_penalty", -2, 2)
    number(req, "frequency_penalty", -2, 2)
    _stop(req)
    _logit_bias(req)
    check_output(req)
    if not boolean(req, "stream"):
        req.pop("stream_options", None)
    return req


def _stop(req: dict[str, Any]) -> None:
    stop = req.get("stop")
    if stop is None or (isinstance(stop, str) and stop):
        return
    if not isinstance(stop, list) or len(stop) > 4 or \
            not all(isinstance(s, str) and s for s in stop):
        raise bad(f"'stop' must be a string or a list of up to 4 non-empty strings, got "
                   f"{stop!r:.60}.", "stop")


def _logit_bias(req: dict[str, Any]) -> None:
    bias = req.get("logit_bias")
    if bias is None:
        return
    if not isinstance(bias, dict):
        raise bad(f"'logit_bias' must be an object mapping token ids to numbers, got "
                   f"{bias!r:.60}.", "logit_bias")
    for key, value in bias.items():
        if not key.lstrip("-").isdigit() or isinstance(value, bool) or \
                not isinstance(value, int | float) or not -100 <= value <= 100:
            raise bad(f"'logit_bias' maps token ids to numbers from -100 to 100; "
                       f"{key!r:.30}: {value!r:.30} is not one.", "logit_bias")


def _with_seed(body: dict[str, Any], offset: int) -> dict[str, Any]:
    seed = body.get("seed")
    if offset and isinstance(seed, int) and not isinstance(seed, bool):
        return {**body, "seed": seed + offset}
    return dict(body)


def _include_usage(req: dict[str, Any]) -> bool:
    options = req.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def name_prefix(message: Mapping[str, Any]) -> str:
    """The text that stands for a message's ``name`` in the engine's prompt.

    ``"{name}: "`` before the content of a named message, except the
    assistant's: the model reads its own earlier turns as the pattern of its
    next one, so a prefix there comes back at the start of its reply.
    """
    name = message.get("name")
    if not name or message.get("role") == "assistant":
        return ""
    return f"{name}: "


def _named(message: dict[str, Any]) -> dict[str, Any]:
    """Emulate ``name`` (the chat template drops it) by prefixing the content."""
    if "name" not in message:
        return message
    msg = {k: v for k, v in message.items() if k != "name"}
    prefix = name_prefix(message)
    if not prefix:
        return msg
    content = msg.get("content")
    if isinstance(content, str):
        msg["content"] = prefix + content
    elif isinstance(content, list):
        parts = [dict(p) if isinstance(p, dict) else p for p in content]
        for part in parts:
            if isinstance(part, dict) and part.get("type") == "text":
                part["text"] = prefix + str(part.get("text", ""))
                break
        else:
            parts.insert(0, {"type": "text", "text": prefix.rstrip()})
        msg["content"] = parts
    return msg


def prepare_chat(body: Any, *, gguf_path: str | None = None,
                 model: EmbeddedModel = SMOLLM2) -> ChatPlan:
    """Check a ``/v1/chat/completions`` request for ``model`` and plan the engine requests."""
    req = _common(body, gguf_path, model)
    if req.get("max_tokens") is None:
        # The engine's own default is unlimited: a base model would loop to the window.
        req["max_tokens"] = model.default_max_tokens
    messages = req.get("messages")
    req["messages"] = render_history([_named(m) for m in check_messages(messages)])
    check_tools(req)
    mode, allowed = check_tool_choice(req)
    boolean(req, "parallel_tool_calls")
    check_no_reasoning(req)
    logprobs = boolean(req, "logprobs")
    top = integer(req, "top_logprobs", None, 0, _MAX_LOGPROBS)
    if top is not None and not logprobs:
        raise bad("'top_logprobs' requires 'logprobs': true.", "top_logprobs")
    tools = plan_tools(req, mode, allowed)
    if tools is not None and logprobs:
        raise bad("'logprobs' cannot be used with 'tools' on the local model: its reply is "
                  "decoded as JSON under a grammar (see the local engine's docs), so the "
                  "logprobs would be those of the JSON, not of the reply. Drop 'logprobs', "
                  "or send tool_choice 'none'.", "logprobs")
    if logprobs:
        # top_logprobs 0 switches the engine's logprobs off entirely, so ask for 1 and trim.
        req["top_logprobs"] = max(top or 0, 1)
    n = req.pop("n", None) or 1
    stream = bool(req.get("stream"))
    plan = ChatPlan(bodies=[], n=n, stream=stream, include_usage=stream and _include_usage(req),
                    top_logprobs=(top or 0) if logprobs else None, tools=tools,
                    model=model.id)
    if stream:
        plan.bodies = [{**req, "n": n} if n > 1 else req]
    else:
        plan.bodies = [_with_seed(req, i) for i in range(n)]
    return plan


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value)


def _prompts(prompt: Any) -> list[str | list[int]]:
    """The prompts of a request; null is OpenAI's default (the start of a document)."""
    if prompt is None:
        return [""]
    if isinstance(prompt, str) or _is_tokens(prompt):
        return [prompt]
    if isinstance(prompt, list) and all(isinstance(p, str) or _is_tokens(p) for p in prompt):
        return list(prompt)  # [] is a batch of no prompts: no choices
    raise bad("'prompt' must be a string, a list of strings, a list of token ids, or a list "
               "of lists of token ids.", "prompt")


def prepare_completion(body: Any, *, gguf_path: str | None = None,
                       model: EmbeddedModel = SMOLLM2) -> CompletionPlan:
    """Check a legacy ``/v1/completions`` request and plan the engine requests.

    An empty prompt (``""`` or null) means the start of a document, as on
    OpenAI: the route puts the engine's document-start token there
    (:meth:`CompletionPlan.start_documents`); the engine alone generates
    nothing for it, or hangs when streaming with ``n`` > 1.
    """
    req = _common(body, gguf_path, model)
    if "prompt" not in req:
        raise bad("You must provide a 'prompt'.", "prompt")
    if req.get("max_tokens") is None:
        req["max_tokens"] = 16  # OpenAI's default for completions (the engine has none)
    prompts = _prompts(req["prompt"])
    if optional_string(req, "suffix"):
        raise bad("The local model has no fill-in-the-middle support, so 'suffix' cannot be "
                   "honoured. Use a hosted completion model (e.g. gpt-3.5-turbo-instruct) for "
                   "insertions.", "suffix")
    req.pop("suffix", None)
    echo = boolean(req, "echo")
    req.pop("echo", None)
    logprobs = integer(req, "logprobs", None, 0, _MAX_LOGPROBS)
    if echo and logprobs is not None:
        raise bad("'echo' with 'logprobs' needs the prompt tokens' logprobs, which the local "
                   "engine cannot compute. Drop one of them.", "echo")
    n = req.pop("n", None) or 1
    best_of = integer(req, "best_of", None, 1, _MAX_BEST_OF) or n
    req.pop("best_of", None)
    stream = bool(req.get("stream"))
    if best_of < n:
        raise bad(f"'best_of' ({best_of}) must be greater than or equal to 'n' ({n}).",
                   "best_of")
    if stream and best_of > n:
        raise bad("'best_of' cannot be used with 'stream'.", "best_of")
    if logprobs is not None:
        req["logprobs"] = max(logprobs, 1)  # the engine returns no logprobs at all for 0
    elif best_of > n:
        req["logprobs"] = 1  # needed to rank the candidates, stripped from the answer
    plan = CompletionPlan(
        bodies=[], prompts=prompts, n=n, best_of=best_of, echo=echo, logprobs=logprobs,
        prompt_texts=[p if isinstance(p, str) else None for p in prompts], stream=stream,
        include_usage=stream and _include_usage(req), model=model.id)
    if not prompts:
        return plan  # nothing to send: see no_completions()
    if stream:
        plan.bodies = [{**req, "prompt": prompts if len(prompts) > 1 else prompts[0], "n": n}]
        if n == 1:
            del plan.bodies[0]["n"]
        return plan
    for i, prompt in enumerate(prompts):
        for j in range(best_of):
            plan.bodies.append(_with_seed({**req, "prompt": prompt}, j))
            plan.groups.append((i, j))
    return plan


# --- responses ------------------------------------------------------------------------------


def _envelope(first: dict[str, Any], responses: list[dict[str, Any]],
              model: str) -> dict[str, Any]:
    out: dict[str, Any] = {k: first[k] for k in ("id", "object", "created",
                                                 "system_fingerprint") if k in first}
    out["model"] = model
    if len(responses) == 1 and "timings" in first:
        out["timings"] = first["timings"]
    return out


def merge_chat(plan: ChatPlan, responses: list[dict[str, Any]]) -> dict[str, Any]:
    """Build the OpenAI chat response from the engine answers to ``plan.bodies``."""
    choices: list[dict[str, Any]] = []
    for response in responses:
        for choice in response.get("choices") or []:
            choice = dict(choice)
            message = dict(choice.get("message") or {"role": "assistant", "content": None})
            message.setdefault("content", None)
            message.setdefault("refusal", None)
            if plan.tools is not None:
                fields, choice["finish_reason"] = decode_message(
                    message.get("content"), choice.get("finish_reason"),
                    structured=plan.tools.structured)
                message.update(fields)
            choice["message"] = message
            choice["index"] = len(choices)
            if plan.top_logprobs is None:
                choice["logprobs"] = None
            else:
                choice["logprobs"] = chat_logprobs(choice.get("logprobs"), plan.top_logprobs)
            choices.append(choice)
    out = _envelope(responses[0], responses, plan.model)
    out["object"] = "chat.completion"
    out["choices"] = choices
    out["usage"] = sum_usage([r.get("usage") or {} for r in responses])
    return out


def no_completions(plan: CompletionPlan, created: int) -> list[dict[str, Any]]:
    """The answer to a batch of no prompts (``"prompt": []``): no choices, no tokens.

    One ``text_completion`` object; when streaming, the events to send before
    ``[DONE]`` (the usage chunk only with ``include_usage``).
    """
    answer = {"id": legacy_id(f"empty{created}"), "object": "text_completion",
              "created": created, "model": plan.model, "choices": [],
              "usage": sum_usage([])}
    if plan.stream and not plan.include_usage:
        return []
    return [answer]


def merge_completions(plan: CompletionPlan, responses: list[dict[str, Any]]) -> dict[str, Any]:
    """Build the OpenAI completion response from the engine answers to ``plan.bodies``.

    Applies ``best_of`` selection, ``echo``, legacy logprobs and usage over all
    candidates (like OpenAI, discarded ``best_of`` candidates are billed).
    """
    by_prompt: dict[int, list[dict[str, Any]]] = {}
    for (prompt_index, _), response in zip(plan.groups, responses, strict=True):
        by_prompt.setdefault(prompt_index, []).extend(response.get("choices") or [])
    choices: list[dict[str, Any]] = []
    for prompt_index in range(len(plan.prompts)):
        candidates = by_prompt.get(prompt_index, [])
        if plan.best_of > plan.n:
            candidates = sorted(candidates, key=lambda c: mean_logprob(c.get("logprobs")),
                                reverse=True)[: plan.n]
        prompt_text = plan.prompt_texts[prompt_index] or ""
        for candidate in candidates:
            choice: dict[str, Any] = {"text": str(candidate.get("text") or ""),
                                      "index": len(choices),
                      "logprobs": None, "finish_reason": candidate.get("finish_reason")}
            if plan.logprobs is not None:
                choice["logprobs"], _, _ = legacy_logprobs(candidate.get("logprobs"), plan.logprobs,
                                                        len(prompt_text))
            if plan.echo:
                choice["text"] = prompt_text + choice["text"]
            choices.append(choice)
    out = _envelope(responses[0], responses, plan.model)
    out["id"] = legacy_id(out.get("id"))
    out["object"] = "text_completion"
    out["choices"] = choices
    out["usage"] = sum_usage([r.get("usage") or {} for r in responses], prompts=len(plan.prompts))
    return out

