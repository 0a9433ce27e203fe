"""Model output as Markdown that stays inert in any renderer (marked, markdown-it).

Used by :mod:`gptmagic.display`: raw HTML is shown as text, code fences stay
verbatim (re-fenced so nothing inside can close them), inline code becomes
``<code>`` with entities, images become links, and links with schemes other
than http/https/mailto are blocked. A single ``$`` in prose is money, shown literally
(``$3 or $4`` is no maths), while ``$$...$$`` and ``\\(...\\)`` still typeset.

A link's scheme is judged as the browser finally sees it: renderers decode
character references in a destination (nbconvert's mistune even decodes
``&amp;#106;`` twice, to ``j``) and browsers drop tabs and newlines from a URL,
so ``&#106;avascript:``, ``java&#x09;script:`` or ``javascript&colon;`` are
``javascript:`` links. The destination is decoded until nothing changes, its
whitespace and control characters dropped, and any colon before the first
``/``, ``?`` or ``#`` must end an allowed scheme.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Iterator

__all__ = ["NO_MATH", "clean_rendered_markdown", "escape_markdown", "safe_markdown"]

#: Classes that make MathJax leave an element's text alone: ``mathjax_ignore`` is
#: MathJax 3's (JupyterLab, Notebook 7), ``tex2jax_ignore`` MathJax 2's (nbconvert's
#: pages, the classic notebook). The root of every HTML output of ours carries both:
#: its text is literal, and ``$0.01 · $0.02`` must not become italic maths.
NO_MATH = "mathjax_ignore tex2jax_ignore"

_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_OPENER = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_LEADING_TICKS = re.compile(r"^[ \t]*(`+)", re.M)
_TICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_QUOTE_MARKS = re.compile(r"^[ \t]*(?:&gt;[ \t]?)+", re.M)
_FENCE_LIKE = re.compile(r"^( {0,3})([`~])(?=\2\2)", re.M)
_PUNCT = r"!-/:-@\[-`{-~"  # every ASCII punctuation character, for a character class
_ESCAPED = re.compile(rf"\\([{_PUNCT}])")
_MD_INLINE = re.compile(r"([\\`*_\[\]~|$])")  # $: Jupyter's math; |: tables
_LITERAL_DOLLAR = "<span>\\$</span>"  # see escape_markdown
# In a reply's prose: a link's destination or a backslash escape (kept, but an escaped
# dollar is still a dollar), display maths $$...$$ within a paragraph (kept: typeset),
# or a lone $ (made literal).
_REPLY_DOLLAR = re.compile(r"\]\([^\s)]*|\\\$|\\.|\$\$(?:(?!\n[ \t]*\n)[^$])+\$\$|\$", re.S)
_AUTOLINK = re.compile(r"(?i)(?<=www)\.|@")
_MD_LINE_START = re.compile(r"^([ \t]*\d*)([#+=.)-])", re.M)  # headings, lists, setext
# Where a link destination starts: an inline link, or MathJax's \href{...} / \url{...}.
_DEST = re.compile(r"(\]\(|\\(?:href|url)\{)(\s*)(\S{0,512})")
_DEST_END = re.compile(r"[)}]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# What a browser ignores in a URL (tabs, newlines, leading controls and spaces), plus
# the '<' of a pointy destination: dropped before the scheme is read.
_URL_IGNORED = re.compile(r"[\x00-\x20\x7f<]+")


def escape_markdown(text: str) -> str:
    """Plain text (names, notes, errors) as Markdown that shows it literally.

    Each ``$`` becomes ``<span>\\$</span>``. The escape alone keeps Markdown-level
    maths (nbconvert's mistune, VS Code) away, but JupyterLab's marked turns ``\\$``
    into ``$`` before MathJax reads the page, and MathJax pairs two of them:
    ``$0.01 · cost $0.02`` became italic maths. MathJax (2 and 3) never pairs
    delimiters across elements, and a bare ``<span>`` survives every sanitiser.
    """
    text = _MD_LINE_START.sub(r"\1\\\2", _MD_INLINE.sub(r"\\\1", text))
    # & < > as entities (no HTML, no blockquote); no GFM autolink either: marked keeps
    # the backslashes of escapes inside the links it makes.
    text = _AUTOLINK.sub(lambda m: f"&#{ord(m.group()[-1])};",
                         html.escape(text, quote=False)).replace("://", ":&#47;/")
    return text.replace("\\$", _LITERAL_DOLLAR)  # every $ is escaped by now


def _entities(text: str) -> str:
    # Entities are neither Markdown syntax nor HTML markup: inert in any parse.
    return "".join(c if c.isalnum() or c == " " else f"&#{ord(c)};" for c in text)


def _fence(code: str, lang: str = "") -> str:
    """A fenced block at the margin that nothing inside ``code`` can close."""
    fence = "`" * max(3, 1 + max(map(len, _LEADING_TICKS.findall(code)), default=0))
    return f"\n{fence}{lang}\n{code}\n{fence}\n" if code else f"\n{fence}{lang}\n{fence}\n"


def _code_block(lines: list[str], info: str, indent: int) -> str:
    lang = re.sub(r"[^\w+#.-]", "", info.split()[0])[:32] if info.split() else ""
    code = "\n".join(line[min(indent, len(line) - len(line.lstrip(" "))):] for line in lines)
    if indent == 0:
        return _fence(code, lang)
    cls = f' class="language-{lang}"' if lang else ""
    return f"{' ' * indent}<pre><code{cls}>{_entities(code)}</code></pre>"


def _code_spans(text: str) -> Iterator[tuple[bool, str]]:
    """Split prose into (is_code, text) pieces by CommonMark's backtick-run rule."""
    runs = [m.span() for m in _TICKS.finditer(text)]
    by_len: dict[int, list[int]] = {}
    for i, (a, b) in enumerate(runs):
        by_len.setdefault(b - a, []).append(i)
    pos = i = 0
    while i < len(runs):
        a, b = runs[i]
        start = a
        while start and text[start - 1] == "\\":  # an odd count escapes the backtick
            start -= 1
        same = by_len[b - a]
        k = bisect.bisect_right(same, i)
        close = same[k] if k < len(same) else None
        if (a - start) % 2 or close is None or _BLANK_LINE.search(text, b, runs[close][0]):
            i += 1
            continue
        yield False, text[pos:a]
        yield True, text[b:runs[close][0]]
        pos, i = runs[close][1], close + 1
    yield False, text[pos:]


def _decoded(dest: str) -> str:
    """``dest`` decoded as far as any renderer and browser would: character references
    (repeatedly, as ``&amp;#106;`` is ``j`` to mistune), backslash escapes, and the
    characters a URL parser skips."""
    for _ in range(8):
        plain = _ESCAPED.sub(r"\1", html.unescape(dest))
        if plain == dest:
            break
        dest = plain
    return _URL_IGNORED.sub("", dest)


def _unsafe_destination(dest: str) -> bool:
    """True if ``dest`` names a scheme (a colon before any ``/?#``) other than
    http, https or mailto, or something that is no valid scheme at all."""
    url = _decoded(dest)
    head = re.split(r"[/?#]", url, maxsplit=1)[0]
    if ":" not in head:
        return False  # a relative link: no scheme
    scheme = head.split(":", 1)[0]
    return not (_SCHEME.fullmatch(scheme) and scheme.lower() in _SAFE_SCHEMES)


def _block_scheme(m: re.Match[str]) -> str:
    dest = _DEST_END.split(m.group(3), maxsplit=1)[0]
    if _unsafe_destination(dest):
        return f"{m.group(1)}#blocked:{m.group(2)}{m.group(3)}"
    return m.group()


def _literal_dollar(m: re.Match[str]) -> str:
    return _LITERAL_DOLLAR if m.group() in ("$", "\\$") else m.group()


def _literal_dollars(text: str) -> str:
    """A single ``$`` in a reply is money, as in chat UIs: ``$3 or $4`` must not become
    italic maths in Jupyter. Each becomes ``<span>\\$</span>`` (see :func:`escape_markdown`);
    display maths ``$$...$$`` and ``\\(...\\)`` / ``\\[...\\]`` are left to typeset."""
    return _REPLY_DOLLAR.sub(_literal_dollar, text)


def _prose(text: str) -> str:
    out = []
    for is_code, part in _code_spans(text):
        if is_code:
            part = part.replace("\n", " ")
            if len(part) > 2 and part[0] == part[-1] == " " and part.strip(" "):
                part = part[1:-1]
            out.append(f"<code>{_entities(part)}</code>")
            continue
        s = html.escape(part, quote=False)
        s = _QUOTE_MARKS.sub(lambda q: q.group().replace("&gt;", ">"), s)
        s = s.replace("![", "&#33;[").replace("]:", "]&#58;")
        out.append(_DEST.sub(_block_scheme, _literal_dollars(s)))
    # A line the rewrite left looking like a fence (```x`y` became ```x<code>...) must not
    # open one: the renderer would then see code where we see prose, and vice versa.
    return _FENCE_LIKE.sub(lambda m: f"{m.group(1)}&#{ord(m.group(2))};", "".join(out))


def safe_markdown(text: str) -> str:
    """Untrusted Markdown (a model's reply) made inert: formatting kept, no active HTML."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        m = _OPENER.match(lines[i])
        if m is None or (m.group(2)[0] == "`" and "`" in m.group(3)):
            prose.append(lines[i])
            i += 1
            continue
        indent, fence, info = m.groups()
        closer = re.compile(rf"^ {{0,{len(indent) + 3}}}{fence[0]}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not closer.match(lines[j]):
            j += 1
        if prose:
            out.append(_prose("\n".join(prose)))
            prose = []
        out.append(_code_block(lines[i + 1:j], info, len(indent)))
        i = j + 1
    if prose:
        out.append(_prose("\n".join(prose)))
    return "\n".join(out).strip("\n")




#: Attributes kept on rendered Markdown: the renderer's own (heading anchors, code
#: highlighting classes, table alignment) and the small style of our status lines.
_KEPT_ATTRIBUTES = {"*": {"class"}, "a": {"href", "title"}, "code": {"class"},
                    "small": {"style"}, "ol": {"start"}, "td": {"align", "style"},
                    "th": {"align", "style"}, **{f"h{n}": {"id"} for n in range(1, 7)}}


def clean_rendered_markdown(rendered: str) -> str:
    """HTML that a Markdown renderer made from a model's text, through ``nh3`` (a
    maintained sanitiser): known tags only, links http/https/mailto or relative, no
    images (they load their URL unasked), no scripts, handlers or styles beyond
    ``opacity`` and ``text-align``.

    :func:`safe_markdown` already makes the Markdown inert in the renderers we know;
    this is the second line wherever we run the renderer ourselves (the HTML report).
    """
    import nh3

    return nh3.clean(rendered, tags=set(nh3.ALLOWED_TAGS) - {"img", "area", "map"},
                     attributes=_KEPT_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     filter_style_properties={"opacity", "text-align"},
                     clean_content_tags={"script", "style"})
