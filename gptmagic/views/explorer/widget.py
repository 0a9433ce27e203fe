"""The explorer and the call panel as anywidgets (one ES module draws both kinds)."""

from __future__ import annotations

from typing import Any

from gptmagic.views.explorer import state as st
from gptmagic.views.explorer import static
from gptmagic.views.widgets.views import _StateWidget, esm_source

__all__ = ["CallPanel", "Explorer"]


class Explorer(_StateWidget):
    """An evaluation as cases × variants: colours by score, filters, a side panel, a diff.

    Built by :func:`gptmagic.views.explorer.explore`. With ``data["mode"] == "ask"``
    (details too big to ship at once) the front end asks for one cell's detail with
    a custom message ``{"type": "detail", "id": n}`` and gets ``{"type": "detail",
    "id": n, "detail": {...}}`` back.
    """

    _esm = esm_source("explorer")

    def __init__(self, results: Any, data: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(data=data, **kwargs)
        self._results = results
        self.on_msg(self._on_custom)

    def _on_custom(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "detail":
            return
        i = content.get("id")
        reply: dict[str, Any] = {"type": "detail", "id": i}
        try:
            if not isinstance(i, int) or not 0 <= i < len(self._results.df):
                raise IndexError(f"no row {i!r}")
            reply["detail"] = self.detail(i)
        except Exception as exc:  # noqa: BLE001 - a handler must not raise into the kernel
            reply["error"] = f"{type(exc).__name__}: {exc}"
        self.send(reply)

    def detail(self, i: int) -> dict[str, Any]:
        """The panel's detail of df row ``i`` (with its cell's repeats, if several)."""
        d = st.detail_state(st.cell_detail(self._results, i,
                                           threshold=self.data.get("threshold", 0.5)))
        cell = next((c for c in self.data.get("cells", []) if c[2] == i), None)
        if cell is not None and cell[8] > 1:
            df = self._results.df.reset_index(drop=True)
            mask = (df["row"] == df["row"][i]) & (df[self.data["group_cols"]].astype(str) ==
                                                   df[self.data["group_cols"]].astype(str)
                                                   .iloc[i]).all(axis=1)
            d["repeats"] = st.repeat_list(df.to_dict(orient="records"),
                                          [int(k) for k in df.index[mask]])
        return d

    def to_html(self) -> str:
        return static.explorer_html(self.data)

    def to_text(self) -> str:
        return static.explorer_text(self.data)

    def _fallback_html(self) -> str:
        return static.fallback_html(self.data)

    def _summary(self) -> str:
        data = self.data
        return f"{len(data.get('cases', []))} cases × {len(data.get('variants', []))} variants"


class CallPanel(_StateWidget):
    """One call's detail (the explorer's side panel), standalone: request, reply, usage,
    cost, latency, scores with explanations, the logprob heatmap.

    ``detail`` is the dict of issue 17's contract (a logged call's, or
    :func:`gptmagic.views.explorer.state.cell_detail`'s)."""

    _esm = esm_source("explorer")

    def __init__(self, detail: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(data=st.call_state(detail), **kwargs)

    def to_html(self) -> str:
        return static.call_html(self.data)

    def to_text(self) -> str:
        return static.call_text(self.data)

    def _summary(self) -> str:
        return str(self.data.get("detail", {}).get("model") or "")
