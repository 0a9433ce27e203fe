"""Text for a terminal: model and user text made inert before it is printed.

A reply, a name or an error printed raw can hold terminal escape codes (``ESC [``
colours, ``ESC ] 0;title BEL`` window titles, cursor moves, a bell): text a model
wrote would then drive the reader's terminal. :func:`printable` shows them instead.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls but tab and newline, DEL, and the C1 controls (0x9b is a CSI on its own).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _show(m: re.Match[str]) -> str:
    code = ord(m.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control pictures: ␛, ␇, ␍ ...
    return "␡" if code == 0x7F else f"\\x{code:02x}"


def printable(text: str) -> str:
    """``text`` with every control character but ``\\n`` and ``\\t`` shown as a visible
    stand-in (``ESC`` as ``␛``, ``BEL`` as ``␇``, C1 controls as ``\\x9b``), so printing
    it moves no cursor, sets no title and colours nothing."""
    return _CONTROL.sub(_show, text)
