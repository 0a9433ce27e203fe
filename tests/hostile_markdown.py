"""Link schemes hidden by encodings, and how a browser would read a rendered href.

Shared by the tests that render a model's reply with the renderers users' pages
use (nbconvert's mistune in the report, JupyterLab's marked in the browser).
"""

from __future__ import annotations

import html.parser
import re

__all__ = ["ENCODED_LINKS", "SAFE_SCHEMES", "browser_scheme", "link_targets"]

#: Each would run ``window.__pwned=1`` (or load data/vbscript) if a renderer and the
#: browser decoded it into a live link.
ENCODED_LINKS = [
    "[x](&#106;avascript:window.__pwned=1)",
    "[x](&#x6A;avascript:window.__pwned=1)",
    "[x](&#X6a;AVASCRIPT:window.__pwned=1)",
    "[x](&#0000106;avascript:window.__pwned=1)",
    "[x](&#106avascript:window.__pwned=1)",
    "[x](java&#x09;script:window.__pwned=1)",
    "[x](java&Tab;script:window.__pwned=1)",
    "[x](jav&NewLine;ascript:window.__pwned=1)",
    "[x](javascript&colon;window.__pwned=1)",
    "[x](JaVaScRiPt&#58;window.__pwned=1)",
    "[x](&#x26;#106;avascript:window.__pwned=1)",
    "[x](&amp;#106;avascript:window.__pwned=1)",
    "[x](&#38;#x6A;avascript:window.__pwned=1)",
    "[x]( &#106;avascript:window.__pwned=1 \"t\")",
    "[x](\n&#106;avascript:window.__pwned=1)",
    "[x](<&#106;avascript:window.__pwned=1>)",
    "[x](\\&#106;avascript:window.__pwned=1)",
    "[x](&#100;ata:text/html;base64,PHNjcmlwdD4=)",
    "[x](&#118;bscript:msgbox(1))",
    "[[x](&#106;avascript:window.__pwned=1)](&#106;avascript:window.__pwned=1)",
    "[x]&#40;&#106;avascript:window.__pwned=1)",
    "<a href=\"&#106;avascript:window.__pwned=1\">x</a>",
    "$\\href{&#106;avascript:window.__pwned=1}{x}$",
]

#: Schemes a link in a view may have once the browser has parsed it.
SAFE_SCHEMES = {"http", "https", "mailto", ""}


def browser_scheme(href: str) -> str:
    """The scheme a browser's URL parser reads from an attribute value already
    entity-decoded (leading controls and spaces stripped, tabs and newlines removed);
    ``""`` for a relative URL."""
    url = re.sub(r"[\t\n\r]", "", href).lstrip("".join(map(chr, range(0x21))))
    m = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", url)
    return m.group(1).lower() if m else ""


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "xlink:href", "action", "formaction", "srcset"):
                self.found.append((tag, name, value or ""))


def link_targets(page: str) -> list[tuple[str, str, str]]:
    """``(tag, attribute, decoded value)`` of every URL-bearing attribute in ``page``."""
    parser = _Links()
    parser.feed(page)
    parser.close()
    return parser.found
