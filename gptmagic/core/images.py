"""Images in a prompt (pure): Markdown image references in a cell, image parts in
requests, and keeping base64 out of everything shown.

A user message of a cell may hold ``![alt](path-or-url)`` (user reference:
``docs/cell-grammar.md``, section Images)::

    user: What is in this picture? ![a cat](cat.png){detail=low}

- **Image**: ``![alt](src)`` on one line; ``src`` is a path or an http(s) URL,
  ``<...>`` around it when it holds spaces (``![x](<my cat.png>)``). Right after it,
  ``{detail=low}`` (``low``, ``high`` or ``auto``) sets OpenAI's ``detail``. Only user
  messages hold images (OpenAI's rule); an image in another role is an error.
- **Escape**: a backslash right before ``![`` of an image-shaped text sends it as
  text, without the backslash (``\\![a](b)`` sends ``![a](b)``); of several
  backslashes one is removed, so ``render_cell`` can write any text back.
- **Placeholders** (with a namespace) are filled in ``alt`` and ``src``
  (``![chart]({path})``); an inserted value is never read as an image.

Parsing only finds references (:class:`ImageRef`): reading a file, checking its
format and size and making its data URL is I/O, done above the floor
(:mod:`gptmagic.client.images`). A message holding an image has a list of
content parts, text around ``image_url`` parts in order; its ``url`` is the
``src`` as written until the file is read.

Data URLs are megabytes of base64: :func:`elide` replaces each by
``data:image/png;base64,… (34 KB)`` in whatever is shown, logged or stored.

Every error about a cell's image, here or where its file is read, starts the same
way: ``cell line 2: image `![a cat](cat.png)` ...`` (:meth:`ImageRef.where`,
:func:`quoted`), the refusal of the embedded model included.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gptmagic.core.cellsyntax import CellSyntaxError, interpolate
from gptmagic.core.defaults import DEFAULT_OPENAI_MODEL
from gptmagic.core.text import preview
from gptmagic.errors import RequestError

__all__ = ["DETAILS", "EMBEDDED_NAME", "ImageRef", "decode_data_url", "elide",
           "escape_images", "image_markdown", "image_part", "image_parts", "part_text",
           "quoted", "scan", "text_only_refusal"]

#: The ``detail`` values an image part takes (OpenAI's spec: ``image_url.detail``).
DETAILS = ("low", "high", "auto")

#: How errors name the embedded model when it is asked to read an image.
EMBEDDED_NAME = "SmolLM2"

# An image-shaped text, with the backslashes right before it (an escape).
_IMAGE = re.compile(r"(?P<esc>\\*)!\[(?P<alt>[^\]\n]*)\]\((?P<src><[^>\n]*>|[^)\n]*)\)")
# ``{key=value}`` right after an image: its attributes (only ``detail``).
_ATTR = re.compile(r"\{[ \t]*(?P<key>[A-Za-z_]\w*)[ \t]*=[ \t]*(?P<value>[^}\n]*?)[ \t]*\}")
# A data URL's base64 body long enough to be worth eliding.
# Parameters (``;name=x``) may come before ``;base64``; the body may be broken over lines.
_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[\w.+-]+=[^;,\s]*)*;base64,"
                       r"(?P<body>[A-Za-z0-9+/=]{64,}(?:\r?\n[A-Za-z0-9+/=]{20,})*)")
_DETAIL_HINT = "{detail=low}, {detail=high} or {detail=auto} right after the image"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One ``![alt](src)`` of a cell: where it is and what it names.

    ``message`` and ``part`` place its image part in the parsed messages
    (``messages[message]["content"][part]``); ``url`` is what is sent once the
    file is read (a data URL, or the http(s) URL as written), None before.
    """

    src: str
    alt: str
    detail: str | None
    line: int
    #: The Markdown as typed (placeholders unfilled), for messages.
    written: str
    message: int = 0
    part: int = 0
    url: str | None = None
    #: Bytes of the file (None for a URL, which gptmagic never fetches).
    size: int | None = None
    #: ``(width, height)`` in pixels, when the file was read.
    dimensions: tuple[int, int] | None = None

    def __repr__(self) -> str:  # the url may be megabytes of base64
        return (f"ImageRef(line={self.line}, written={elide(self.written)!r}, "
                f"detail={self.detail!r}, size={self.size!r})")

    @property
    def where(self) -> str:
        """``cell line 3: image `![cat](cat.png)```: how every error about it begins."""
        return f"cell line {self.line}: image {quoted(self.written)}"


