"""Chat messages from the text of a notebook cell, and back.

A cell is a list of messages, each opened by a *role marker* (user reference with
examples: ``docs/cell-grammar.md``)::

    %% a comment: never sent
    system: You are a terse assistant.
    user (alice):
    # Task
    Summarise {doc} in one line.

Grammar. Lines are split on ``\\n``; ``\\r\\n`` and a lone ``\\r`` count as ``\\n``.

- **Marker**: a line starting with ``system``, ``developer``, ``user`` or
  ``assistant`` (ASCII letters, any case), an optional ``(name)``, then ``:``. Spaces
  or tabs may come before it (an editor's auto-indent) and separate the parts; the
  canonical form is ``user (alice):``. A name
  must match ``[a-zA-Z0-9_-]{1,64}`` (OpenAI's rule). A marker-shaped line with any
  other name (``User (see above): ...``) is an error, never silently text.
- **Content**: the rest of the marker line (one space after the colon removed, the
  rest literal: no comment or escape handling there) and every following line up to
  the next marker. Whole blank lines (empty or only whitespace) at the start and end
  of a message are dropped; blank lines inside, indentation and trailing spaces are
  kept.
- **Comment**: a line starting with ``%%`` (after any spaces or tabs) is dropped. Not ``#``: a
  markdown heading is prompt content and must be sendable as is. Not ``//``: a
  comment line of pasted C/JS/Go code would vanish. ``%%`` is rare in prompts and
  echoes the ``%%chat`` line: it speaks to the notebook, not to the model.
- **Escape**: a backslash at column 0 is removed only when it protects something:
  a marker-shaped line, a comment (indented or not), or another backslash.
  ``\\user: hi`` sends ``user: hi``; ``\\    user: hi`` sends ``    user: hi``;
  ``\\%% x`` sends ``%% x``; ``\\\\x`` sends ``\\x``. After indentation a backslash
  protects a marker or a comment only (``    \\user: hi`` sends ``    user: hi``:
  the editor indented the escaped line). Any other line
  keeps its backslash, so LaTeX such as ``\\begin{document}`` needs no care.
- **Cell**: with no marker at all, the whole cell is one user message. With markers,
  text before the first one is an error (blank and comment lines are fine): it is
  almost always a stray ``User:`` line in a one-message prompt, or a forgotten
  ``system:``, and silently sending an extra message would be worse. A message with
  no content and a cell with no message are errors.
- **Interpolation** (only when a ``namespace`` is given; with ``None`` every brace is
  literal): ``{name}`` inserts ``str(namespace[name])`` for a plain ASCII identifier
  not starting with ``__``; ``{{`` and ``}}`` give literal braces; anything else in
  braces (``{a.b}``, ``{a[0]}``, ``{f()}``, ``{a!r}``, ``{a:>9}``, ``{0}``, ``{}``) and a
  lone ``{`` or ``}`` is an error. A placeholder cannot span lines. Markers, names,
  blank-line trimming and comments are decided on the text as written; inserted
  values are never re-read. No ``str.format``: its attribute access and format specs
  reach any object (``{0.__class__.__init__.__globals__}``); a small scanner does it.

:func:`render_cell` writes messages back so that ``parse_cell(render_cell(m)) == m``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gptmagic.core import images as _images
from gptmagic.core.cellsyntax import CellSyntaxError, interpolate
from gptmagic.core.cellsyntax import show as _show
from gptmagic.core.images import ImageRef
from gptmagic.errors import RequestError

__all__ = ["Cell", "CellSyntaxError", "ROLES", "indented_markers", "interpolate", "parse_cell",
           "read_cell", "render_cell"]

#: The roles a cell can hold, in marker order.
ROLES = ("system", "developer", "user", "assistant")

# re.ASCII: under Unicode case folding "ſystem" (long s) would match "system".
_MARKER = re.compile(
    r"(?P<role>system|developer|user|assistant)[ \t]*(?:\((?P<name>[^)\n]*)\)[ \t]*)?:",
    re.ASCII | re.IGNORECASE,
)
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_COMMENT = "%%"
# Text right after an image that would read as its attributes (``{detail=low}``).
_ATTR_START = re.compile(r"\{[ \t]*[A-Za-z_]\w*[ \t]*=")


def _indent(line: str) -> int:
    """Where a line's text starts after its leading spaces and tabs."""
    return len(line) - len(line.lstrip(" \t"))


def _notation(body: str) -> bool:
    """Whether text after a line's indentation reads as a marker or a comment."""
    return bool(_MARKER.match(body)) or body.startswith(_COMMENT)


def _protected(line: str) -> bool:
    """Whether ``line`` needs a leading backslash to be read as plain content."""
    i = _indent(line)
    body = line[i:]
    return (_notation(body) or line.startswith("\\")
            or (i > 0 and body.startswith("\\") and _notation(body[1:])))


