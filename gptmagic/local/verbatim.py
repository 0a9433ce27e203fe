"""Control-token text in a message, sent to the model as text (pure; no I/O).

The problem: llama.cpp's chat endpoint renders the chat template into one
string and tokenizes it with special-token parsing on, so ``<|im_start|>``
typed in a message becomes the real control token: the user can forge turns,
and the per-message count in :mod:`gptmagic.client.engine_count` breaks.
OpenAI reads such text as text.

The design, and why:

* **Detect exactly, for free.** The texts special parsing matches are the
  vocabulary's control tokens (:mod:`.vocab`); a request is affected exactly
  when some message's text contains one (:func:`control_messages`, one
  compiled search per message, microseconds). Every other request goes to
  the chat endpoint as before and pays nothing else.
* **Keep the template the engine's.** The template is rendered by the engine
  (``/apply-template``) with a unique placeholder in place of each affected
  message's text (:func:`with_placeholders`), so roles, the default system
  prompt and ``name`` emulation stay exactly what a chat request gets. The
  caller also renders the real messages and checks that putting the texts
  back (:func:`substitute`) gives the same string, so a template that
  changes text can never be spliced wrongly.
* **Tokenize each run as llama.cpp would.** llama.cpp cuts the prompt at its
  control tokens and tokenizes the text between them as one run. So the
  rendered string is cut at the *template's* control tokens only
  (:func:`segments`): the runs holding a message's text are tokenized
  without special parsing, the rest with it, and the ids are joined. A
  message without control text gets exactly the ids it would have had, and
  ``/v1/tokenize`` returns these same ids, so its ``count`` is the chat
  request's ``usage.prompt_tokens``.
* **Generate from the ids.** The chat endpoint takes no token ids, but the
  completion endpoint does, with the same sampling and the same stop at the
  end-of-generation token (``<|im_end|>``, the end of the assistant's turn).
  :func:`completion_body` turns the chat request into that one;
  :class:`ChatChunks` and :func:`chat_answer` turn the engine's completion
  chunks and answers back into the chat endpoint's, so
  :class:`~gptmagic.local.stream.ChatStream` and
  :func:`~gptmagic.local.adapt.merge_chat` apply unchanged.
  ``response_format`` becomes the engine's ``json_schema`` (what its chat
  endpoint does with it); ``tools`` are already prompt text and a
  ``json_schema`` by then (:mod:`.toolcalls`), so they go too; legacy
  ``functions`` cannot be carried, so such a request is a 400 naming the
  field and the text that caused it.

Escaping the text (say, a zero-width character inside ``<|``) was rejected:
the model would read characters the user did not write, and the count would
not be the text's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gptmagic.local import adapt
from gptmagic.local.checks import bad
from gptmagic.local.plans import ChatPlan
from gptmagic.local.stream import ChatStream

__all__ = ["ChatChunks", "ControlTokens", "Segment", "VerbatimPrompt", "chat_answer",
           "completion_body", "control_messages", "merge_chat", "message_text", "over_completions",
           "segments", "substitute", "token_pieces", "with_placeholders"]


class ControlTokens:
    """The texts special parsing turns into control tokens (``{text: id}``)."""

    def __init__(self, ids: Mapping[str, int]) -> None:
        self.ids = dict(ids)
        # Longest first: where two overlap, the longer wins, as in llama.cpp.
        texts = sorted(self.ids, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, texts))) if texts else None

    def __repr__(self) -> str:
        return f"<ControlTokens {len(self.ids)}>"

    def find(self, text: str) -> str | None:
        """The first control-token text in ``text``, or ``None``."""
        match = self.pattern.search(text) if self.pattern is not None else None
        return match.group() if match else None


@dataclass(frozen=True)
class Segment:
    """A stretch of the rendered prompt, tokenized with special parsing or without."""

    text: str
    special: bool


@dataclass
class VerbatimPrompt:
    """A chat prompt's token ids with the messages' text kept as text.

    ``where`` is the first message holding control-token text and ``found``
    that text (named in errors); ``pieces`` are the tokens' bytes when asked
    for (as ``/v1/tokenize`` gives them).
    """

    ids: list[int]
    text: str
    where: int
    found: str
    pieces: list[str | list[int]] | None = None


def message_text(content: Any) -> str | None:
    """The text the template gets for ``content``; ``None`` when it is not all text.

    Text parts are joined with newlines, as llama.cpp does for a template
    that takes string content.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content):
        return "\n".join(p["text"] for p in content)
    return None


