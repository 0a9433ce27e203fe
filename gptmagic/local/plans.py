"""Plans: how one OpenAI request is sent to the engine and how its answers are put back.

:mod:`.adapt` makes a plan from a request; :mod:`.stream` and the merge
functions of :mod:`.adapt` shape the engine's answers by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gptmagic.catalog.embedded import MODEL_ID
from gptmagic.local.toolcalls import ToolPlan

__all__ = ["ChatPlan", "CompletionPlan"]


@dataclass
class ChatPlan:
    """How a chat request is sent: ``bodies`` go to the engine, the rest shapes the answer."""

    bodies: list[dict[str, Any]]
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    top_logprobs: int | None = None  # None: no logprobs asked for
    tools: ToolPlan | None = None  # None: a plain reply (no tools, or tool_choice "none")
    model: str = MODEL_ID  # the id of the model that answers, in every response


@dataclass
class CompletionPlan:
    """How a legacy completion request is sent and how its answer is rebuilt.

    ``groups[k]`` is ``(prompt index, candidate index)`` of ``bodies[k]`` when
    not streaming. ``prompt_texts[i]`` is ``None`` for a token-id prompt until
    the server fills it in (needed for ``echo`` and ``text_offset``).
    """

    bodies: list[dict[str, Any]]
    prompts: list[str | list[int]]
    prompt_texts: list[str | None]
    groups: list[tuple[int, int]] = field(default_factory=list)
    n: int = 1
    best_of: int = 1
    echo: bool = False
    logprobs: int | None = None
    stream: bool = False
    include_usage: bool = False
    model: str = MODEL_ID  # the id of the model that answers, in every response

    @property
    def empty_prompts(self) -> bool:
        """True when some prompt is empty (see :meth:`start_documents`)."""
        return "" in self.prompts

    def start_documents(self, tokens: list[int]) -> None:
        """Send ``tokens`` (the document-start token) for every empty prompt.

        The prompt's text stays ``""`` for ``echo`` and ``text_offset``.
        """
        for body in self.bodies:
            prompt = body.get("prompt")
            if prompt == "":
                body["prompt"] = list(tokens)
            elif isinstance(prompt, list):
                body["prompt"] = [list(tokens) if p == "" else p for p in prompt]

    @property
    def needs_prompt_texts(self) -> bool:
        """True when token-id prompts must be detokenised before answering."""
        wanted = self.echo or self.logprobs is not None
        return wanted and any(t is None for t in self.prompt_texts)
