"""Build :class:`~gptmagic.types.Result` objects from wire JSON (pure).

:func:`parse_response` reads a whole (non-streamed) body; :class:`Accumulator`
folds stream chunks into the same result type, so callers never care whether
a reply was streamed.
"""

from __future__ import annotations

from typing import Any

from gptmagic.core.logprobs import from_wire
from gptmagic.core.types import Choice, Result, Usage
from gptmagic.errors import MalformedResponseError

__all__ = ["Accumulator", "fold_tool_call", "parse_response"]

def _require_dict(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise MalformedResponseError(f"{what}: expected a JSON object, got {type(body).__name__}")
    return body


def _finish(v: Any) -> str | None:
    return None if v is None else str(v)


def parse_response(kind: str, body: Any, *, prompt_len: int | None = None) -> Result:
    """A whole chat (``kind="chat"``) or completion (``"completion"``) response."""
    body = _require_dict(body, f"{kind} response")
    choices_raw = body.get("choices")
    if not isinstance(choices_raw, list):
        raise MalformedResponseError(f"{kind} response has no 'choices' list")
    if not choices_raw:
        raise MalformedResponseError(f"{kind} response has an empty 'choices' list")
    choices: list[Choice] = []
    for pos, c in enumerate(choices_raw):
        c = _require_dict(c, f"{kind} response choices[{pos}]")
        index = c.get("index", pos)
        if not isinstance(index, int):
            raise MalformedResponseError(f"choices[{pos}].index is not an integer")
        logprobs, prompt_lp = from_wire(c.get("logprobs"), prompt_len=prompt_len)
        if kind == "chat":
            msg = c.get("message")
            if not isinstance(msg, dict):
                raise MalformedResponseError(f"chat response choices[{pos}] has no 'message'")
            content = msg.get("content")
            if content is not None and not isinstance(content, str):
                raise MalformedResponseError(
                    f"choices[{pos}].message.content is {type(content).__name__}, not a string"
                )
            choices.append(
                Choice(
                    index=index,
                    text=content or "",
                    finish_reason=_finish(c.get("finish_reason")),
                    role=str(msg.get("role") or "assistant"),
                    refusal=msg.get("refusal"),
                    tool_calls=msg.get("tool_calls") or None,
                    logprobs=logprobs,
                )
            )
        else:
            text = c.get("text")
            if not isinstance(text, str):
                raise MalformedResponseError(f"completion response choices[{pos}] has no 'text'")
            choices.append(
                Choice(
                    index=index,
                    text=text,
                    finish_reason=_finish(c.get("finish_reason")),
                    logprobs=logprobs,
                    prompt_logprobs=prompt_lp,
                )
            )
    choices.sort(key=lambda ch: ch.index)
    return Result(
        kind=kind,
        model=str(body.get("model") or ""),
        choices=choices,
        usage=Usage.from_dict(body.get("usage")),
        id=body.get("id"),
        created=body.get("created"),
        system_fingerprint=body.get("system_fingerprint"),
        raw=body,
    )


class _ChoiceState:
    __slots__ = ("text", "role", "refusal", "finish", "tools", "lp_chat", "lp_legacy")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.role: str | None = None
        self.refusal: list[str] = []
        self.finish: str | None = None
        self.tools: dict[int, dict[str, Any]] = {}
        self.lp_chat: list[Any] | None = None
        self.lp_legacy: dict[str, list[Any]] | None = None


def fold_tool_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    """Fold one streamed ``tool_calls`` delta into ``calls`` (by the delta's ``index``).

    Name and arguments arrive in pieces and are joined; id and type are kept.
    """
    i = delta.get("index", len(calls))
    cur = calls.setdefault(
        i, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
    )
    if delta.get("id"):
        cur["id"] = delta["id"]
    if delta.get("type"):
        cur["type"] = delta["type"]
    fn = delta.get("function") or {}
    if fn.get("name"):
        cur["function"]["name"] += fn["name"]
    if fn.get("arguments"):
        cur["function"]["arguments"] += fn["arguments"]


class Accumulator:
    """Fold streamed chunks into a :class:`Result`.

    ``add(chunk)`` returns the list of ``(choice_index, text)`` deltas the
    chunk carried, for live display. ``result()`` may be called at any time
    (e.g. for the partial text of a dropped stream).
    """

    def __init__(self, kind: str, *, prompt_len: int | None = None) -> None:
        self.kind = kind
        self.prompt_len = prompt_len
        self._choices: dict[int, _ChoiceState] = {}
        self._usage: dict[str, Any] | None = None
        self._meta: dict[str, Any] = {}
        self.chunks = 0

    def add(self, chunk: Any) -> list[tuple[int, str]]:
        chunk = _require_dict(chunk, "stream chunk")
        self.chunks += 1
        for key in ("id", "model", "created", "system_fingerprint"):
            if chunk.get(key) is not None and key not in self._meta:
                self._meta[key] = chunk[key]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        if choices is None:
            choices = []
        if not isinstance(choices, list):
            raise MalformedResponseError("stream chunk 'choices' is not a list")
        deltas: list[tuple[int, str]] = []
        for pos, c in enumerate(choices):
            c = _require_dict(c, f"stream chunk choices[{pos}]")
            idx = c.get("index", pos)
            if not isinstance(idx, int):
                raise MalformedResponseError("stream chunk choice index is not an integer")
            st = self._choices.setdefault(idx, _ChoiceState())
            piece = self._fold(st, c)
            if c.get("finish_reason") is not None:
                st.finish = str(c["finish_reason"])
            if piece:
                deltas.append((idx, piece))
        return deltas

    def _fold(self, st: _ChoiceState, c: dict[str, Any]) -> str:
        piece = ""
        if self.kind == "chat":
            delta = c.get("delta") or {}
            if not isinstance(delta, dict):
                raise MalformedResponseError("stream chunk 'delta' is not an object")
            if delta.get("role"):
                st.role = str(delta["role"])
            content = delta.get("content")
            if isinstance(content, str):
                piece = content
            if isinstance(delta.get("refusal"), str):
                st.refusal.append(delta["refusal"])
            for tc in delta.get("tool_calls") or []:
                if isinstance(tc, dict):
                    fold_tool_call(st.tools, tc)
        else:
            text = c.get("text")
            if isinstance(text, str):
                piece = text
        if piece:
            st.text.append(piece)
        lp = c.get("logprobs")
        if isinstance(lp, dict):
            if "content" in lp or "refusal" in lp:
                st.lp_chat = (st.lp_chat or []) + list(lp.get("content") or [])
                st.lp_chat += list(lp.get("refusal") or [])
            elif "tokens" in lp:
                acc = st.lp_legacy or {
                    "tokens": [],
                    "token_logprobs": [],
                    "top_logprobs": [],
                    "text_offset": [],
                }
                for k in acc:
                    acc[k].extend(lp.get(k) or [])
                st.lp_legacy = acc
        return piece

    @property
    def finished(self) -> bool:
        """True once every choice seen has a finish_reason."""
        return bool(self._choices) and all(s.finish for s in self._choices.values())

    def result(self) -> Result:
        choices = []
        for idx in sorted(self._choices):
            st = self._choices[idx]
            wire: Any = None
            if st.lp_chat is not None:
                wire = {"content": st.lp_chat}
            elif st.lp_legacy is not None:
                wire = st.lp_legacy
            lps, prompt_lp = from_wire(wire, prompt_len=self.prompt_len)
            choices.append(
                Choice(
                    index=idx,
                    text="".join(st.text),
                    finish_reason=st.finish,
                    role=(st.role or "assistant") if self.kind == "chat" else None,
                    refusal="".join(st.refusal) or None,
                    tool_calls=[st.tools[k] for k in sorted(st.tools)] or None,
                    logprobs=lps,
                    prompt_logprobs=prompt_lp,
                )
            )
        return Result(
            kind=self.kind,
            model=str(self._meta.get("model") or ""),
            choices=choices,
            usage=Usage.from_dict(self._usage),
            id=self._meta.get("id"),
            created=self._meta.get("created"),
            system_fingerprint=self._meta.get("system_fingerprint"),
            raw=None,
        )
