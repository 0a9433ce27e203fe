"""views.text.printable: terminal controls in logged text are shown, never sent."""

from __future__ import annotations

import pytest

from gptmagic.views.text import printable


@pytest.mark.parametrize(("raw", "shown"), [
    ("a\x1b[31mred\x1b[0m", "a\\x1b[31mred\\x1b[0m"),
    ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
    ("over\rwrite", "over\\x0dwrite"),
    ("back\x08space\x7f", "back\\x08space\\x7f"),
    ("\x9b31m", "\\x9b31m"),
    ("safe\u202eevil", "safe\\u202eevil"),
    ("\x00", "\\x00"),
])
def test_controls_are_shown_as_escapes(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert not any(ord(c) < 0x20 and c not in "\n\t" for c in printable(raw))


def test_newlines_tabs_and_ordinary_text_are_kept() -> None:
    text = "line one\n\tindented — café, 日本語, emoji 🎉, backslash \\x1b"
    assert printable(text) == text
