"""A chat cell's images: read from the notebook's working directory, refused for the
embedded model with their cell lines, and labelled in ``%chat history``.

The grammar (:func:`gptmagic.core.messages.read_cell`) finds ``![alt](src)``;
:func:`gptmagic.client.images.load_images` reads and checks the files. Both run
on the kernel's thread before anything is sent, so a missing file or a text-only
model is a one-paragraph error naming the line, never a failed request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from gptmagic.client.images import load_images
from gptmagic.core.defaults import DEFAULT_OPENAI_MODEL
from gptmagic.core.images import ImageRef, image_parts, text_only_refusal
from gptmagic.core.messages import Cell, read_cell
from gptmagic.core.threads import Thread
from gptmagic.errors import RequestError
from gptmagic.views.images import ImageView, views_of

__all__ = ["VISION_MODEL", "history_views", "read_images", "refuse_text_only", "thread_images"]

#: The vision model a refusal suggests: the default hosted model (it reads images, and
#: it is chosen among models with no shutdown date).
VISION_MODEL = DEFAULT_OPENAI_MODEL


def read_images(text: str, namespace: Mapping[str, Any] | None, *,
                detail: str | None = None, base: str | None = None) -> Cell:
    """The cell's messages with its images read (relative paths from ``base``, by
    default the working directory: the notebook's folder in Jupyter); ``detail`` is
    ``--detail``, the default for images that give none."""
    return load_images(read_cell(text, namespace), base=base or os.getcwd(), detail=detail)


def refuse_text_only(kinds: Sequence[str], messages: Sequence[Mapping[str, Any]],
                     refs: Sequence[ImageRef], thread: Thread | None) -> None:
    """Refuse images sent to the embedded model (a provider of kind ``local`` in
    ``kinds``): the cell's by their lines, else the thread's earlier turns'."""
    if "local" not in kinds:
        return
    instead = f"--model {VISION_MODEL}"
    refusal = text_only_refusal(messages, refs, instead=instead, param="--model")
    if refusal is None:
        return
    if refs:
        raise refusal
    where = f"thread {thread.name!r}" if thread is not None else "the history"
    raise RequestError(f"{refusal} ({where} holds them from an earlier turn: send this cell "
                       "with --no-history or another --thread, or %chat reset)",
                       param="--model")


def thread_images(thread: Thread | None) -> tuple[ImageRef, ...]:
    """The images of a thread's turns, as their cells named them."""
    return tuple(r for t in (thread.turns if thread else []) for r in t.images)


def history_views(message: Mapping[str, Any], refs: Sequence[ImageRef]) -> tuple[ImageView, ...]:
    """One history message's images as labelled thumbnails (none without images)."""
    if not any(True for _ in image_parts([message])):
        return ()
    return tuple(views_of([message], refs))
