"""Pure state machines that rewrite the engine's stream chunks into OpenAI's.

Feed each parsed ``data:`` payload to :meth:`feed`; it returns the chunks to
send (zero, one or two). At ``data: [DONE]`` call :meth:`finish` for the
closing chunks, then send ``[DONE]``. No I/O here; see
:mod:`gptmagic.local.relay` for the SSE plumbing.

Engine habits handled (measured with xllamacpp 2026.10):

* usage arrives per *choice* (chat: one ``choices: []`` chunk per choice when
  ``include_usage``; legacy: on every choice's finishing chunk, asked for or
  not); OpenAI sends one total, last, only with ``include_usage``;
* a legacy stream over several prompts starts with ``data: null``;
* legacy chunks carry chat-shaped logprobs and ``chatcmpl-`` ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gptmagic.local.logprobs import chat_logprobs, legacy_logprobs
from gptmagic.local.toolreply import ReplyDecoder

if TYPE_CHECKING:
    from gptmagic.local.plans import ChatPlan, CompletionPlan

__all__ = ["ChatStream", "CompletionStream", "legacy_id", "sum_usage"]

_ENVELOPE = ("id", "object", "created", "model", "system_fingerprint")


def legacy_id(engine_id: Any) -> str:
    """``cmpl-...`` from the engine's ``chatcmpl-...`` id."""
    text = str(engine_id or "")
    return "cmpl-" + text.removeprefix("chatcmpl-").removeprefix("cmpl-")


def sum_usage(usages: list[dict[str, Any]], prompts: int = 1) -> dict[str, Any]:
    """Total usage from per-choice usages: completions summed, each prompt counted once.

    Every prompt appears in ``len(usages) / prompts`` of the entries (once per
    choice or candidate), so prompt figures are divided by that.
    """
    per_prompt = max(1, len(usages) // max(1, prompts))
    completion = sum(int(u.get("completion_tokens") or 0) for u in usages)
    prompt = sum(int(u.get("prompt_tokens") or 0) for u in usages) // per_prompt
    cached = sum(int((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
                 for u in usages) // per_prompt
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


class _Stream:
    """Shared bookkeeping: envelope of the latest chunk and per-choice usages."""

    object_name = ""

    def __init__(self, include_usage: bool, prompts: int, model: str) -> None:
        self.include_usage = include_usage
        self.model = model
        self.prompts = prompts
        self.usages: list[dict[str, Any]] = []
        self.envelope: dict[str, Any] = {}

    def _take(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """Copy ``chunk`` with our model name, remembering its envelope and usage."""
        chunk = dict(chunk)
        usage = chunk.pop("usage", None)
        if isinstance(usage, dict):
            self.usages.append(usage)
        chunk["model"] = self.model
        self.envelope.update({k: chunk[k] for k in _ENVELOPE if k in chunk})
        return chunk

    def finish(self) -> list[dict[str, Any]]:
        """Closing chunks: one usage total when ``include_usage`` was asked for."""
        if not self.include_usage or not self.usages:
            return []
        chunk = {**self.envelope, "object": self.object_name, "choices": [],
                 "usage": sum_usage(self.usages, self.prompts)}
        return [chunk]


class ChatStream(_Stream):
    """Rewrites ``chat.completion.chunk`` events."""

    object_name = "chat.completion.chunk"

    def __init__(self, plan: ChatPlan) -> None:
        super().__init__(plan.include_usage, prompts=1, model=plan.model)
        self.top_logprobs = plan.top_logprobs
        self.tools = plan.tools
        self.decoders: dict[int, ReplyDecoder] = {}  # choice index -> its tool-grammar reply

    def feed(self, chunk: Any) -> list[dict[str, Any]]:
        """Chunks to send for one engine chunk."""
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            return [chunk]
        chunk = self._take(chunk)
        choices = chunk.get("choices")
        if not choices:
            return []  # a per-choice usage chunk: folded into the total sent at finish()
        out = []
        for choice in choices:
            choice = dict(choice)
            if self.top_logprobs is None:
                choice.pop("logprobs", None)
            elif choice.get("logprobs") is not None:
                choice["logprobs"] = chat_logprobs(choice["logprobs"], self.top_logprobs)
            if self.tools is not None and not self._decode(choice):
                continue
            out.append(choice)
        if not out:
            return []
        chunk["choices"] = out
        return [chunk]

    def _decode(self, choice: dict[str, Any]) -> bool:
        """Rewrite a choice's JSON text as content or tool-call deltas; False if it shows nothing.

        See :mod:`gptmagic.local.toolreply`. The opening role chunk passes as it is.
        """
        assert self.tools is not None
        index = int(choice.get("index") or 0)
        decoder = self.decoders.setdefault(index, ReplyDecoder(structured=self.tools.structured))
        delta = dict(choice.get("delta") or {})
        text = delta.pop("content", None)
        if "role" in delta:
            delta["content"] = None
        if isinstance(text, str):
            delta.update(decoder.feed(text))
        finish = choice.get("finish_reason")
        if finish is not None:
            delta.update(decoder.finish())
            choice["finish_reason"] = decoder.finish_reason(finish)
        choice["delta"] = delta
        return bool(delta) or finish is not None


class CompletionStream(_Stream):
    """Rewrites legacy ``text_completion`` events (logprobs, ids, echo, usage)."""

    object_name = "text_completion"

    def __init__(self, plan: CompletionPlan) -> None:
        super().__init__(plan.include_usage, prompts=len(plan.prompts), model=plan.model)
        self.n = plan.n
        self.logprobs = plan.logprobs
        self.echo = plan.echo
        self.prompt_texts = plan.prompt_texts
        self.offsets: dict[int, int] = {}  # choice index -> text_offset of its next token
        self.pending: dict[int, bytes] = {}  # choice index -> bytes of an unfinished character
        self.started: set[int] = set()

    def _prompt_text(self, index: int) -> str:
        prompt_index = min(index // max(1, self.n), len(self.prompt_texts) - 1)
        return self.prompt_texts[prompt_index] or ""

    def feed(self, chunk: Any) -> list[dict[str, Any]]:
        """Chunks to send for one engine chunk."""
        if not isinstance(chunk, dict):
            return []  # the engine opens multi-prompt streams with `data: null`
        if "error" in chunk:
            return [chunk]
        chunk = self._take(chunk)
        chunk["id"] = legacy_id(chunk.get("id"))
        self.envelope["id"] = chunk["id"]
        out: list[dict[str, Any]] = []
        choices = []
        for choice in chunk.get("choices") or []:
            choice = dict(choice)
            index = int(choice.get("index") or 0)
            if index not in self.started:
                self.started.add(index)
                self.offsets[index] = len(self._prompt_text(index))
                if self.echo:
                    echo = {"text": self._prompt_text(index), "index": index, "logprobs": None,
                            "finish_reason": None}
                    out.append({**self.envelope, "choices": [echo]})
            if self.logprobs is None or choice.get("logprobs") is None:
                choice["logprobs"] = None
            else:
                choice["logprobs"], self.offsets[index], self.pending[index] = legacy_logprobs(
                    choice["logprobs"], self.logprobs, self.offsets[index],
                    self.pending.get(index, b""))
            choices.append(choice)
        if not choices:
            return out
        chunk["choices"] = choices
        out.append(chunk)
        return out
