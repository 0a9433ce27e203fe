"""Rebuild the engine's non-streamed answer from its stream.

The adapter asks the engine for every generation as a stream, also when its
own client wants one JSON answer, and collects the chunks here into what the
engine would have answered (same shape, so :func:`gptmagic.local.adapt.merge_chat`
and ``merge_completions`` take it unchanged). Why: llama.cpp notices that the
client of a *non-streamed* request has gone only when no other result
arrives for a whole second, which never happens while anything else is
generating; such a request then holds its slot until it has generated every
token. A stream's next write fails at once when its client has gone.

Pure, no I/O: feed each parsed ``data:`` payload to :meth:`Collector.feed`,
then take :meth:`Collector.answer` at ``[DONE]``.
"""

from __future__ import annotations

from typing import Any

from gptmagic.core.response import fold_tool_call

__all__ = ["Collector"]

_ENVELOPE = ("id", "created", "model", "system_fingerprint")


class Collector:
    """Chunks of one engine stream in, the engine's JSON answer out."""

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.envelope: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.logprobs: dict[int, list[Any]] = {}
        self.tool_calls: dict[int, dict[int, dict[str, Any]]] = {}  # choice -> call index -> call
        self.usages: list[dict[str, Any]] = []
        self.timings: Any = None

    def feed(self, chunk: Any) -> None:
        """Take one parsed chunk (``null``, a chunk, or a usage-only chunk)."""
        if not isinstance(chunk, dict):
            return  # the engine opens multi-prompt streams with `data: null`
        for key in _ENVELOPE:
            if key in chunk and key not in self.envelope:
                self.envelope[key] = chunk[key]
        if isinstance(chunk.get("usage"), dict):
            self.usages.append(chunk["usage"])
        if "timings" in chunk:
            self.timings = chunk["timings"]
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict):
                self._choice(choice)

    def _choice(self, part: dict[str, Any]) -> None:
        index = int(part.get("index") or 0)
        if index not in self.choices:
            self.choices[index] = ({"index": index, "message": {"role": "assistant",
                                                                 "content": None}}
                                   if self.chat else {"index": index, "text": ""})
            self.choices[index]["finish_reason"] = None
        choice = self.choices[index]
        if part.get("finish_reason") is not None:
            choice["finish_reason"] = part["finish_reason"]
        logprobs = part.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
            self.logprobs.setdefault(index, []).extend(logprobs["content"])
        if not self.chat:
            choice["text"] += str(part.get("text") or "")
            return
        delta = part.get("delta")
        if not isinstance(delta, dict):
            return
        message = choice["message"]
        for key in ("content", "reasoning_content", "refusal"):
            if isinstance(delta.get(key), str):
                message[key] = (message.get(key) or "") + delta[key]
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                fold_tool_call(self.tool_calls.setdefault(index, {}), call)

    def answer(self) -> dict[str, Any]:
        """The engine's non-streamed answer: choices in index order, usage, timings."""
        out: dict[str, Any] = dict(self.envelope)
        out["object"] = "chat.completion" if self.chat else "text_completion"
        choices = []
        for index in sorted(self.choices):
            choice = dict(self.choices[index])
            if index in self.tool_calls:
                calls = self.tool_calls[index]
                choice["message"] = {**choice["message"],
                                     "tool_calls": [calls[k] for k in sorted(calls)]}
            message = choice.get("message")
            if isinstance(message, dict) and message.get("content") is None \
                    and not message.get("tool_calls"):
                choice["message"] = {**message, "content": ""}  # an empty reply, as the engine says
            if index in self.logprobs:
                choice["logprobs"] = {"content": self.logprobs[index]}
            choices.append(choice)
        out["choices"] = choices
        if self.usages:
            out["usage"] = _total(self.usages)
        if self.timings is not None:
            out["timings"] = self.timings
        return out


def _total(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """One usage from the engine's: chat sends one; legacy one per finished choice."""
    if len(usages) == 1:
        return usages[0]
    prompt = int(usages[0].get("prompt_tokens") or 0)
    completion = sum(int(u.get("completion_tokens") or 0) for u in usages)
    cached = int((usages[0].get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {"completion_tokens": completion, "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}
