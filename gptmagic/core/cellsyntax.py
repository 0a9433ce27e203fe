"""The cell grammar's error and its ``{name}`` scanner (pure).

:class:`CellSyntaxError` is what every rule of the cell grammar raises
(:mod:`gptmagic.core.messages` for markers and messages,
:mod:`gptmagic.core.images` for Markdown images); :func:`interpolate` fills
``{name}`` placeholders without ``str.format``, whose attribute access and
format specs reach any object (``{0.__class__.__init__.__globals__}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gptmagic.core.text import preview as _preview
from gptmagic.errors import RequestError

__all__ = ["CellSyntaxError", "interpolate", "show"]

_TOKEN = re.compile(r"\{\{|\}\}|\{[^}\n]*\}|[{}]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_ALLOWED = {
    ".": "attribute access",
    "[": "indexing",
    "(": "a call",
    "!": "a conversion",
    ":": "a format spec",
}
_BRACES_HINT = "{name} with a plain variable name such as {x}, or {{ and }} for literal braces"


class CellSyntaxError(RequestError):
    """The text of a cell is not valid message syntax.

    ``line`` is the 1-based line of the original cell text (``None`` only for an
    empty cell); ``param`` is ``"cell"``. The message reads
    ``"cell line 3: <what is wrong>; expected <what was expected>"``.
    """

    def __init__(self, problem: str, expected: str, *, line: int | None) -> None:
        where = "" if line is None else f"cell line {line}: "
        super().__init__(f"{where}{problem}; expected {expected}", param="cell")
        self.line = line
        self.problem = problem
        self.expected = expected


def show(text: str, limit: int = 40) -> str:
    """``text`` quoted for an error message, cut to about ``limit`` characters."""
    return repr(_preview(text, limit + 1, flatten=False))


def _placeholder(expr: str, namespace: Mapping[str, Any], line: int,
                 where: str = "the notebook") -> str:
    shown = show("{" + expr + "}")
    if _IDENT.fullmatch(expr):
        if expr.startswith("__"):
            raise CellSyntaxError(
                f"{shown} names a special variable (starting with '__'), which is not allowed",
                "an ordinary variable name such as {x}",
                line=line,
            )
        if expr not in namespace:
            raise CellSyntaxError(
                f"name {expr!r} is not defined in {where}",
                "a variable name that exists",
                line=line,
            )
        try:
            return str(namespace[expr])
        except Exception as exc:  # the value's own __str__ failed: report, don't crash
            raise CellSyntaxError(
                f"str({expr}) failed with {type(exc).__name__}: {exc}",
                "a variable whose value converts to text",
                line=line,
            ) from exc
    ident = _IDENT.match(expr)
    after = expr[ident.end() : ident.end() + 1] if ident else ""
    if not expr or expr[0].isdigit():
        why = "is a positional placeholder"
    elif after in _NOT_ALLOWED:
        why = f"uses {_NOT_ALLOWED[after]}, which is not allowed (compute it into a variable)"
    else:
        why = "is not a variable name"
    raise CellSyntaxError(f"{shown} {why}", _BRACES_HINT, line=line)


def interpolate(template: str, namespace: Mapping[str, Any], *, line: int = 1,
                where: str = "the notebook") -> str:
    """Fill ``{name}`` placeholders of ``template`` from ``namespace``.

    ``{{`` and ``}}`` are literal braces; only plain identifiers are looked up (see
    the module docstring). ``line`` is the cell line of the template's first line,
    used in errors; each ``\\n`` in the template advances it. Raises
    :class:`CellSyntaxError`. Never uses ``str.format`` or ``eval``.
    """
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(template):
        line += template.count("\n", pos, m.start())
        out.append(template[pos : m.start()])
        pos = m.end()
        token = m.group()
        if token in ("{{", "}}"):
            out.append(token[0])
        elif token == "{":
            raise CellSyntaxError(
                "'{' has no closing '}' on its line", "{name} or {{ for a literal '{'", line=line
            )
        elif token == "}":
            raise CellSyntaxError("'}' has no opening '{'", "}} for a literal '}'", line=line)
        else:
            out.append(_placeholder(token[1:-1], namespace, line, where))
    out.append(template[pos:])
    return "".join(out)


