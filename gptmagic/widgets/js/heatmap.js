// gptmagic logprob heatmap: draws a "heatmap" state (docs/widgets.md).
// Plain ES module, no imports. Model text is data: DOM is built with
// createElement/textContent only, never innerHTML.

const KIND = "heatmap";
const VERSION = 1;
// Matches gptmagic/widgets/_scale.py; used only if a state ships no valid scale.
const DEFAULT_STOPS = ["#000004", "#1d1146", "#50127c", "#822681", "#b63779",
  "#e65164", "#fb8761", "#fec387", "#fcfdbf"].map((c, i) => [i / 8, c]);
const HEX = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;
const LOG_MIN = -4; // threshold slider: log10(p) from 1e-4 ...
const LOG_MAX = 0; // ... to 1

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

// ---- colour scale (same arithmetic as _scale.py, so JS and static HTML agree) ----

function rgb(hex) {
  let s = hex.slice(1);
  if (s.length === 3) s = s.split("").map((c) => c + c).join("");
  return [0, 2, 4].map((k) => parseInt(s.slice(k, k + 2), 16));
}

function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function luminance([r, g, b]) {
  const lin = (c) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

function textOn(bg) {
  const l = luminance(bg);
  const black = (l + 0.05) / 0.05;
  const white = 1.05 / (l + 0.05);
  return black >= white ? "#000" : "#fff";
}

function makeScale(stops) {
  let s = Array.isArray(stops)
    ? stops.filter((x) => Array.isArray(x) && Number.isFinite(x[0]) && typeof x[1] === "string" && HEX.test(x[1]))
    : [];
  if (s.length < 2) s = DEFAULT_STOPS;
  s = s.map(([p, c]) => [p, rgb(c), c]).sort((a, b) => a[0] - b[0]);
  const n = s.length - 1;
  const even = s.every(([p], i) => Math.abs(p - i / n) < 1e-9);
  const cache = new Map();
  const hex2 = (v) => v.toString(16).padStart(2, "0");
  function at(p) {
    let i;
    let frac;
    if (even) {
      i = Math.min(Math.floor(p * n), n - 1);
      frac = p * n - i;
    } else {
      i = 0;
      while (i < n - 1 && p > s[i + 1][0]) i += 1;
      const span = s[i + 1][0] - s[i][0];
      frac = span > 0 ? Math.min(1, Math.max(0, (p - s[i][0]) / span)) : 0;
    }
    const a = s[i][1];
    const b = s[i + 1][1];
    const c = [0, 1, 2].map((k) => roundHalfEven(a[k] + (b[k] - a[k]) * frac));
    return { bg: `#${c.map(hex2).join("")}`, fg: textOn(c) };
  }
  return {
    stops: s,
    colour(prob) {
      const p = Number.isFinite(prob) ? Math.round(Math.min(1, Math.max(0, prob)) * 1e4) / 1e4 : 1;
      let hit = cache.get(p);
      if (!hit) {
        hit = at(p);
        cache.set(p, hit);
      }
      return hit;
    },
  };
}

// ---- formatting ----

function pct(p) {
  if (!Number.isFinite(p)) return "–";
  const v = p * 100;
  if (v >= 99.95 && v < 100) return "99.9%";
  if (v >= 10) return `${v.toFixed(1)}%`;
  if (v >= 0.1) return `${v.toFixed(2)}%`;
  if (v === 0) return "0%";
  return `${v.toPrecision(2)}%`;
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

// ---- tooltip placement: fully visible, inside the widget and the viewport ----

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

// ---- the view ----

function render({ model, el }) {
  const ui = { choice: 0, threshold: null, root: null, cleanup: null };

  const draw = () => {
    if (ui.cleanup) ui.cleanup();
    ui.cleanup = null;
    const root = h("div", "gm-root gm-heatmap");
    const data = model.get("data");
    const why = refusal(data);
    if (why) {
      root.append(h("div", "gm-refuse", why));
    } else {
      ui.cleanup = drawHeatmap(root, data, ui);
    }
    el.replaceChildren(root);
    ui.root = root;
  };

  draw();
  model.on("change:data", draw);
  return () => {
    model.off("change:data", draw);
    if (ui.cleanup) ui.cleanup();
    el.replaceChildren();
  };
}

function drawHeatmap(root, data, ui) {
  const scale = makeScale(data.scale);
  const choices = Array.isArray(data.choices) ? data.choices : [];
  if (!choices.length) {
    root.append(h("div", "gm-refuse", "No logprobs to draw (the state has no choices)."));
    return null;
  }
  if (ui.choice >= choices.length) ui.choice = 0;
  if (ui.threshold === null) {
    const t = Number(data.threshold);
    ui.threshold = Number.isFinite(t) && t > 0 ? Math.min(1, t) : 0.1;
  }

  const bar = h("div", "gm-bar");
  const body = h("div", "gm-hm-body");
  const tip = h("div", "gm-tip");
  tip.hidden = true;
  tip.setAttribute("role", "tooltip");
  tip.id = `gm-tip-${Math.random().toString(36).slice(2)}`;
  const spacer = h("div", "gm-spacer");
  root.append(bar, body, tip, spacer);

  let view = null; // the drawn choice: {spans, lp, nPrompt, ...}

  // Choice switcher.
  let switcher = null;
  if (choices.length > 1) {
    switcher = h("div", "gm-group gm-choices");
    switcher.setAttribute("role", "group");
    switcher.setAttribute("aria-label", "choice");
    switcher.append(h("span", "gm-label", "choice"));
    choices.forEach((c, k) => {
      const b = h("button", "gm-btn", `#${c && c.index !== undefined ? c.index : k}`);
      b.type = "button";
      if (c && c.finish_reason) b.title = `finish reason: ${c.finish_reason}`;
      b.dataset.choice = String(k);
      b.addEventListener("click", () => {
        ui.choice = k;
        drawChoice();
      });
      switcher.append(b);
    });
    bar.append(switcher);
  }

  // Threshold control: a log-scale slider.
  const thr = h("label", "gm-group gm-threshold");
  const slider = h("input");
  slider.type = "range";
  slider.min = String(LOG_MIN);
  slider.max = String(LOG_MAX);
  slider.step = "0.01";
  slider.setAttribute("aria-label", "outline tokens with probability below");
  const out = h("output");
  const count = h("span", "gm-count");
  thr.append(h("span", "gm-label", "outline p <"), slider, out);
  bar.append(thr, count);
  const setSlider = () => {
    slider.value = String(Math.max(LOG_MIN, Math.min(LOG_MAX, Math.log10(ui.threshold))));
  };
  setSlider();
  const onSlide = () => {
    ui.threshold = 10 ** Number(slider.value);
    applyThreshold();
  };
  slider.addEventListener("input", onSlide);

  function applyThreshold() {
    out.textContent = pct(ui.threshold);
    if (!view) return;
    const cut = Math.log(ui.threshold);
    let below = 0;
    const { spans, lp, nPrompt } = view;
    for (let i = 0; i < spans.length; i += 1) {
      const v = lp[i];
      const on = i >= nPrompt && typeof v === "number" && v < cut;
      if (on) below += 1;
      if (spans[i].classList.contains("gm-below") !== on) spans[i].classList.toggle("gm-below", on);
    }
    count.textContent = `${below} of ${view.scored} generated token${view.scored === 1 ? "" : "s"} below`;
    count.dataset.below = String(below);
    if (legendMark) legendMark.style.left = `${Math.min(100, ui.threshold * 100)}%`;
  }

  // Legend.
  const legend = h("div", "gm-legend");
  const scaleBox = h("div", "gm-legend-scale");
  const grad = h("div", "gm-legend-bar");
  grad.style.background = `linear-gradient(to right, ${scale.stops
    .map(([p, , c]) => `${c} ${(p * 100).toFixed(2)}%`).join(", ")})`;
  scaleBox.append(grad);
  [0, 0.25, 0.5, 0.75, 1].forEach((p, k, all) => {
    const tick = h("span", "gm-legend-tick");
    tick.style.left = `${p * 100}%`;
    const lab = h("span", `gm-legend-lab${k === 0 ? " gm-first" : ""}${k === all.length - 1 ? " gm-last" : ""}`,
      p === 0 ? "p = 0" : `${p * 100}%`);
    lab.style.left = `${p * 100}%`;
    scaleBox.append(tick, lab);
  });
  const legendMark = h("span", "gm-legend-mark");
  legendMark.title = "threshold";
  scaleBox.append(legendMark);
  const keyBelow = h("span", "gm-legend-key");
  keyBelow.append(h("span", "gm-swatch gm-sw-below"), "below threshold");
  const keyPrompt = h("span", "gm-legend-key");
  keyPrompt.append(h("span", "gm-swatch gm-sw-prompt", "abc"), "echoed prompt (not scored)");
  legend.append(scaleBox, keyBelow, keyPrompt);

  // Tooltip contents.
  function showTip(i, anchor) {
    const c = view.choice;
    const lpv = view.lp[i];
    const piece = view.t[i];
    const hex = view.partial.get(i);
    tip.replaceChildren();
    const head = h("div", "gm-tip-head");
    head.append(h("span", "gm-tip-tok", hex !== undefined ? `‹${hex}›` : visible(piece)));
    if (i < view.nPrompt) head.append(h("span", "gm-badge", "prompt"));
    head.append(h("span", "gm-muted", `#${i}`));
    tip.append(head);
    if (typeof lpv === "number") {
      tip.append(h("div", "gm-tip-line", `p = ${pct(Math.exp(lpv))} · logprob ${lpv.toFixed(4)}`));
    } else {
      tip.append(h("div", "gm-tip-line", "no logprob at this position"));
    }
    if (hex !== undefined) tip.append(h("div", "gm-tip-line", `bytes ${hex}: part of a character`));
    const alts = Array.isArray(c.top) && Array.isArray(c.top[i]) ? c.top[i] : [];
    if (alts.length) {
      const table = h("table", "gm-alts");
      let cover = 0;
      for (const alt of alts) {
        if (!Array.isArray(alt)) continue;
        const ap = typeof alt[1] === "number" ? Math.exp(alt[1]) : NaN;
        if (Number.isFinite(ap)) cover += ap;
        const tr = h("tr");
        if (alt[0] === piece && hex === undefined) tr.className = "gm-chosen";
        const tdTok = h("td", "gm-alt-tok", visible(alt[0]));
        const tdBar = h("td", "gm-alt-barcell");
        const b = h("div", "gm-alt-bar");
        b.style.width = `${Number.isFinite(ap) ? Math.max(0.5, ap * 100) : 0}%`;
        tdBar.append(b);
        tr.append(tdTok, tdBar, h("td", "gm-alt-p", pct(ap)));
        table.append(tr);
      }
      tip.append(table);
      tip.append(h("div", "gm-coverage", `top-${alts.length} cover ${pct(Math.min(1, cover))}`));
    } else {
      tip.append(h("div", "gm-tip-line", "no alternatives at this position"));
    }
    anchor.setAttribute("aria-describedby", tip.id);
    placeTip(tip, anchor, root, spacer);
  }

  function hideTip() {
    tip.hidden = true;
  }

  // The token text and its listeners (delegated: one per widget, not per token).
  const text = h("div", "gm-text");
  text.setAttribute("role", "group");
  text.setAttribute("aria-label", "tokens coloured by probability; arrow keys move between tokens");
  // Arrow keys here move between tokens, not between Jupyter's cells (see drawChoice).
  text.setAttribute("data-lm-suppress-shortcuts", "");
  let hovered = -1;
  let active = -1; // the token with tabindex=0 (roving tab stop)

  const indexOf = (node) => {
    const tok = node && node.closest ? node.closest(".gm-tok") : null;
    return tok && text.contains(tok) ? Number(tok.dataset.i) : -1;
  };
  const focusedIndex = () => (text.contains(document.activeElement) ? indexOf(document.activeElement) : -1);

  const onOver = (ev) => {
    const i = indexOf(ev.target);
    if (i < 0 || i === hovered) return;
    hovered = i;
    showTip(i, view.spans[i]);
  };
  const onOut = (ev) => {
    if (ev.relatedTarget && text.contains(ev.relatedTarget) && indexOf(ev.relatedTarget) >= 0) return;
    hovered = -1;
    const f = focusedIndex();
    if (f >= 0) showTip(f, view.spans[f]);
    else hideTip();
  };
  const onFocusIn = (ev) => {
    const i = indexOf(ev.target);
    if (i < 0) return;
    setActive(i);
    showTip(i, view.spans[i]);
  };
  const onFocusOut = (ev) => {
    if (ev.relatedTarget && text.contains(ev.relatedTarget)) return;
    if (hovered < 0) hideTip();
  };
  const onKey = (ev) => {
    const i = indexOf(ev.target);
    if (i < 0) return;
    const n = view.spans.length;
    let j = -1;
    if (ev.key === "ArrowRight") j = Math.min(n - 1, i + 1);
    else if (ev.key === "ArrowLeft") j = Math.max(0, i - 1);
    else if (ev.key === "ArrowDown") j = lineStep(i, 1);
    else if (ev.key === "ArrowUp") j = lineStep(i, -1);
    else if (ev.key === "Home") j = 0;
    else if (ev.key === "End") j = n - 1;
    else if (ev.key === "Escape") {
      hideTip();
      return;
    }
    if (j < 0) return;
    ev.preventDefault();
    focusToken(j);
  };
  text.addEventListener("mouseover", onOver);
  text.addEventListener("mouseout", onOut);
  text.addEventListener("focusin", onFocusIn);
  text.addEventListener("focusout", onFocusOut);
  text.addEventListener("keydown", onKey);
  const onScroll = () => {
    // Keep the tooltip on its token while it stays in view; hide it otherwise.
    if (tip.hidden) return;
    const i = hovered >= 0 ? hovered : focusedIndex();
    const span = i >= 0 ? view.spans[i] : null;
    const r = span && span.getBoundingClientRect();
    const box = text.getBoundingClientRect();
    if (r && r.bottom > box.top && r.top < box.bottom) placeTip(tip, span, root, spacer);
    else {
      hovered = -1;
      hideTip();
    }
  };
  text.addEventListener("scroll", onScroll, { passive: true });

  function setActive(i) {
    if (active === i) return;
    if (active >= 0 && view.spans[active]) view.spans[active].tabIndex = -1;
    active = i;
    view.spans[i].tabIndex = 0;
  }

  function focusToken(i) {
    const span = view.spans[i];
    if (!span) return;
    setActive(i);
    span.scrollIntoView({ block: "nearest", inline: "nearest" });
    span.focus({ preventScroll: true });
  }

  function lineStep(i, dir) {
    // The token on the next/previous visual line closest in x.
    const spans = view.spans;
    const r0 = spans[i].getBoundingClientRect();
    const x = r0.left + r0.width / 2;
    let j = i + dir;
    const sameLine = (r, ref) => Math.abs(r.top - ref.top) < ref.height / 2;
    while (j >= 0 && j < spans.length && sameLine(spans[j].getBoundingClientRect(), r0)) j += dir;
    if (j < 0 || j >= spans.length) return i;
    const ref = spans[j].getBoundingClientRect();
    let best = j;
    let bestD = Infinity;
    for (; j >= 0 && j < spans.length; j += dir) {
      const r = spans[j].getBoundingClientRect();
      if (!sameLine(r, ref)) break;
      const d = Math.abs(r.left + r.width / 2 - x);
      if (d < bestD) {
        bestD = d;
        best = j;
      }
    }
    return best;
  }

  // Summary (generated tokens only).
  const summary = h("div", "gm-summary");

  function drawChoice() {
    const c = choices[ui.choice] || {};
    if (switcher) {
      switcher.querySelectorAll("button").forEach((b) => {
        b.setAttribute("aria-pressed", String(Number(b.dataset.choice) === ui.choice));
      });
    }
    const t = Array.isArray(c.t) ? c.t.map((x) => (typeof x === "string" ? x : String(x ?? ""))) : [];
    const lp = Array.isArray(c.lp) ? c.lp : [];
    const nPrompt = Math.max(0, Math.min(t.length, Number(c.n_prompt) || 0));
    const partial = new Map();
    if (Array.isArray(c.partial)) {
      for (const p of c.partial) if (Array.isArray(p)) partial.set(Number(p[0]), String(p[1]));
    }
    const frag = document.createDocumentFragment();
    const spans = new Array(t.length);
    let scored = 0;
    for (let i = 0; i < t.length; i += 1) {
      if (i === nPrompt && nPrompt > 0) frag.append(h("span", "gm-sep", "▸"));
      const span = document.createElement("span");
      let cls = "gm-tok";
      const v = lp[i];
      if (typeof v === "number") {
        const col = scale.colour(Math.exp(v));
        span.style.background = col.bg;
        span.style.color = col.fg;
        if (i >= nPrompt) scored += 1;
      } else {
        cls += " gm-nolp";
      }
      if (i < nPrompt) cls += " gm-prompt";
      span.className = cls;
      span.dataset.i = String(i);
      span.tabIndex = -1;
      // Lumino matches shortcuts from the focused element up; the mark must be on it.
      span.setAttribute("data-lm-suppress-shortcuts", "");
      const hex = partial.get(i);
      const piece = t[i];
      if (hex !== undefined) {
        span.classList.add("gm-partial");
        span.append(h("span", "gm-hex", hex));
      } else if (piece === "") {
        span.append(h("span", "gm-hex", "∅"));
      } else if (piece.indexOf("\n") >= 0) {
        const parts = piece.split("\n");
        parts.forEach((part, k) => {
          if (part) span.append(part);
          if (k < parts.length - 1) span.append(h("span", "gm-ws", "↵"), "\n");
        });
      } else {
        span.textContent = piece;
      }
      spans[i] = span;
      frag.append(span);
    }
    text.replaceChildren(frag);
    view = { choice: c, t, lp, nPrompt, partial, spans, scored };
    hovered = -1;
    active = -1;
    if (spans.length) setActive(0);
    hideTip();
    spacer.style.height = "0px";
    applyThreshold();
    drawSummary(c);
  }

  function drawSummary(c) {
    summary.replaceChildren();
    const s = c.summary && typeof c.summary === "object" ? c.summary : {};
    const stat = (label, value) => {
      const node = h("span", "gm-stat");
      node.append(h("span", "gm-label", `${label} `), h("b", null, value));
      return node;
    };
    const num = (x, d) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(d) : "–");
    summary.append(
      stat("tokens", typeof s.tokens === "number" ? s.tokens.toLocaleString("en-US") : "–"),
      stat("mean logprob", num(s.mean_logprob, 3)),
      stat("perplexity", num(s.perplexity, 2)),
    );
    if (c.finish_reason) summary.append(stat("finish", String(c.finish_reason)));
    const least = Array.isArray(s.least) ? s.least : [];
    if (least.length) {
      const chips = h("span", "gm-chips");
      chips.append(h("span", "gm-label", "least likely"));
      for (const item of least) {
        if (!Array.isArray(item)) continue;
        const i = Number(item[0]);
        if (!(i >= 0 && i < view.spans.length)) continue;
        const chip = h("button", "gm-chip");
        chip.type = "button";
        chip.dataset.i = String(i);
        const hex = view.partial.get(i);
        chip.append(hex !== undefined ? `‹${hex}›` : visible(view.t[i]));
        chip.append(h("span", "gm-chip-p", pct(Math.exp(Number(item[1])))));
        chip.title = `go to token #${i}`;
        chip.addEventListener("click", () => focusToken(i));
        chips.append(chip);
      }
      summary.append(chips);
    }
  }

  body.append(text, legend, summary);
  drawChoice();

  return () => {
    slider.removeEventListener("input", onSlide);
    text.removeEventListener("mouseover", onOver);
    text.removeEventListener("mouseout", onOut);
    text.removeEventListener("focusin", onFocusIn);
    text.removeEventListener("focusout", onFocusOut);
    text.removeEventListener("keydown", onKey);
    text.removeEventListener("scroll", onScroll);
  };
}

export default { render };