def control_messages(messages: Sequence[Any], controls: ControlTokens) -> list[int]:
    """Indices of the messages whose text holds control-token text.

    Content that is not all text (no content, a refusal part) is left to the
    engine as it is: it answers such messages as it would anyway.
    """
    found = []
    for i, message in enumerate(messages):
        text = message_text(message.get("content")) if isinstance(message, dict) else None
        if text and controls.find(text) is not None:
            found.append(i)
    return found


def with_placeholders(messages: Sequence[dict[str, Any]],
                      indices: Sequence[int]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Copies of ``messages`` with a placeholder as the content of each of ``indices``.

    Returns the messages and ``{placeholder: text}``. Placeholders are ASCII,
    hold no control-token text, and occur in no message (a salt is added
    until they do not).
    """
    everything = json.dumps(list(messages), ensure_ascii=False)
    salt = 0
    while True:
        keys = {i: f"[[gptmagic-text-{salt}-{i}]]" for i in indices}
        if not any(key in everything for key in keys.values()):
            break
        salt += 1
    marked = [dict(m) for m in messages]
    contents = {}
    for i, key in keys.items():
        contents[key] = message_text(messages[i].get("content")) or ""
        marked[i]["content"] = key
    return marked, contents


def substitute(rendered: str, contents: Mapping[str, str]) -> str:
    """``rendered`` with every placeholder replaced by its text."""
    for key, text in contents.items():
        rendered = rendered.replace(key, text)
    return rendered


def segments(rendered: str, contents: Mapping[str, str],
             controls: ControlTokens) -> list[Segment]:
    """Cut a prompt rendered with placeholders into the stretches to tokenize.

    Each placeholder's text, with the template text around it up to the
    nearest control token on either side, is one text segment (contents
    with no control token between them share one); everything else is the
    template's, tokenized with special parsing. Joined, the segments' texts
    are :func:`substitute` of ``rendered``. Raises ``ValueError`` when the
    template did not keep each placeholder exactly once.
    """
    holes = []
    for key in contents:
        at = rendered.find(key)
        if at < 0 or rendered.find(key, at + 1) >= 0:
            raise ValueError(f"the chat template did not keep the placeholder {key!r} once")
        holes.append((at, at + len(key)))
    holes.sort()
    marks = [] if controls.pattern is None else [
        (m.start(), m.end()) for m in controls.pattern.finditer(rendered)
        if not any(a < m.end() and m.start() < b for a, b in holes)]
    runs: list[list[int]] = []
    for a, b in holes:
        left = max((end for _, end in marks if end <= a), default=0)
        right = min((start for start, _ in marks if start >= b), default=len(rendered))
        if runs and left <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], right)
        else:
            runs.append([left, right])
    out, pos = [], 0
    for left, right in runs:
        if left > pos:
            out.append(Segment(rendered[pos:left], special=True))
        out.append(Segment(substitute(rendered[left:right], contents), special=False))
        pos = right
    if pos < len(rendered):
        out.append(Segment(rendered[pos:], special=True))
    return out


def token_pieces(tokens: Any) -> tuple[list[int], list[str | list[int]]]:
    """Ids and pieces from the engine's ``/tokenize`` with ``with_pieces``.

    Pieces are text, or byte values (part of a character). ``ValueError``
    when the engine's answer is not in that shape.
    """
    ids: list[int] = []
    pieces: list[str | list[int]] = []
    listed: list[Any] = tokens if isinstance(tokens, list) else [None]
    for token in listed:
        try:
            ids.append(int(token["id"]))
            piece = token["piece"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"not a token with its piece: {token!r:.60}") from None
        if not (isinstance(piece, str) or isinstance(piece, list) and all(
                isinstance(b, int) and 0 <= b < 256 for b in piece)):
            raise ValueError(f"not a token piece: {piece!r:.60}")
        pieces.append(piece)
    return ids, pieces


# --- the chat request as a completion of token ids, and back ------------------------------

#: Chat fields the completion request does without: the prompt is the ids, and these shaped it.
_CHAT_ONLY = frozenset({"messages", "tools", "tool_choice", "functions", "function_call",
                        "response_format", "logprobs", "top_logprobs", "prompt", "echo",
                        "suffix", "best_of", "add_generation_prompt", "chat_template_kwargs"})


def _cannot_carry(field: str, found: str, where: int | None) -> Exception:
    holder = f"messages[{where}]" if where is not None else "A message"
    return bad(f"{holder} holds {found!r}, the text of one of the local model's control "
               f"tokens. To keep it text, the local engine generates from token ids, which "
               f"cannot carry '{field}'. Remove '{field}', or that text.", field)


def _json_schema(response_format: Any, found: str, where: int | None) -> Any:
    """The engine's ``json_schema`` for ``response_format`` (as its chat endpoint reads it)."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return response_format.get("schema", {})
    if kind == "json_schema":
        wrapper = response_format.get("json_schema")
        return wrapper.get("schema", {}) if isinstance(wrapper, dict) else {}
    if kind == "text":
        return None
    raise _cannot_carry("response_format", found, where)


def completion_body(chat_body: Mapping[str, Any], ids: list[int], *, found: str = "",
                    where: int | None = None) -> dict[str, Any]:
    """The engine completion request that generates ``chat_body``'s reply from ``ids``.

    Sampling, ``n``, ``seed``, ``stop``, ``stream`` and unknown parameters are
    kept; ``logprobs`` + ``top_logprobs`` become the completion's
    ``logprobs``. ``found`` and ``where`` (the control text and its message)
    explain a refusal.
    """
    if chat_body.get("functions"):
        raise _cannot_carry("functions", found, where)
    body = {k: v for k, v in chat_body.items() if k not in _CHAT_ONLY}
    body["prompt"] = list(ids)
    if chat_body.get("logprobs"):
        body["logprobs"] = chat_body.get("top_logprobs") or 1
    if chat_body.get("response_format") is not None and "grammar" not in body \
            and "json_schema" not in body:
        schema = _json_schema(chat_body["response_format"], found, where)
        if schema is not None:
            body["json_schema"] = schema
    return body


#: Fields of a completion chunk that belong to the envelope, not to a choice.
_ENVELOPE = ("id", "created", "model", "system_fingerprint")


class ChatChunks:
    """The engine's completion stream chunks in, its chat stream chunks out.

    A choice's first chunk is preceded by the role chunk the chat endpoint
    sends (``{"role": "assistant", "content": null}``); ``text`` becomes
    ``delta.content``; usage and timings stay on the chunk (``ChatStream``
    folds usage into its one total).
    """

    def __init__(self) -> None:
        self.started: set[int] = set()

    def feed(self, chunk: Any) -> list[Any]:
        """Chat chunks for one completion chunk (errors and ``null`` pass as they are)."""
        if not isinstance(chunk, dict) or "error" in chunk:
            return [chunk]
        envelope = {k: chunk[k] for k in _ENVELOPE if k in chunk}
        envelope["object"] = "chat.completion.chunk"
        out: list[Any] = []
        choices = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = int(choice.get("index") or 0)
            if index not in self.started:
                self.started.add(index)
                role = {"index": index, "delta": {"role": "assistant", "content": None},
                        "finish_reason": None}
                out.append({**envelope, "choices": [role]})
            text = choice.get("text")
            part = {"index": index, "delta": {"content": text} if text else {},
                    "finish_reason": choice.get("finish_reason")}
            if "logprobs" in choice:
                part["logprobs"] = choice["logprobs"]
            choices.append(part)
        rest = {k: v for k, v in chunk.items() if k not in ("choices", "object", "text")}
        out.append({**rest, **envelope, "choices": choices})
        return out


def chat_answer(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's chat answer for its completion ``answer`` (what ``merge_chat`` takes)."""
    out = {k: v for k, v in answer.items() if k != "choices"}
    out["object"] = "chat.completion"
    choices = []
    for choice in answer.get("choices") or []:
        chat = {"index": choice.get("index", 0),
                "message": {"role": "assistant", "content": str(choice.get("text") or "")},
                "finish_reason": choice.get("finish_reason")}
        if choice.get("logprobs") is not None:
            chat["logprobs"] = choice["logprobs"]
        choices.append(chat)
    out["choices"] = choices
    return out


class _ChatOverCompletions:
    """A chat stream machine fed with completion chunks."""

    def __init__(self, stream: ChatStream) -> None:
        self.stream = stream
        self.chunks = ChatChunks()

    def feed(self, chunk: Any) -> list[dict[str, Any]]:
        return [out for chat in self.chunks.feed(chunk) for out in self.stream.feed(chat)]

    def finish(self) -> list[dict[str, Any]]:
        return self.stream.finish()


def over_completions(plan: ChatPlan, stream: ChatStream | None,
                     prompt: VerbatimPrompt) -> tuple[ChatPlan, _ChatOverCompletions | None]:
    """``plan`` sent to the completion endpoint as ``prompt``'s ids, and its stream machine.

    Raises the 400 of :func:`completion_body` for what cannot be carried.
    """
    bodies = [completion_body(b, prompt.ids, found=prompt.found, where=prompt.where)
              for b in plan.bodies]
    return replace(plan, bodies=bodies), (_ChatOverCompletions(stream) if stream else None)


def merge_chat(plan: ChatPlan, answers: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`~gptmagic.local.adapt.merge_chat` of the engine's completion ``answers``."""
    return adapt.merge_chat(plan, [chat_answer(a) for a in answers])
