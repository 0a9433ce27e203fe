"""Text forms that are safe to print in a terminal.

A logged prompt or reply is model or user text: an ESC (``\\x1b[2J`` clears the
screen, ``\\x1b]0;title\\x07`` retitles the window, OSC 52 writes the clipboard), a
carriage return or a bidirectional override would act on the terminal instead of
being read. :func:`printable` shows each such character as its Python escape, so
the text form reads the way ``repr`` would write it while newlines and tabs stay
as they are.
"""

from __future__ import annotations

__all__ = ["printable"]

_KEEP = frozenset("\n\t")
# Bidirectional embeddings, overrides and isolates reorder what follows them on
# screen ("Trojan Source"), so they are shown too, though they are format (Cf)
# characters rather than controls (Cc).
_BIDI = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 (ESC, BEL, CR, backspace...), DEL and C1 (0x9b is CSI on some terminals).
_TABLE: dict[int, str] = {code: _escape(code) for code in (*range(0x20), *range(0x7F, 0xA0), *_BIDI)
                          if chr(code) not in _KEEP}


def printable(text: str) -> str:
    """*text* with every terminal control except newline and tab shown as an escape.

    ``printable("a\\x1b[31mb")`` is ``"a\\\\x1b[31mb"``: the four characters ``\\x1b``
    where the ESC was, so nothing the text holds can drive the terminal.
    """
    return text.translate(_TABLE)
