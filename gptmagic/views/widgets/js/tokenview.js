// gptmagic token view: draws a "tokens" state (docs/widgets.md).
// Shipped after common.js (h, stateView, tokenNav, ...: see views.esm_source).

const KIND = "tokens";
const VERSION = 1;

function render({ model, el }) {
  const ui = { ws: false };
  return stateView(model, el, "gm-tokenview", KIND, VERSION, (root, data) => drawTokens(root, data, ui));
}

function fillPiece(span, piece, hex, ws) {
  span.replaceChildren();
  if (!ws || hex !== undefined || piece === "") {
    fillPlain(span, piece, hex);
    return;
  }
  // Show whitespace: · for a space, → for a tab, ↵ before a line break.
  let run = "";
  const flush = () => {
    if (run) span.append(run);
    run = "";
  };
  for (const ch of piece) {
    if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r") {
      flush();
      const mark = ch === " " ? "·" : ch === "\t" ? "→" : ch === "\n" ? "↵" : "␍";
      span.append(h("span", "gm-ws", mark));
      if (ch === "\n") span.append("\n");
      else if (ch === "\t") span.append("\t");
    } else {
      run += ch;
    }
  }
  flush();
}

function drawTokens(root, data, ui) {
  const panes = Array.isArray(data.panes) ? data.panes.filter((p) => p && typeof p === "object") : [];
  const bar = h("div", "gm-bar");
  const wsLabel = h("label", "gm-group");
  const wsBox = h("input");
  wsBox.type = "checkbox";
  wsBox.checked = ui.ws;
  wsBox.className = "gm-ws-toggle";
  wsLabel.append(wsBox, "show whitespace");
  bar.append(wsLabel);
  const grid = h("div", `gm-panes${panes.length === 2 ? " gm-two" : ""}`);
  const [tip, spacer] = tipParts();
  root.append(bar, grid, tip, spacer);
  if (!panes.length) grid.append(h("div", "gm-refuse", "No tokens to draw."));

  const views = [];
  panes.forEach((pane, k) => {
    const box = h("div", "gm-pane");
    box.dataset.pane = String(k);
    const head = h("div", "gm-pane-head");
    const pieces = strings(pane.pieces);
    const ids = Array.isArray(pane.ids) ? pane.ids : [];
    const count = typeof pane.count === "number" ? pane.count : pieces.length;
    head.append(h("span", "gm-pane-label", pane.label ?? pane.model ?? `pane ${k + 1}`));
    const cnt = h("span", "gm-count", `${count.toLocaleString("en-US")} token${count === 1 ? "" : "s"}`);
    cnt.dataset.count = String(count);
    head.append(cnt);
    if (pane.exact === false) head.append(h("span", "gm-badge", "approximate"));
    if (pane.note) head.append(h("span", "gm-note gm-pane-note", String(pane.note)));
    const partial = partialMap(pane.partial);
    const text = h("div", "gm-text");
    text.dataset.pane = String(k);
    text.setAttribute("role", "group");
    text.setAttribute("aria-label", `${String(pane.label ?? "")} tokens; arrow keys move between tokens`);
    const frag = document.createDocumentFragment();
    const spans = new Array(pieces.length);
    for (let i = 0; i < pieces.length; i += 1) {
      const span = document.createElement("span");
      span.className = `gm-tok ${i % 2 ? "gm-b" : "gm-a"}${partial.has(i) ? " gm-partial" : ""}`;
      span.dataset.i = String(i);
      span.tabIndex = i === 0 ? 0 : -1;
      // Arrow keys move between tokens, not between Jupyter's cells: Lumino matches
      // shortcuts from the focused element up, so the mark is on each token.
      span.setAttribute("data-lm-suppress-shortcuts", "");
      fillPiece(span, pieces[i], partial.get(i), ui.ws);
      spans[i] = span;
      frag.append(span);
    }
    text.append(frag);
    box.append(head, text);
    grid.append(box);
    views.push({ pane, pieces, ids, partial, spans, text, active: spans.length ? 0 : -1 });
  });

  const locate = (node) => {
    const tok = node && node.closest ? node.closest(".gm-tok") : null;
    if (!tok) return null;
    const text = tok.parentElement;
    const v = views[Number(text && text.dataset.pane)];
    if (!v || v.text !== text) return null;
    return { v, i: Number(tok.dataset.i) };
  };

  const fill = (v, i) => {
    tip.replaceChildren();
    const hex = v.partial.get(i);
    const head = h("div", "gm-tip-head");
    head.append(h("span", "gm-tip-tok", tokenLabel(v.pieces[i], hex)));
    head.append(h("span", "gm-muted", `#${i}`));
    tip.append(head);
    const id = v.ids[i];
    tip.append(h("div", "gm-tip-line", `id ${id === undefined || id === null ? "–" : String(id)}`));
    if (hex !== undefined) tip.append(h("div", "gm-tip-line", `bytes ${hex}: part of a character`));
  };
  const nav = tokenNav({ root, box: grid, texts: views.map((v) => v.text), tip, spacer, locate, fill });

  const onToggle = () => {
    ui.ws = wsBox.checked;
    root.classList.toggle("gm-show-ws", ui.ws);
    for (const v of views) {
      for (let i = 0; i < v.spans.length; i += 1) fillPiece(v.spans[i], v.pieces[i], v.partial.get(i), ui.ws);
    }
    nav.hide();
  };
  root.classList.toggle("gm-show-ws", ui.ws);
  wsBox.addEventListener("change", onToggle);
  return () => {
    nav.destroy();
    wsBox.removeEventListener("change", onToggle);
  };
}

export default { render };