def _trim(parts: list[tuple[int, str]]) -> list[tuple[int, str]]:
    start, end = 0, len(parts)
    while start < end and not parts[start][1].strip():
        start += 1
    while end > start and not parts[end - 1][1].strip():
        end -= 1
    return parts[start:end]


@dataclass(frozen=True, slots=True)
class Cell:
    """A parsed cell: its messages and the images they reference, in order."""

    messages: list[dict[str, Any]]
    images: tuple[ImageRef, ...] = ()


def parse_cell(text: str, namespace: Mapping[str, Any] | None = None, *,
               where: str = "the notebook") -> list[dict[str, Any]]:
    """Parse cell text into OpenAI chat messages ``{"role", "content", "name"?}``.

    With a ``namespace``, ``{name}`` placeholders in content are filled from it;
    with ``None`` the content is literal. A message holding ``![alt](src)`` has a
    list of content parts, the image's ``url`` being ``src`` as written
    (:func:`read_cell` also gives the references, to read the files). Raises
    :class:`CellSyntaxError` naming the line of ``text`` at fault.
    """
    return read_cell(text, namespace, where=where).messages


def read_cell(text: str, namespace: Mapping[str, Any] | None = None, *,
              where: str = "the notebook") -> Cell:
    """:func:`parse_cell`'s messages and the cell's image references
    (:class:`~gptmagic.core.images.ImageRef`: line, ``src``, ``detail`` and where
    its part is)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # (role, name, marker line, [(line number, content line), ...])
    blocks: list[tuple[str, str | None, int, list[tuple[int, str]]]] = []
    before: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, 1):
        # An editor's auto-indent must not turn a marker or a comment into content.
        marker = _MARKER.match(raw, _indent(raw))
        if marker:
            role, name = marker["role"].lower(), marker["name"]
            if name is not None and not _NAME.fullmatch(name):
                raise CellSyntaxError(
                    f"{_show(name)} is not a valid message name",
                    "1 to 64 letters, digits, '_' or '-' as in 'user (alice):',"
                    " or a backslash at the start of the line to send it as text",
                    line=number,
                )
            rest = raw[marker.end() :]
            blocks.append((role, name, number, [(number, rest.removeprefix(" "))]))
            continue
        if raw.startswith(_COMMENT, _indent(raw)):
            continue
        i = _indent(raw)
        if raw.startswith("\\") and _protected(raw[1:]):
            raw = raw[1:]
        elif i and raw.startswith("\\", i) and _notation(raw[i + 1:]):
            # The editor indented an escaped marker: the escape still holds.
            raw = raw[:i] + raw[i + 1:]
        (blocks[-1][3] if blocks else before).append((number, raw))

    if not blocks:
        if not _trim(before):
            raise CellSyntaxError("cell is empty", "a message", line=None)
        blocks.append(("user", None, 1, before))
    else:
        stray = next((number for number, content in before if content.strip()), None)
        if stray is not None:
            role, _, first, _ = blocks[0]
            raise CellSyntaxError(
                f"text before the first role marker (line {first} starts a {role} message)",
                f"a role marker such as 'user:' above it, or a backslash before the marker"
                f" on line {first} to send that line as text",
                line=stray,
            )

    messages: list[dict[str, Any]] = []
    images: list[ImageRef] = []
    for role, name, first, parts in blocks:
        parts = _trim(parts)
        if not parts:
            head = role if name is None else f"{role} ({name})"
            raise CellSyntaxError(
                f"the {role} message is empty",
                f"text after '{head}:' or on the lines below it",
                line=first,
            )
        content, refs = _content(role, parts, namespace, where, len(messages))
        message: dict[str, Any] = {"role": role, "content": content}
        if name is not None:
            message["name"] = name
        messages.append(message)
        images += refs
    return Cell(messages, tuple(images))


def _content(role: str, parts: list[tuple[int, str]], namespace: Mapping[str, Any] | None,
             where: str, index: int) -> tuple[str | list[dict[str, Any]], list[ImageRef]]:
    """A message's content: its text, or text and image parts when it holds images."""
    pieces: list[str | ImageRef] = []
    for k, (number, line) in enumerate(parts):
        if k:
            pieces.append("\n")
        pieces += _images.scan(line, line=number, namespace=namespace, where=where)
    if all(isinstance(p, str) for p in pieces):
        return "".join(p for p in pieces if isinstance(p, str)), []
    out: list[dict[str, Any]] = []
    refs: list[ImageRef] = []
    text: list[str] = []

    def flush() -> None:
        joined = "".join(text)
        text.clear()
        if joined.strip():  # whitespace between images carries nothing
            out.append({"type": "text", "text": joined})

    for piece in pieces:
        if isinstance(piece, str):
            text.append(piece)
            continue
        if role != "user":
            raise CellSyntaxError(
                f"image {_images.quoted(piece.written)} is in a {role} message, and only user "
                "messages hold images (OpenAI's rule)",
                "the image in a user message, or a backslash before '![' to send it as text",
                line=piece.line)
        flush()
        refs.append(replace(piece, message=index, part=len(out)))
        out.append(_images.image_part(piece.src, piece.detail))
    flush()
    return out, refs


