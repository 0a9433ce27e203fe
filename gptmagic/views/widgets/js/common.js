// gptmagic widgets: code shared by the views (counter.js, heatmap.js, tokenview.js).
// Not a module of its own: anywidget loads each widget's `_esm` from a blob URL,
// where a relative import cannot reach this file, so gptmagic/widgets/views.py
// (esm_source) ships each view as this text followed by the view's own file.
// Hence plain top-level declarations, no imports or exports; the view that
// follows uses these names directly and keeps `export default { render }`.
// Model text is data: DOM is built with createElement/textContent only, never innerHTML.

function h(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Why a view cannot draw `data` (no state yet, or another kind or version), or null.
function refusal(data, kind, version) {
  if (!data || typeof data !== "object") return "gptmagic: no state to draw yet.";
  if (data.v !== version || data.kind !== kind) {
    return `gptmagic: cannot draw this state (kind ${String(data.kind)}, version ${String(data.v)}; `
      + `this view draws ${kind} v${version}). Are gptmagic and its front end the same version?`;
  }
  return null;
}

// A view redrawn whole from `data` on every change: `drawInto(root, data)` fills a
// fresh `<div class="gm-root cls">` and returns its cleanup (or null), which runs
// before the next draw and when the view closes. Returns render()'s cleanup.
function stateView(model, el, cls, kind, version, drawInto) {
  let cleanup = null;
  const draw = () => {
    if (cleanup) cleanup();
    cleanup = null;
    const root = h("div", `gm-root ${cls}`);
    const data = model.get("data");
    const why = refusal(data, kind, version);
    if (why) root.append(h("div", "gm-refuse", why));
    else cleanup = drawInto(root, data);
    el.replaceChildren(root);
  };
  draw();
  model.on("change:data", draw);
  return () => {
    model.off("change:data", draw);
    if (cleanup) cleanup();
    el.replaceChildren();
  };
}

// ---- token pieces ----

// A list of pieces as strings (null and undefined as "").
function strings(list) {
  return Array.isArray(list) ? list.map((x) => (typeof x === "string" ? x : String(x ?? ""))) : [];
}

// The state's `partial` pairs [index, hex] (bytes of an incomplete character) as a Map.
function partialMap(list) {
  const partial = new Map();
  if (Array.isArray(list)) {
    for (const p of list) if (Array.isArray(p)) partial.set(Number(p[0]), String(p[1]));
  }
  return partial;
}

function visible(s) {
  // Whitespace and control characters made visible for tooltips and chips.
  return String(s).replace(/[\u0000-\u001f\u007f ]/g, (c) => {
    if (c === " ") return "·";
    if (c === "\t") return "→";
    if (c === "\n") return "↵";
    if (c === "\r") return "␍";
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
}

// A token as a tooltip or chip names it: its hex bytes if partial, else its visible text.
function tokenLabel(piece, hex) {
  return hex !== undefined ? `‹${hex}›` : visible(piece);
}

// A token's text into its span: hex bytes of a partial character, ∅ for an empty
// piece, and a faint ↵ before each line break (a lone one would be invisible and
// unhoverable).
function fillPlain(span, piece, hex) {
  if (hex !== undefined) {
    span.append(h("span", "gm-hex", hex));
  } else if (piece === "") {
    span.append(h("span", "gm-hex", "∅"));
  } else if (piece.indexOf("\n") < 0) {
    span.textContent = piece;
  } else {
    const parts = piece.split("\n");
    parts.forEach((part, k) => {
      if (part) span.append(part);
      if (k < parts.length - 1) span.append(h("span", "gm-ws", "↵"), "\n");
    });
  }
}

// ---- tooltip placement: fully visible, inside the widget and the viewport ----

// The hidden tooltip and the spacer that grows the widget to make room for it.
function tipParts() {
  const tip = h("div", "gm-tip");
  tip.hidden = true;
  tip.setAttribute("role", "tooltip");
  return [tip, h("div", "gm-spacer")];
}

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

// ---- hover, focus and keys over token texts ----

// One tooltip for the token under the pointer (else the focused one); a roving tab
// stop per text (`v.active`); arrow keys, Home and End move, Escape hides; the
// tooltip follows its token while a text scrolls and hides when it leaves the view.
// Listeners are delegated: one set on `box`, a scroll listener on each of `texts`.
//   locate(node) -> {v, i} for a token node (v: {spans, text, active}), else null
//   fill(v, i)   -> writes the tooltip's contents for token i
//   lineStep(v, i, dir) -> the token a line down (dir 1) or up (-1); default: the next/previous
// Returns {focus(v, i), activate(v, i), reset(), hide(), destroy()}.
function tokenNav({ root, box, texts, tip, spacer, locate, fill, lineStep }) {
  let hovered = null;
  const hide = () => {
    tip.hidden = true;
  };
  const show = (v, i) => {
    fill(v, i);
    placeTip(tip, v.spans[i], root, spacer);
  };
  const activate = (v, i) => {
    if (v.active === i) return;
    if (v.active >= 0 && v.spans[v.active]) v.spans[v.active].tabIndex = -1;
    v.active = i;
    v.spans[i].tabIndex = 0;
  };
  const focus = (v, i) => {
    const span = v.spans[i];
    if (!span) return;
    activate(v, i);
    span.scrollIntoView({ block: "nearest", inline: "nearest" });
    span.focus({ preventScroll: true });
  };
  const step = lineStep || ((v, i, dir) => Math.max(0, Math.min(v.spans.length - 1, i + dir)));

  const onOver = (ev) => {
    const hit = locate(ev.target);
    if (!hit || (hovered && hovered.v === hit.v && hovered.i === hit.i)) return;
    hovered = hit;
    show(hit.v, hit.i);
  };
  const onOut = (ev) => {
    if (locate(ev.relatedTarget)) return;
    hovered = null;
    const f = locate(document.activeElement);
    if (f) show(f.v, f.i);
    else hide();
  };
  const onFocusIn = (ev) => {
    const hit = locate(ev.target);
    if (!hit) return;
    activate(hit.v, hit.i);
    show(hit.v, hit.i);
  };
  const onFocusOut = (ev) => {
    if (locate(ev.relatedTarget)) return;
    if (!hovered) hide();
  };
  const onKey = (ev) => {
    const hit = locate(ev.target);
    if (!hit) return;
    const { v, i } = hit;
    const n = v.spans.length;
    let j = -1;
    if (ev.key === "ArrowRight") j = Math.min(n - 1, i + 1);
    else if (ev.key === "ArrowLeft") j = Math.max(0, i - 1);
    else if (ev.key === "ArrowDown") j = step(v, i, 1);
    else if (ev.key === "ArrowUp") j = step(v, i, -1);
    else if (ev.key === "Home") j = 0;
    else if (ev.key === "End") j = n - 1;
    else if (ev.key === "Escape") hide();
    if (j < 0) return;
    ev.preventDefault();
    focus(v, j);
  };
  const onScroll = () => {
    // Keep the tooltip on its token while it stays in view; hide it otherwise.
    if (tip.hidden) return;
    const hit = hovered || locate(document.activeElement);
    const span = hit && hit.v.spans[hit.i];
    const r = span && span.getBoundingClientRect();
    const bounds = span && hit.v.text.getBoundingClientRect();
    if (r && r.bottom > bounds.top && r.top < bounds.bottom) placeTip(tip, span, root, spacer);
    else {
      hovered = null;
      hide();
    }
  };
  const on = [["mouseover", onOver], ["mouseout", onOut], ["focusin", onFocusIn],
    ["focusout", onFocusOut], ["keydown", onKey]];
  for (const [type, fn] of on) box.addEventListener(type, fn);
  for (const t of texts) t.addEventListener("scroll", onScroll, { passive: true });
  return {
    focus,
    activate,
    hide,
    reset() {
      hovered = null;
      hide();
    },
    destroy() {
      for (const [type, fn] of on) box.removeEventListener(type, fn);
      for (const t of texts) t.removeEventListener("scroll", onScroll);
    },
  };
}
