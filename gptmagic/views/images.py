"""Images of a prompt as the dry run and ``%chat history`` show them (pure renderers).

A local image is shown as a small thumbnail (:data:`THUMB` px, made with Pillow,
a PNG data URL of a few KB) with its alt text, where it came from, its size and
detail; an http(s) URL is never loaded (not by gptmagic, not by the page): it is
shown as its text. Requests shown never hold the image's base64
(:func:`gptmagic.core.images.elide`).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gptmagic.core.images import ImageRef, decode_data_url, elide, image_parts

__all__ = ["ImageView", "THUMB", "images_blocks", "thumbnail", "views_of"]

#: The longest side of a thumbnail, in pixels.
THUMB = 96


@dataclass(frozen=True, slots=True)
class ImageView:
    """One image as shown: its label (alt, where it came from) and thumbnail."""

    alt: str
    #: ``cat.png (line 3)``, or the URL; ``image in messages[2]`` when not from a cell.
    source: str
    detail: str | None
    #: A PNG data URL of at most :data:`THUMB` px, or None (a URL, or unreadable).
    thumb: str | None
    size: int | None = None
    dimensions: tuple[int, int] | None = None

    def caption(self) -> str:
        """``a cat · cat.png (line 3) · 640×480 · 34 KB · detail low``."""
        parts = [self.alt or "(no alt text)", self.source]
        if self.dimensions:
            parts.append(f"{self.dimensions[0]}×{self.dimensions[1]}")
        if self.size is not None:
            parts.append(f"{max(self.size // 1000, 1):,} KB")
        elif self.thumb is None:
            parts.append("by URL, not fetched: size unknown")
        parts.append(f"detail {self.detail or 'auto'}")
        return " · ".join(parts)


def thumbnail(url: str, size: int = THUMB) -> str | None:
    """A PNG data URL of the image in data URL ``url``, at most ``size`` px a side;
    None for an http(s) URL (never fetched) or what Pillow cannot read."""
    from PIL import Image, UnidentifiedImageError

    decoded = decode_data_url(url)
    if decoded is None:
        return None
    try:
        with Image.open(io.BytesIO(decoded[1])) as img:
            img.thumbnail((size, size))
            small = img.convert("RGBA" if "A" in img.getbands() or img.mode == "P" else "RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    out = io.BytesIO()
    small.save(out, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def views_of(messages: Sequence[Mapping[str, object]],
             refs: Sequence[ImageRef] = ()) -> list[ImageView]:
    """The images of ``messages`` (chat's or the Responses API's shape), in order,
    labelled by the cell reference that made each (matched by the URL sent)."""
    by_url = {r.url: r for r in refs if r.url}
    out = []
    for i, j, url, detail in image_parts(messages):
        ref = by_url.get(url)
        if ref is not None:
            source = f"{elide(ref.src)} (line {ref.line})"
            out.append(ImageView(ref.alt, source, detail, thumbnail(url), ref.size,
                                 ref.dimensions))
        else:
            decoded = decode_data_url(url)
            source = (f"messages[{i}].content[{j}]" if decoded is not None
                      else str(elide(url)))
            out.append(ImageView("", source, detail, thumbnail(url),
                                 len(decoded[1]) if decoded else None))
    return out


def _figure(view: ImageView) -> str:
    caption = html.escape(view.caption())
    if view.thumb is None:
        box = (f'<div style="width:{THUMB}px;height:{THUMB // 2}px;border:1px dashed #999;'
               'display:flex;align-items:center;justify-content:center;font-size:11px">'
               "not loaded</div>")
    else:
        box = (f'<img src="{view.thumb}" alt="{html.escape(view.alt, quote=True)}" '
               f'style="max-width:{THUMB}px;max-height:{THUMB}px">')
    return (f'<figure class="gptmagic-image" style="display:inline-block;margin:4px 8px 4px 0;'
            f'vertical-align:top;max-width:{THUMB * 2}px">{box}'
            f"<figcaption><small>{caption}</small></figcaption></figure>")


def images_blocks(views: Sequence[ImageView]) -> tuple[str, str, str]:
    """``(plain, markdown, html)`` of a row of image views (thumbnails in the last two)."""
    plain = "\n".join(f"[image: {v.caption()}]" for v in views)
    page = f'<div class="gptmagic-images">{"".join(_figure(v) for v in views)}</div>'
    return plain, page, page
