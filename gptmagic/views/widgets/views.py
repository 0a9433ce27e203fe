"""The widgets: anywidget front ends drawing one synced JSON state.

Each widget's ``data`` trait holds a state from :mod:`.state` (the contract
in ``docs/widgets.md``). Its MIME bundle carries the widget view *and* the
static HTML and plain text of the same state, so a front end without widget
support (nbconvert, GitHub, the terminal) still shows the view.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from gptmagic.errors import GptmagicError
from gptmagic.views.widgets import state as st
from gptmagic.views.widgets import static

__all__ = ["LogprobHeatmap", "TokenCounter", "TokenView"]

_JS = Path(__file__).parent / "js"
#: The MIME type of a Jupyter widget's view.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@functools.cache
def esm_source(name: str) -> str:
    """The ES module a widget ships as ``_esm``: ``js/common.js`` then ``js/<name>.js``.

    anywidget loads each ``_esm`` on its own, from a blob URL, so a view cannot
    ``import`` a sibling file (a relative specifier has nothing to resolve
    against, and the package's files are not served). The code the views share
    therefore lives in ``common.js`` as plain top-level declarations (no
    ``export``), and each widget's module is that text followed by its view's
    file, which uses the shared names directly and ends in ``export default
    { render }``. A view that draws another's state (``_USES``) gets that view's
    file in between, its export dropped. The browser test harness serves these
    same strings.
    """
    common = (_JS / "common.js").read_text(encoding="utf-8").rstrip()
    used = "".join(
        f"\n\n// ---- {dep}.js ----\n\n"
        + (_JS / f"{dep}.js").read_text(encoding="utf-8").replace(_EXPORT, "").rstrip()
        for dep in _USES.get(name, ()))
    own = (_JS / f"{name}.js").read_text(encoding="utf-8")
    return f"{common}{used}\n\n// ---- {name}.js ----\n\n{own}"


#: Views that draw another view's state inside their own (the explorer's side panel
#: draws a heatmap): that view's file ships before theirs, without its export.
_USES = {"explorer": ("heatmap",)}
_EXPORT = "export default { render };"


class _StateWidget(anywidget.AnyWidget):
    """A widget whose whole view is drawn from its ``data`` state."""

    _css = _JS / "gptmagic.css"
    data = traitlets.Dict().tag(sync=True)

    def to_html(self) -> str:
        """The static HTML of the current state."""
        raise NotImplementedError

    def to_text(self) -> str:
        """The plain-text form of the current state."""
        raise NotImplementedError

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any
                          ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The widget's view, its text and its static HTML: only those ``include`` /
        ``exclude`` leave are built (a terminal asking for text builds no HTML)."""
        def wanted(mime: str) -> bool:
            return (not include or mime in include) and (not exclude or mime not in exclude)

        data: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        if wanted(WIDGET_VIEW):
            bundle = super()._repr_mimebundle_(**kwargs)
            if bundle is None:
                return None
            data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        if wanted("text/plain"):
            data["text/plain"] = self.to_text()
        if wanted("text/html"):
            data["text/html"] = self._fallback_html() if WIDGET_VIEW in data else self.to_html()
        return data, meta

    def _fallback_html(self) -> str:
        """The HTML beside the widget's view (a saved notebook keeps both): the static
        HTML, unless a subclass ships less there."""
        return self.to_html()

    def _summary(self) -> str:
        return ""

    def __repr__(self) -> str:
        summary = self._summary()
        return f"<{type(self).__name__}{' ' + summary if summary else ''}>"


class TokenCounter(_StateWidget):
    """Tokens, context-window fill and cost of a prompt; live over a text area when no prompt.

    The live form counts what is typed into ``text`` (the cell grammar:
    ``system:`` / ``user:`` markers) and recounts whenever ``text``, ``model``
    or ``max_tokens`` change. A count that fails shows its message in
    ``data["error"]``; an observer never raises. ``tools`` (tool definitions)
    are counted with the messages, as the request that sends them is.
    """

    _esm = esm_source("counter")
    text = traitlets.Unicode("").tag(sync=True)
    model = traitlets.Unicode("").tag(sync=True)
    max_tokens = traitlets.Int(None, allow_none=True).tag(sync=True)
    live = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        messages_or_text: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        model: str,
        max_tokens: int | None = None,
        mode: str | None = None,
        count: st.Counter | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        self._ready = False  # no recount while traitlets sets the initial values
        self._content = messages_or_text
        self._mode = mode or ("chat" if messages_or_text is None else None)
        self._count = count
        self._tools = tools
        super().__init__(model=model, max_tokens=max_tokens,
                         live=messages_or_text is None, **kwargs)
        self._ready = True
        if messages_or_text is None:
            self._recount()
        else:  # a given prompt: errors are the caller's to see
            self.data = st.counter_state(messages_or_text, self.model,
                                         max_tokens=max_tokens, mode=mode, count=count,
                                         tools=tools)

    @traitlets.observe("text", "model", "max_tokens")
    def _on_change(self, change: Mapping[str, Any]) -> None:
        if self._ready:
            self._recount()

    def _recount(self) -> None:
        content = self.text if self.live else self._content
        mode = self._mode or ("text" if isinstance(content, str) else "chat")
        try:
            self.data = st.counter_state(content or "", self.model, max_tokens=self.max_tokens,
                                         mode=mode, count=self._count, tools=self._tools)
        except GptmagicError as exc:
            self.data = st.error_counter_state(self.model, str(exc), mode)
        except Exception as exc:  # noqa: BLE001 - an observer must not raise into the kernel
            self.data = st.error_counter_state(self.model, f"{type(exc).__name__}: {exc}", mode)

    def to_html(self) -> str:
        return static.counter_html(self.data)

    def to_text(self) -> str:
        return static.counter_text(self.data)

    def _summary(self) -> str:
        if self.data.get("error"):
            return f"{self.model}: error"
        return f"{self.model}: {self.data.get('total', 0)} tokens"


class TokenView(_StateWidget):
    """A text cut into tokens, under one model or encoding or two side by side."""

    _esm = esm_source("tokenview")

    def __init__(self, text: str, *, model: str, compare: str | None = None,
                 engine_tokens: st.EngineTokens | None = None, **kwargs: Any) -> None:
        names = [model] + ([compare] if compare else [])
        super().__init__(data=st.tokenview_state(text, names, engine_tokens=engine_tokens),
                         **kwargs)

    def to_html(self) -> str:
        return static.tokenview_html(self.data)

    def to_text(self) -> str:
        return static.tokenview_text(self.data)

    def _summary(self) -> str:
        return ", ".join(f"{p['label']}: {p['count']} tokens" for p in self.data.get("panes", []))


class LogprobHeatmap(_StateWidget):
    """Tokens coloured by probability, with their top-k alternatives on hover or focus."""

    _esm = esm_source("heatmap")

    def __init__(self, result: Any, *, threshold: float = 0.1, **kwargs: Any) -> None:
        super().__init__(data=st.heatmap_state(result, threshold=threshold), **kwargs)

    def to_html(self) -> str:
        return static.heatmap_html(self.data)

    def to_text(self) -> str:
        return static.heatmap_text(self.data)

    def _summary(self) -> str:
        choices = self.data.get("choices", [])
        return f"{len(choices)} choice(s), {sum(len(c['t']) for c in choices)} tokens"