def quoted(written: str, limit: int = 80) -> str:
    """An image's Markdown as errors quote it: in backticks, a data URL typed in the
    cell elided, cut to about ``limit`` characters."""
    return f"`{preview(elide(written), limit, flatten=False)}`"


def _ref(m: re.Match[str], text: str, line: int, namespace: Mapping[str, Any] | None,
         where: str) -> tuple[ImageRef, int]:
    """The image ``m`` found (its escape run empty) and where its text ends."""
    raw = m["src"].strip()
    written = m.group()
    if raw.startswith("<") and raw.endswith(">"):
        src = raw[1:-1].strip()
    elif any(c.isspace() for c in raw):
        raise CellSyntaxError(
            f"image {quoted(written)} has a space in its path",
            "the path in angle brackets, as in ![alt](<my file.png>), or a backslash "
            "before '![' to send it as text", line=line)
    else:
        src = raw
    if not src:
        raise CellSyntaxError(f"image {quoted(written)} has no path or URL",
                              "![alt](cat.png) or ![alt](https://...)", line=line)
    end, detail = m.end(), None
    attr = _ATTR.match(text, end)
    if attr:
        key, value = attr["key"], attr["value"]
        written += attr.group()
        if key != "detail" or value not in DETAILS:
            said = f"detail={value!r}" if key == "detail" else f"attribute {key!r}"
            raise CellSyntaxError(f"image {quoted(written)} has {said}", _DETAIL_HINT,
                                  line=line)
        detail, end = value, attr.end()
    alt = m["alt"]
    if namespace is not None:
        src = interpolate(src, namespace, line=line, where=where)
        alt = interpolate(alt, namespace, line=line, where=where)
    return ImageRef(src, alt, detail, line, written), end


def scan(text: str, *, line: int, namespace: Mapping[str, Any] | None = None,
         where: str = "the notebook") -> list[str | ImageRef]:
    """One line of content as text pieces and image references, in order.

    Escaped images become text (one backslash removed); with a ``namespace``,
    text pieces and the images' ``src`` and ``alt`` are interpolated. Raises
    :class:`~gptmagic.core.cellsyntax.CellSyntaxError` naming ``line``.
    """
    out: list[str | ImageRef] = []
    buf: list[str] = []
    pos = 0

    def flush() -> None:
        piece = "".join(buf)
        buf.clear()
        if namespace is not None:
            piece = interpolate(piece, namespace, line=line, where=where)
        out.append(piece)

    for m in _IMAGE.finditer(text):
        if m.start() < pos:  # inside the attributes of the image before
            continue
        buf.append(text[pos : m.start()])
        if m["esc"]:
            buf.append(m.group()[1:])  # one backslash removed: the rest is text
            pos = m.end()
            continue
        flush()
        ref, pos = _ref(m, text, line, namespace, where)
        out.append(ref)
    buf.append(text[pos:])
    flush()
    return out


def escape_images(text: str) -> str:
    """``text`` with a backslash before each image-shaped ``![...](...)``, so that
    :func:`scan` reads it back as the same text (the inverse of the escape)."""
    return _IMAGE.sub(lambda m: "\\" + m.group(), text)


def image_markdown(url: str, detail: str | None) -> str:
    """How an image part is written in a cell (``![](url){detail=low}``); the alt text
    is not part of a request, so none is written."""
    if not url or any(c in url for c in "<>\n\r"):
        raise RequestError(f"an image URL a cell cannot hold: {elide(url)!r}; expected a "
                           "URL or path without '<', '>' or line breaks", param="messages")
    shown = f"<{url}>" if any(c.isspace() or c in "()" for c in url) else url
    return f"![]({shown})" + (f"{{detail={detail}}}" if detail else "")


def image_part(url: str, detail: str | None = None) -> dict[str, Any]:
    """A chat ``image_url`` content part (OpenAI's schema
    ``ChatCompletionRequestMessageContentPartImage``)."""
    inner: dict[str, Any] = {"url": url}
    if detail is not None:
        inner["detail"] = detail
    return {"type": "image_url", "image_url": inner}