def indented_markers(text: str) -> str | None:
    """A note naming the lines where an indented role marker started a message, or None.

    Indented markers count (an editor's auto-indent must not merge messages), so a
    transcript quoted with indentation is split too: the note says so, and how to keep
    such a line as text."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    found = [(n, m["role"]) for n, raw in enumerate(lines, 1)
             if _indent(raw) and (m := _MARKER.match(raw, _indent(raw)))]
    if not found:
        return None
    where = ", ".join(f"{n} ({role}:)" for n, role in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return (f"cell line(s) {where}{more}: an indented role marker starts a new message; "
            "a backslash at column 0 keeps such a line as text")


def _refuse(index: int, problem: str, expected: str) -> RequestError:
    return RequestError(f"messages[{index}] {problem}; expected {expected}", param="messages")


def render_cell(messages: Sequence[Mapping[str, Any]], *, escape_braces: bool = False) -> str:
    """Write messages as cell text that :func:`parse_cell` reads back unchanged.

    Every message gets its own marker line; content lines that would read as a
    marker, a comment or an escape get a leading backslash. ``parse_cell(text)``
    returns exactly ``messages``; with ``escape_braces=True`` braces are doubled
    so that ``parse_cell(text, namespace=...)`` (as ``%%chat`` does) returns them.

    Raises :class:`~gptmagic.errors.RequestError` (``param="messages"``) for what a
    cell cannot hold: no messages, other keys than role/content/name, a role other
    than the four lowercase ones, a non-string or empty content, content starting or
    ending with a blank line or holding ``\\r``, an invalid name.
    A user message's list of content parts (text and ``image_url`` parts, as
    :func:`parse_cell` makes them) is written with ``![](url){detail=...}`` for each
    image; text parts are escaped so that they read back as text.
    """
    if not messages:
        raise RequestError("no messages to write; expected at least one", param="messages")
    chunks = []
    for index, message in enumerate(messages):
        extra = sorted(set(message) - {"role", "content", "name"})
        if extra:
            raise _refuse(index, f"has keys a cell cannot hold: {extra}", "role, content, name")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise _refuse(index, f"has role {role!r}", "one of " + ", ".join(ROLES))
        if isinstance(content, list):
            content = _parts_text(index, role, content, escape_braces)
        elif not isinstance(content, str):
            raise _refuse(index, f"content is {type(content).__name__}", "a string")
        else:
            content = _images.escape_images(_braces(content) if escape_braces else content)
        lines = content.split("\n")
        if "\r" in content or not lines[0].strip() or not lines[-1].strip():
            raise _refuse(
                index,
                "content is empty, starts or ends with a blank line, or holds '\\r'",
                "content a cell can hold (strip blank lines, use '\\n' line ends)",
            )
        head = role
        if "name" in message:
            name = message["name"]
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise _refuse(index, f"has name {name!r}", "1 to 64 letters, digits, '_' or '-'")
            head += f" ({name})"
        body = "\n".join("\\" + s if _protected(s) else s for s in lines)
        chunks.append(f"{head}:\n{body}")
    return "\n\n".join(chunks)


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _parts_text(index: int, role: Any, parts: list[Any], escape_braces: bool) -> str:
    """A list of content parts written as a cell message's text (see :func:`render_cell`)."""
    cannot = ("content parts that parse_cell makes: text and image_url parts in a user "
              "message, at least one image, no two text parts in a row, no blank text part")
    chunks: list[str] = []
    kinds = [p.get("type") if isinstance(p, Mapping) else None for p in parts]
    if role != "user" or "image_url" not in kinds or any(
            a == b == "text" for a, b in zip(kinds, kinds[1:], strict=False)):
        raise _refuse(index, "has content parts a cell cannot hold as written", cannot)
    for k, (kind, part) in enumerate(zip(kinds, parts, strict=True)):
        if kind == "text" and set(part) == {"type", "text"} and isinstance(part["text"], str) \
                and part["text"].strip():
            text = _images.escape_images(part["text"])
            before_image = k + 1 < len(parts)
            after_image = k > 0
            if (before_image and text.endswith("\\")) or (after_image and _ATTR_START.match(text)):
                raise _refuse(index, f"content[{k}] is text that would change the image next "
                                     "to it (a backslash before it, or '{key=' after it)",
                              "text a cell can hold next to an image")
            chunks.append(_braces(text) if escape_braces else text)
            continue
        inner = part.get("image_url") if kind == "image_url" else None
        if not (isinstance(inner, Mapping) and set(part) == {"type", "image_url"}
                and isinstance(inner.get("url"), str) and set(inner) <= {"url", "detail"}
                and inner.get("detail") in (None, *_images.DETAILS)):
            raise _refuse(index, f"content[{k}] is a part a cell cannot hold", cannot)
        url = _braces(inner["url"]) if escape_braces else inner["url"]
        chunks.append(_images.image_markdown(url, inner.get("detail")))
    return "".join(chunks)
