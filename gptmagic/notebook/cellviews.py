"""Widgets the magics show under a cell's result: heatmaps, token counters, token views.

A cell magic's return value is drawn by IPython only after the magic returns,
so a widget displayed from inside the magic would land *above* the reply. The
widgets are therefore shown from a one-shot ``post_run_cell`` callback, which
runs after the result is drawn and still writes into the same cell's output.
A magic called outside a cell (``run_cell_magic`` from a script) never leaks
its widgets into a later cell: a cell that *starts* before the callback ran
cancels it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from IPython.display import display

from gptmagic.catalog.tokens import CHAT_FORMAT_ESTIMATED

__all__ = ["counter_for_request", "heatmap_for", "heatmaps_for", "show_after_cell"]


def show_after_cell(shell: Any, objects: Sequence[Any]) -> None:
    """Display ``objects`` under the output of the cell now running."""
    if not objects:
        return

    def done() -> None:
        shell.events.unregister("post_run_cell", after)
        shell.events.unregister("pre_run_cell", cancel)

    def after(result: Any) -> None:
        done()
        for obj in objects:
            display(obj)

    def cancel(info: Any) -> None:
        done()

    shell.events.register("post_run_cell", after)
    shell.events.register("pre_run_cell", cancel)


def heatmap_for(result: Any) -> Any | None:
    """A logprob heatmap of ``result`` when it carries logprobs, else None."""
    choices = getattr(result, "choices", None) or []
    if not any(c.logprobs or c.prompt_logprobs for c in choices):
        return None
    from gptmagic.notebook.widgets import logprob_heatmap

    return logprob_heatmap(result)


def heatmaps_for(reply: Any) -> tuple[dict[str, Any], list[Any]]:
    """Heatmaps of a reply's results that carry logprobs, by model, and what to show.

    With several models (``--model a,b``) each heatmap is shown under a line
    naming its model.
    """
    results = getattr(reply, "results", None) or {}
    if not results:
        single = getattr(reply, "result", None)
        if single is None:
            return {}, []
        hm = heatmap_for(single)
        return ({single.model or "": hm} if hm is not None else {}), ([hm] if hm else [])
    from IPython.display import Markdown

    from gptmagic.views.reply import escape_markdown

    maps: dict[str, Any] = {}
    shown: list[Any] = []
    for model, result in results.items():
        hm = heatmap_for(result) if not isinstance(result, str) else None
        if hm is not None:
            maps[model] = hm
            shown += [Markdown(f"**{escape_markdown(model)}**"), hm]
    return maps, shown


def counter_for_request(request: Mapping[str, Any], *,
                        counter: Callable[..., Any] | None = None,
                        note: str | None = None,
                        tools: Sequence[Mapping[str, Any]] | None = None) -> Any:
    """A token counter of what a dry-run request would send: chat's messages, the
    Responses API's instructions and input items (counted as messages), or a prompt,
    with ``tools`` (the chat-shaped definitions sent) counted in.
    ``note`` (the dry run's ``counter_note``) marks its count an estimate, saying why."""
    from gptmagic.notebook.widgets import token_counter

    make = counter or token_counter
    content = request.get("messages")
    if content is None and "input" in request:
        items = request["input"]
        items = [{"role": "user", "content": items}] if isinstance(items, str) else list(items)
        head = ([{"role": "system", "content": request["instructions"]}]
                if request.get("instructions") else [])
        content = head + items
    if content is None:
        content = request.get("prompt", "")
    made = make(content, model=str(request.get("model") or ""),
                max_tokens=request.get("max_tokens") or request.get("max_output_tokens"),
                **({"tools": tools} if tools else {}))
    if note:
        # The request's own reason (the Responses API's unpublished overhead) supersedes
        # the counter's "chat overhead ... estimated here": one reason, said once.
        own = made.data.get("note")
        own = None if own == CHAT_FORMAT_ESTIMATED else own
        made.data = {**made.data, "exact": False,
                     "note": "; ".join(x for x in (own, note) if x)}
    return made