def image_parts(messages: Sequence[Mapping[str, Any]]
                ) -> Iterator[tuple[int, int, str, str | None]]:
    """``(message, part, url, detail)`` of every image part, in chat's shape
    (``image_url: {url, detail}``) or the Responses API's (``input_image``)."""
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, Mapping) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not isinstance(part, Mapping):
                continue
            if part.get("type") == "image_url":
                inner = part.get("image_url")
                if isinstance(inner, Mapping):
                    yield i, j, str(inner.get("url") or ""), inner.get("detail")
                elif isinstance(inner, str):
                    yield i, j, inner, None
            elif part.get("type") == "input_image":
                yield i, j, str(part.get("image_url") or part.get("file_id") or ""), \
                    part.get("detail")


def part_text(content: Any) -> str:
    """Message content as text to show: parts' text joined, ``[image]`` for an image,
    ``[type]`` for another part; never a data URL."""
    if content is None:
        return ""
    if not isinstance(content, list):
        return elide(str(content))
    out = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in ("text", "input_text", "output_text"):
            out.append(str(part.get("text", "")))
        elif kind in ("image_url", "input_image"):
            out.append("[image]")
        else:
            out.append(f"[{kind or 'part'}]")
    return elide("".join(out))


def decode_data_url(url: str, *, prefix: int | None = None) -> tuple[str, bytes] | None:
    """``(mime type, bytes)`` of a base64 data URL (only the first ``prefix`` bytes'
    worth when given: enough for an image's header); None for anything else."""
    if not url.startswith("data:"):
        return None
    head, sep, body = url.partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    if prefix is not None:
        body = body[: (prefix + 2) // 3 * 4]
    try:
        return head[5:].removesuffix(";base64"), base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


def _size(body: str) -> str:
    n = len(body) * 3 // 4
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{max(n // 1000, 1)} KB"


def elide(value: Any) -> Any:
    """``value`` (a string, or lists and dicts of them) with every base64 data URL
    replaced by ``data:image/png;base64,… (34 KB)``: what is shown, logged or stored
    of a request never holds the image itself. Other values are returned as they are."""
    if isinstance(value, str):
        if "base64," not in value:
            return value
        return _DATA_URL.sub(lambda m: f"data:{m['mime']};base64,… ({_size(m['body'])})", value)
    if isinstance(value, Mapping):
        return {k: elide(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(elide(v) for v in value)
    return value


def text_only_refusal(messages: Sequence[Mapping[str, Any]], refs: Sequence[ImageRef] = (),
                      *, instead: str = f"model='{DEFAULT_OPENAI_MODEL}'",
                      param: str = "messages") -> RequestError | None:
    """The error for a prompt with images sent to the embedded model, which reads text
    only; None without images. It names each of ``refs`` (the cell's images) as any
    error about an image does (``cell line 2: image `![cat](cat.png)```), else the
    message and part; ``instead`` is how the caller picks a vision model (``--model
    gpt-4.1-nano`` in a cell; by default gptmagic's default hosted model, which reads
    images and is not being retired)."""
    if refs:
        lines = list(dict.fromkeys(r.line for r in refs))
        shown = [quoted(r.written) for r in refs[:3]]
        where = (refs[0].where if len(refs) == 1 else
                 f"cell {'line' if len(lines) == 1 else 'lines'} {_listed(map(str, lines))}: "
                 f"images {_listed(shown, len(refs))}")
        n = len(refs)
    else:
        found = [f"messages[{i}].content[{j}]" for i, j, _, _ in image_parts(messages)]
        if not found:
            return None
        n = len(found)
        where = _listed(found[:3], n) + (" is an image" if n == 1 else " are images")
    it, noun = ("it", "the image") if n == 1 else ("them", "the images")
    return RequestError(f"{where}: {EMBEDDED_NAME} (the embedded model) reads text only; "
                        f"send {it} to a vision model ({instead}) or remove {noun}",
                        param=param)


def _listed(items: Iterator[str] | Sequence[str], total: int | None = None) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``; with ``total`` above the items given,
    ``"a, b, c and 2 more"``."""
    items = list(items)
    more = (total or len(items)) - len(items)
    if more > 0:
        return f"{', '.join(items)} and {more} more"
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
