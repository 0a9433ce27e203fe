// gptmagic token view: draws a "tokens" state (docs/widgets.md).
// Plain ES module, no imports. Model text is data: DOM is built with
// createElement/textContent only, never innerHTML.

const KIND = "tokens";
const VERSION = 1;

function h(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function refusal(data) {
  if (!data || typeof data !== "object") return "gptmagic: no state to draw yet.";
  if (data.v !== VERSION || data.kind !== KIND) {
    return `gptmagic: cannot draw this state (kind ${String(data.kind)}, version ${String(data.v)}; `
      + `this view draws ${KIND} v${VERSION}). Are gptmagic and its front end the same version?`;
  }
  return null;
}

function visible(s) {
  return String(s).replace(/[\u0000-\u001f\u007f ]/g, (c) => {
    if (c === " ") return "·";
    if (c === "\t") return "→";
    if (c === "\n") return "↵";
    if (c === "\r") return "␍";
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
}

// Tooltip placement: the same rules as the heatmap's (inside the widget and the viewport).
function clipRect(node) {
  // The viewport intersected with every ancestor that clips: overflow other than
  // visible, or paint containment (JupyterLab's panels use contain: strict). The
  // body's overflow applies to the viewport, so the walk stops below it.
  let r = { left: 0, top: 0, right: document.documentElement.clientWidth || window.innerWidth,
    bottom: window.innerHeight };
  for (let a = node.parentElement; a && a !== document.body && a !== document.documentElement;
    a = a.parentElement) {
    const cs = getComputedStyle(a);
    if (cs.overflowX !== "visible" || cs.overflowY !== "visible" || /paint|strict|content/.test(cs.contain || "")) {
      const b = a.getBoundingClientRect();
      r = { left: Math.max(r.left, b.left), top: Math.max(r.top, b.top),
        right: Math.min(r.right, b.right), bottom: Math.max(Math.min(r.bottom, b.bottom), r.top) };
    }
  }
  return r;
}

function placeTip(tip, anchor, root, spacer) {
  const GAP = 4;
  const M = 4;
  tip.style.left = "0px";
  tip.style.top = "0px";
  tip.hidden = false;
  const w = tip.offsetWidth;
  const th = tip.offsetHeight;
  // A token wrapped over two lines has several boxes: go below its last, above its first.
  const boxes = () => {
    const list = anchor.getClientRects();
    return list.length ? [list[0], list[list.length - 1]] : [anchor.getBoundingClientRect(), anchor.getBoundingClientRect()];
  };
  let [first, last] = boxes();
  let rr = root.getBoundingClientRect();
  // Output areas clip overflow: grow the widget (a spacer at its bottom) so a
  // tooltip below the token stays inside it.
  const need = last.bottom + GAP + th + M - rr.bottom;
  if (need > 0) {
    spacer.style.height = `${spacer.offsetHeight + Math.ceil(need)}px`;
    [first, last] = boxes();
    rr = root.getBoundingClientRect();
  }
  const clip = clipRect(root);
  const below = last.bottom + GAP;
  const above = first.top - GAP - th;
  const fitsBelow = below + th <= clip.bottom - M;
  const fitsAbove = above >= Math.max(clip.top, rr.top) + M;
  let top;
  if (fitsBelow) top = below;
  else if (fitsAbove) top = above;
  else top = clip.bottom - last.bottom >= first.top - clip.top ? below : Math.max(above, rr.top);
  const x = top === below ? last.left : first.left;
  const lo = Math.max(clip.left, rr.left) + M;
  const hi = Math.min(clip.right, rr.right) - M - w;
  tip.style.left = `${Math.round(Math.max(lo, Math.min(x, hi)) - rr.left)}px`;
  tip.style.top = `${Math.round(top - rr.top)}px`;
  tip.dataset.side = top === below ? "below" : "above";
}

function render({ model, el }) {
  const ui = { ws: false, cleanup: null };
  const draw = () => {
    if (ui.cleanup) ui.cleanup();
    ui.cleanup = null;
    const root = h("div", "gm-root gm-tokenview");
    const data = model.get("data");
    const why = refusal(data);
    if (why) root.append(h("div", "gm-refuse", why));
    else ui.cleanup = drawTokens(root, data, ui);
    el.replaceChildren(root);
  };
  draw();
  model.on("change:data", draw);
  return () => {
    model.off("change:data", draw);
    if (ui.cleanup) ui.cleanup();
    el.replaceChildren();
  };
}

function fillPiece(span, piece, hex, ws) {
  span.replaceChildren();
  if (hex !== undefined) {
    span.append(h("span", "gm-hex", hex));
    return;
  }
  if (piece === "") {
    span.append(h("span", "gm-hex", "∅"));
    return;
  }
  if (!ws) {
    if (piece.indexOf("\n") < 0) {
      span.textContent = piece;
      return;
    }
    // A lone line break would be invisible (and unhoverable): mark it faintly.
    const parts = piece.split("\n");
    parts.forEach((part, k) => {
      if (part) span.append(part);
      if (k < parts.length - 1) span.append(h("span", "gm-ws", "↵"), "\n");
    });
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
  const tip = h("div", "gm-tip");
  tip.hidden = true;
  tip.setAttribute("role", "tooltip");
  const spacer = h("div", "gm-spacer");
  root.append(bar, grid, tip, spacer);
  if (!panes.length) grid.append(h("div", "gm-refuse", "No tokens to draw."));

  const views = [];
  panes.forEach((pane, k) => {
    const box = h("div", "gm-pane");
    box.dataset.pane = String(k);
    const head = h("div", "gm-pane-head");
    const pieces = Array.isArray(pane.pieces) ? pane.pieces.map((x) => (typeof x === "string" ? x : String(x ?? ""))) : [];
    const ids = Array.isArray(pane.ids) ? pane.ids : [];
    const count = typeof pane.count === "number" ? pane.count : pieces.length;
    head.append(h("span", "gm-pane-label", pane.label ?? pane.model ?? `pane ${k + 1}`));
    const cnt = h("span", "gm-count", `${count.toLocaleString("en-US")} token${count === 1 ? "" : "s"}`);
    cnt.dataset.count = String(count);
    head.append(cnt);
    if (pane.exact === false) head.append(h("span", "gm-badge", "approximate"));
    if (pane.note) head.append(h("span", "gm-note gm-pane-note", String(pane.note)));
    const partial = new Map();
    if (Array.isArray(pane.partial)) {
      for (const p of pane.partial) if (Array.isArray(p)) partial.set(Number(p[0]), String(p[1]));
    }
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

  function showTip(v, i) {
    tip.replaceChildren();
    const hex = v.partial.get(i);
    const head = h("div", "gm-tip-head");
    head.append(h("span", "gm-tip-tok", hex !== undefined ? `‹${hex}›` : visible(v.pieces[i])));
    head.append(h("span", "gm-muted", `#${i}`));
    tip.append(head);
    const id = v.ids[i];
    tip.append(h("div", "gm-tip-line", `id ${id === undefined || id === null ? "–" : String(id)}`));
    if (hex !== undefined) tip.append(h("div", "gm-tip-line", `bytes ${hex}: part of a character`));
    placeTip(tip, v.spans[i], root, spacer);
  }
  const hideTip = () => {
    tip.hidden = true;
  };

  let hovered = null;
  const onOver = (ev) => {
    const hit = locate(ev.target);
    if (!hit || (hovered && hovered.v === hit.v && hovered.i === hit.i)) return;
    hovered = hit;
    showTip(hit.v, hit.i);
  };
  const onOut = (ev) => {
    if (locate(ev.relatedTarget)) return;
    hovered = null;
    const f = locate(document.activeElement);
    if (f) showTip(f.v, f.i);
    else hideTip();
  };
  const onFocusIn = (ev) => {
    const hit = locate(ev.target);
    if (!hit) return;
    if (hit.v.active >= 0 && hit.v.spans[hit.v.active]) hit.v.spans[hit.v.active].tabIndex = -1;
    hit.v.active = hit.i;
    hit.v.spans[hit.i].tabIndex = 0;
    showTip(hit.v, hit.i);
  };
  const onFocusOut = (ev) => {
    if (locate(ev.relatedTarget)) return;
    if (!hovered) hideTip();
  };
  const onKey = (ev) => {
    const hit = locate(ev.target);
    if (!hit) return;
    const n = hit.v.spans.length;
    let j = -1;
    if (ev.key === "ArrowRight" || ev.key === "ArrowDown") j = Math.min(n - 1, hit.i + 1);
    else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp") j = Math.max(0, hit.i - 1);
    else if (ev.key === "Home") j = 0;
    else if (ev.key === "End") j = n - 1;
    else if (ev.key === "Escape") hideTip();
    if (j < 0) return;
    ev.preventDefault();
    hit.v.spans[j].scrollIntoView({ block: "nearest", inline: "nearest" });
    hit.v.spans[j].focus({ preventScroll: true });
  };
  const onScroll = () => {
    // Keep the tooltip on its token while it stays in view; hide it otherwise.
    if (tip.hidden) return;
    const hit = hovered || locate(document.activeElement);
    const r = hit && hit.v.spans[hit.i].getBoundingClientRect();
    const box = hit && hit.v.text.getBoundingClientRect();
    if (r && r.bottom > box.top && r.top < box.bottom) placeTip(tip, hit.v.spans[hit.i], root, spacer);
    else {
      hovered = null;
      hideTip();
    }
  };
  const onToggle = () => {
    ui.ws = wsBox.checked;
    root.classList.toggle("gm-show-ws", ui.ws);
    for (const v of views) {
      for (let i = 0; i < v.spans.length; i += 1) fillPiece(v.spans[i], v.pieces[i], v.partial.get(i), ui.ws);
    }
    hideTip();
  };
  root.classList.toggle("gm-show-ws", ui.ws);
  grid.addEventListener("mouseover", onOver);
  grid.addEventListener("mouseout", onOut);
  grid.addEventListener("focusin", onFocusIn);
  grid.addEventListener("focusout", onFocusOut);
  grid.addEventListener("keydown", onKey);
  for (const v of views) v.text.addEventListener("scroll", onScroll, { passive: true });
  wsBox.addEventListener("change", onToggle);
  return () => {
    grid.removeEventListener("mouseover", onOver);
    grid.removeEventListener("mouseout", onOut);
    grid.removeEventListener("focusin", onFocusIn);
    grid.removeEventListener("focusout", onFocusOut);
    grid.removeEventListener("keydown", onKey);
    for (const v of views) v.text.removeEventListener("scroll", onScroll);
    wsBox.removeEventListener("change", onToggle);
  };
}

export default { render };
