// gptmagic logprob heatmap: draws a "heatmap" state (docs/widgets.md).
// Shipped after common.js (h, stateView, tokenNav, ...: see views.esm_source).

const KIND = "heatmap";
const VERSION = 1;
// Matches gptmagic/widgets/_scale.py; used only if a state ships no valid scale.
const DEFAULT_STOPS = ["#000004", "#1d1146", "#50127c", "#822681", "#b63779",
  "#e65164", "#fb8761", "#fec387", "#fcfdbf"].map((c, i) => [i / 8, c]);
const HEX = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;
const LOG_MIN = -4; // threshold slider: log10(p) from 1e-4 ...
const LOG_MAX = 0; // ... to 1

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

// ---- the view ----

function render({ model, el }) {
  const ui = { choice: 0, threshold: null };
  return stateView(model, el, "gm-heatmap", KIND, VERSION, (root, data) => drawHeatmap(root, data, ui));
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
  const [tip, spacer] = tipParts();
  tip.id = `gm-tip-${Math.random().toString(36).slice(2)}`;
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
  const fill = (v, i) => {
    const c = v.choice;
    const lpv = v.lp[i];
    const piece = v.t[i];
    const hex = v.partial.get(i);
    tip.replaceChildren();
    const head = h("div", "gm-tip-head");
    head.append(h("span", "gm-tip-tok", tokenLabel(piece, hex)));
    if (i < v.nPrompt) head.append(h("span", "gm-badge", "prompt"));
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
    v.spans[i].setAttribute("aria-describedby", tip.id);
  };

  // The token text; its listeners are delegated (one set per widget, not per token).
  const text = h("div", "gm-text");
  text.setAttribute("role", "group");
  text.setAttribute("aria-label", "tokens coloured by probability; arrow keys move between tokens");
  // Arrow keys here move between tokens, not between Jupyter's cells (see drawChoice).
  text.setAttribute("data-lm-suppress-shortcuts", "");
  const locate = (node) => {
    const tok = node && node.closest ? node.closest(".gm-tok") : null;
    return tok && view && text.contains(tok) ? { v: view, i: Number(tok.dataset.i) } : null;
  };
  const nav = tokenNav({ root, box: text, texts: [text], tip, spacer, locate, fill, lineStep });

  function lineStep(v, i, dir) {
    // The token on the next/previous visual line closest in x.
    const spans = v.spans;
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
    const t = strings(c.t);
    const lp = Array.isArray(c.lp) ? c.lp : [];
    const nPrompt = Math.max(0, Math.min(t.length, Number(c.n_prompt) || 0));
    const partial = partialMap(c.partial);
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
      span.dataset.i = String(i);
      span.tabIndex = -1;
      // Lumino matches shortcuts from the focused element up; the mark must be on it.
      span.setAttribute("data-lm-suppress-shortcuts", "");
      const hex = partial.get(i);
      if (hex !== undefined) cls += " gm-partial";
      span.className = cls;
      fillPlain(span, t[i], hex);
      spans[i] = span;
      frag.append(span);
    }
    text.replaceChildren(frag);
    view = { choice: c, t, lp, nPrompt, partial, spans, scored, text, active: -1 };
    nav.reset();
    if (spans.length) nav.activate(view, 0);
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
        chip.append(tokenLabel(view.t[i], hex));
        chip.append(h("span", "gm-chip-p", pct(Math.exp(Number(item[1])))));
        chip.title = `go to token #${i}`;
        chip.addEventListener("click", () => nav.focus(view, i));
        chips.append(chip);
      }
      summary.append(chips);
    }
  }

  body.append(text, legend, summary);
  drawChoice();

  return () => {
    slider.removeEventListener("input", onSlide);
    nav.destroy();
  };
}

export default { render };
