// gptmagic results explorer: draws an "explorer" state (cases × variants) or a "call"
// state (one call's detail) (docs/widgets.md). Shipped after common.js and heatmap.js
// (h, stateView, makeScale, drawHeatmap ...: see views.esm_source); the static HTML
// runs this same text in an inline module with a model that only has `get`.
// Model text is data: DOM is built with createElement/textContent only.

const EX_VERSION = 1;
const ROW_H = 58; // px: every matrix row has one height, so only the visible rows are drawn
const OVERSCAN = 6; // rows drawn above and below the visible ones
const ASK_TIMEOUT_MS = 4000; // a detail asked of the kernel: how long to wait for it
const DIFF_MAX = 4_000_000; // words(a) × words(b) a word diff may compare

function renderExplorer({ model, el }) {
  const first = model.get("data");
  if (first && first.kind === "call") {
    return stateView(model, el, "gm-callpanel", "call", EX_VERSION, (root, data) => {
      const cleanups = [];
      root.append(drawDetail(data.detail || {}, null, cleanups));
      return () => cleanups.forEach((f) => f());
    });
  }
  const ui = { search: "", colour: "score", show: "all", sort: "case", group: "", focus: { r: 0, v: 0 },
    open: null, pick: [], scrollTop: 0 };
  return stateView(model, el, "gm-explorer", "explorer", EX_VERSION,
    (root, data) => drawExplorer(root, data, model, ui));
}

// ---- formatting ----

function fmtNum(x, d) {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(d) : "–";
}

function fmtCost(x) {
  if (typeof x !== "number" || !Number.isFinite(x)) return "–";
  if (x === 0) return "$0";
  return `$${x >= 0.01 ? x.toFixed(4) : x.toPrecision(3)}`;
}

function fmtSecs(x) {
  return typeof x === "number" && Number.isFinite(x) ? `${x.toFixed(3)} s` : "–";
}

function mark(score, threshold) {
  if (typeof score !== "number") return "·";
  return score >= threshold ? "✓" : "✗";
}

// ---- word diff ----

function words(text) {
  return String(text || "").split(/(\s+)/).filter((w) => w !== "");
}

// [[op, word]...] with op "=", "-" (only in a) or "+" (only in b); null when too long.
function wordDiff(a, b) {
  const x = words(a);
  const y = words(b);
  let lo = 0;
  while (lo < x.length && lo < y.length && x[lo] === y[lo]) lo += 1;
  let hx = x.length;
  let hy = y.length;
  while (hx > lo && hy > lo && x[hx - 1] === y[hy - 1]) {
    hx -= 1;
    hy -= 1;
  }
  const n = hx - lo;
  const m = hy - lo;
  if (n * m > DIFF_MAX) return null;
  const L = new Array(n + 1);
  for (let i = 0; i <= n; i += 1) L[i] = new Uint32Array(m + 1);
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      L[i][j] = x[lo + i] === y[lo + j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    }
  }
  const ops = x.slice(0, lo).map((w) => ["=", w]);
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[lo + i] === y[lo + j]) {
      ops.push(["=", x[lo + i]]);
      i += 1;
      j += 1;
    } else if (j < m && (i >= n || L[i][j + 1] >= L[i + 1][j])) {
      ops.push(["+", y[lo + j]]);
      j += 1;
    } else {
      ops.push(["-", x[lo + i]]);
      i += 1;
    }
  }
  for (const w of x.slice(hx)) ops.push(["=", w]);
  // One span per run of the same kind, not one per word.
  const runs = [];
  for (const [op, w] of ops) {
    if (runs.length && runs[runs.length - 1][0] === op) runs[runs.length - 1][1] += w;
    else runs.push([op, w]);
  }
  return runs;
}

// ---- one call's detail (the side panel, and CallPanel) ----

function section(title, body) {
  const s = h("section", "gm-x-sec");
  s.append(h("h4", "gm-x-h", title), body);
  return s;
}

function pre(text, cls) {
  return h("pre", `gm-x-pre${cls ? ` ${cls}` : ""}`, text);
}

function drawDetail(d, head, cleanups) {
  const box = h("div", "gm-x-detail");
  if (head) box.append(head);
  if (d.error) box.append(section("error", pre(d.error, "gm-x-err")));
  const scores = d.scores && typeof d.scores === "object" ? Object.entries(d.scores) : [];
  if (scores.length || typeof d.score === "number") {
    const t = h("table", "gm-x-scores");
    const hr = h("tr");
    // The explanation column only when some scorer gave one (an empty column reads as missing).
    const explained = scores.some(([, s]) => s && s.explanation);
    const heads = ["scorer", "score", "result", ...(explained ? ["explanation"] : [])];
    for (const c of heads) hr.append(h("th", null, c));
    t.append(hr);
    if (typeof d.score === "number" && scores.length > 1) {
      const tr = h("tr", "gm-x-total");
      tr.append(h("td", null, "score (weighted)"), h("td", "gm-x-num", fmtNum(d.score, 3)), h("td"));
      if (explained) tr.append(h("td"));
      t.append(tr);
    }
    for (const [name, s] of scores) {
      const tr = h("tr");
      const ok = s && s.passed;
      tr.append(h("td", null, name), h("td", "gm-x-num", fmtNum(s && s.score, 3)),
        h("td", ok === true ? "gm-x-pass" : ok === false ? "gm-x-fail" : null,
          ok === true ? "✓ pass" : ok === false ? "✗ fail" : "·"));
      if (explained) tr.append(h("td", "gm-x-explain", (s && s.explanation) || ""));
      t.append(tr);
    }
    box.append(section("scores", t));
    if (d.score_error) box.append(pre(`scorer error: ${d.score_error}`, "gm-x-err"));
  }
  box.append(section("reply", pre(d.reply === null || d.reply === undefined ? "(no reply)" : d.reply, "gm-x-reply")));
  if (Array.isArray(d.repeats) && d.repeats.length > 1) {
    const list = h("ol", "gm-x-repeats");
    list.start = 0;
    for (const r of d.repeats) {
      if (!r || typeof r !== "object") continue;
      const li = h("li");
      li.append(h("span", "gm-x-num gm-muted", r.error ? "error " : `${fmtNum(r.score, 2)} `),
        h("span", "gm-x-rtext", r.error ? String(r.error) : String(r.reply ?? "")));
      list.append(li);
    }
    box.append(section(`all ${d.repeats.length} repeats`, list));
  }
  if (d.heatmap && typeof d.heatmap === "object") {
    const hm = h("div", "gm-root gm-heatmap");
    const why = refusal(d.heatmap, "heatmap", 1);
    if (why) hm.append(h("div", "gm-refuse", why));
    else {
      const done = drawHeatmap(hm, d.heatmap, { choice: 0, threshold: null });
      if (done) cleanups.push(done);
    }
    box.append(section("logprobs", hm));
  }
  const stats = h("div", "gm-x-stats");
  const stat = (label, value) => {
    if (value === null || value === undefined || value === "–") return;
    const s = h("span", "gm-stat");
    s.append(h("span", "gm-label", `${label} `), h("b", null, value));
    stats.append(s);
  };
  stat("model", d.model);
  stat("prompt", d.prompt);
  stat("finish", d.finish_reason);
  const usage = d.usage && typeof d.usage === "object" ? d.usage : {};
  for (const [k, v] of Object.entries(usage)) stat(k.replace(/_/g, " "), fmtNum(v, 0));
  stat("cost", fmtCost(d.cost));
  stat("latency", fmtSecs(d.latency));
  stat("ttft", fmtSecs(d.ttft));
  stat("compute", fmtSecs(d.compute));
  if (typeof d.when === "number") stat("when", new Date(d.when * 1000).toISOString());
  box.append(section("call", stats));
  box.append(section("request", pre(d.request || "(not kept)", "gm-x-request")));
  const params = d.params && typeof d.params === "object" ? d.params : {};
  if (Object.keys(params).length) box.append(section("parameters", pre(JSON.stringify(params, null, 1))));
  return box;
}

// ---- the explorer ----

function drawExplorer(root, data, model, ui) {
  const variants = Array.isArray(data.variants) ? data.variants : [];
  const cases = Array.isArray(data.cases) ? data.cases : [];
  const scorers = Array.isArray(data.scorers) ? data.scorers.map(String) : [];
  const inputs = Array.isArray(data.inputs) ? data.inputs.map(String) : [];
  const nv = variants.length;
  const threshold = Number.isFinite(data.threshold) ? data.threshold : 0.5;
  const scale = makeScale(data.scale);
  const cellAt = new Array(cases.length * nv);
  for (const cell of Array.isArray(data.cells) ? data.cells : []) {
    if (Array.isArray(cell) && cell[0] < cases.length && cell[1] < nv) cellAt[cell[0] * nv + cell[1]] = cell;
  }
  const details = data.details && typeof data.details === "object" ? data.details : {};
  const asked = new Map(); // id -> detail (or {pending}) for details asked of the kernel
  const cleanups = [];

  // -- toolbar --
  const bar = h("div", "gm-x-bar");
  const search = h("input", "gm-x-search");
  search.type = "search";
  search.placeholder = "search (press /)";
  search.setAttribute("aria-label", "search outputs and inputs");
  search.value = ui.search;
  const select = (label, options, value) => {
    const wrap = h("label", "gm-group");
    const s = h("select");
    for (const [v, text] of options) {
      const o = h("option", null, text);
      o.value = v;
      s.append(o);
    }
    s.value = value;
    wrap.append(h("span", "gm-label", label), s);
    bar.append(wrap);
    return s;
  };
  bar.append(search);
  const colourBy = select("score", [["score", "overall"], ...scorers.map((s, k) => [`s${k}`, s])], ui.colour);
  const show = select("show", [["all", "all cases"], ["fail", "cases with a fail"], ["pass", "cases all pass"],
    ["error", "cases with an error"], ["split", "variants disagree"]], ui.show);
  const sort = select("sort", [["case", "data order"], ["asc", "score ↑"], ["desc", "score ↓"],
    ["spread", "disagreement"]], ui.sort);
  const group = select("group by", [["", "nothing"], ...inputs.map((c, k) => [String(k), c])], ui.group);
  const count = h("span", "gm-count");
  bar.append(count);
  const hint = h("div", "gm-x-hint gm-muted",
    "Click or Enter: details · shift-click or c: pick two cells to compare · arrows, PageUp/Down, Home/End move · Esc closes");

  // -- matrix --
  const layout = h("div", "gm-x-layout");
  const scroll = h("div", "gm-x-scroll");
  scroll.tabIndex = 0;
  scroll.setAttribute("role", "grid");
  scroll.setAttribute("aria-label", "cases × variants; arrow keys move, Enter opens a cell");
  scroll.setAttribute("data-lm-suppress-shortcuts", "");
  const width = `${220 + nv * 240}px`;
  const headRow = h("div", "gm-x-row gm-x-headrow");
  headRow.style.width = width;
  headRow.setAttribute("role", "row");
  headRow.append(h("div", "gm-x-case gm-x-hcell", "case"));
  const passRate = variants.map((_, v) => {
    let n = 0;
    let p = 0;
    for (let c = 0; c < cases.length; c += 1) {
      const cell = cellAt[c * nv + v];
      if (cell && typeof cell[5] === "number") {
        n += 1;
        if (cell[5] >= threshold) p += 1;
      }
    }
    return n ? p / n : null;
  });
  variants.forEach((vr, v) => {
    const hc = h("div", "gm-x-hcell");
    hc.setAttribute("role", "columnheader");
    // prompt · model on top (cut to two lines); the grid and API values on a line of
    // their own below, so a long model name never hides what the variants differ in.
    const keys = vr && vr.keys && typeof vr.keys === "object" ? vr.keys : null;
    const named = [];
    const grid = [];
    for (const [k, val] of keys ? Object.entries(keys) : []) {
      if (val === null || val === undefined) continue;
      if (k === "prompt" || k === "model") named.push(String(val));
      else grid.push(k === "api" ? String(val) : `${k}=${val}`);
    }
    const label = keys && (named.length || grid.length) ? named.join(" · ")
      : vr && vr.label !== undefined ? String(vr.label) : `#${v}`;
    if (label) hc.append(h("div", "gm-x-vlabel", label));
    if (grid.length) hc.append(h("div", "gm-x-vgrid", grid.join(" · ")));
    hc.append(h("div", "gm-muted", passRate[v] === null ? "no scores" : `pass ${(passRate[v] * 100).toFixed(0)}%`));
    hc.title = String(vr && vr.label);
    headRow.append(hc);
  });
  const body = h("div", "gm-x-body");
  body.style.width = width;
  scroll.append(headRow, body);
  const panel = h("aside", "gm-x-panel");
  panel.hidden = true;
  panel.setAttribute("aria-label", "cell details");
  layout.append(scroll, panel);
  root.append(bar, hint, layout);

  // -- which rows show, in what order --
  let rows = []; // {g: label, n} or {c}
  const score = (cell) => {
    if (!cell) return null;
    if (ui.colour === "score") return cell[5];
    const k = Number(ui.colour.slice(1));
    return Array.isArray(cell[6]) ? cell[6][k] : null;
  };
  const caseText = (c) => {
    const [row, vals] = cases[c];
    return `${row} ${(vals || []).join(" ")}`;
  };
  const stats = (c) => {
    let sum = 0;
    let n = 0;
    let fail = 0;
    let err = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (let v = 0; v < nv; v += 1) {
      const cell = cellAt[c * nv + v];
      if (!cell) continue;
      if (cell[7] !== null && cell[7] !== undefined) err += 1;
      const s = score(cell);
      if (typeof s === "number") {
        sum += s;
        n += 1;
        if (s < threshold) fail += 1;
        lo = Math.min(lo, s);
        hi = Math.max(hi, s);
      }
    }
    return { mean: n ? sum / n : null, fail, err, n, spread: n ? hi - lo : 0 };
  };
  // The whole output: an inline detail's reply, else the cut text and its rest, cell[9]
  // (the output to SEARCH_CHARS).
  const searchText = (cell) => {
    const d = details[String(cell[2])];
    return d && typeof d.reply === "string" ? d.reply : `${cell[3]}${cell[9] || ""}`;
  };
  function compute() {
    const q = ui.search.trim().toLowerCase();
    const keep = [];
    for (let c = 0; c < cases.length; c += 1) {
      const st = stats(c);
      if (ui.show === "fail" && !st.fail) continue;
      if (ui.show === "pass" && (st.fail || !st.n)) continue;
      if (ui.show === "error" && !st.err) continue;
      if (ui.show === "split" && !(st.fail && st.fail < st.n)) continue;
      if (q) {
        let hit = caseText(c).toLowerCase().includes(q);
        for (let v = 0; !hit && v < nv; v += 1) {
          const cell = cellAt[c * nv + v];
          if (cell && `${searchText(cell)} ${cell[7] || ""}`.toLowerCase().includes(q)) hit = true;
        }
        if (!hit) continue;
      }
      keep.push({ c, st });
    }
    const key = (x) => (x.st.mean === null ? Infinity : x.st.mean);
    if (ui.sort === "asc") keep.sort((a, b) => key(a) - key(b) || a.c - b.c);
    else if (ui.sort === "desc") keep.sort((a, b) => (b.st.mean ?? -Infinity) - (a.st.mean ?? -Infinity) || a.c - b.c);
    else if (ui.sort === "spread") keep.sort((a, b) => b.st.spread - a.st.spread || a.c - b.c);
    rows = [];
    if (ui.group === "") {
      for (const x of keep) rows.push({ c: x.c });
    } else {
      const k = Number(ui.group);
      const groups = new Map();
      for (const x of keep) {
        const vals = cases[x.c][1] || [];
        const g = vals[k] === null || vals[k] === undefined ? "(none)" : String(vals[k]);
        if (!groups.has(g)) groups.set(g, []);
        groups.get(g).push(x.c);
      }
      for (const [g, list] of groups) {
        rows.push({ g: `${inputs[k]} = ${g}`, n: list.length });
        for (const c of list) rows.push({ c });
      }
    }
    body.style.height = `${rows.length * ROW_H}px`;
    const shown = rows.filter((r) => r.c !== undefined).length;
    count.textContent = `${shown} of ${cases.length} cases × ${nv} variant${nv === 1 ? "" : "s"}`;
    count.dataset.shown = String(shown);
    if (ui.focus.r >= rows.length) ui.focus.r = Math.max(0, rows.length - 1);
    drawRows(true);
  }

  // -- the rows in view (virtual: only those are in the DOM) --
  let drawn = [-1, -1];
  function cellNode(c, v, r) {
    const cell = cellAt[c * nv + v];
    const node = h("div", "gm-x-cell");
    node.dataset.r = String(r);
    node.dataset.v = String(v);
    node.setAttribute("role", "gridcell");
    node.tabIndex = -1;
    node.setAttribute("data-lm-suppress-shortcuts", "");
    if (!cell) {
      node.classList.add("gm-x-empty");
      node.textContent = "—";
      return node;
    }
    const s = score(cell);
    const err = cell[7] !== null && cell[7] !== undefined;
    if (err) node.classList.add("gm-x-error");
    else if (typeof s === "number") {
      const col = scale.colour(s);
      node.style.background = col.bg;
      node.style.color = col.fg;
    }
    const top = h("div", "gm-x-top");
    const marks = Array.isArray(cell[6]) ? cell[6].map((x) => mark(x, threshold)).join("") : "";
    const m = h("span", "gm-x-marks", err ? "error" : marks);
    m.title = err ? String(cell[7]) : scorers.map((n, k) => `${n}: ${fmtNum(cell[6][k], 3)} ${mark(cell[6][k], threshold)}`).join("\n");
    top.append(m);
    if (typeof cell[5] === "number") top.append(h("span", "gm-x-score", fmtNum(cell[5], 2)));
    if (cell[8] > 1) top.append(h("span", "gm-muted", `×${cell[8]}`));
    node.append(top, h("div", "gm-x-out", err ? String(cell[7]) : `${cell[3]}${cell[4] ? "…" : ""}`));
    if (ui.pick.some((p) => p === cell[2])) node.classList.add("gm-x-picked");
    if (ui.open === cell[2]) node.classList.add("gm-x-open");
    return node;
  }
  function drawRows(force) {
    const top = Math.max(0, scroll.scrollTop - headRow.offsetHeight);
    const height = scroll.clientHeight || 520;
    const start = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const end = Math.min(rows.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    if (!force && start === drawn[0] && end === drawn[1]) return;
    drawn = [start, end];
    const frag = document.createDocumentFragment();
    for (let r = start; r < end; r += 1) {
      const row = rows[r];
      const line = h("div", "gm-x-row");
      line.style.top = `${r * ROW_H}px`;
      line.setAttribute("role", "row");
      if (row.g !== undefined) {
        line.classList.add("gm-x-grouprow");
        line.append(h("div", "gm-x-group", `${row.g} (${row.n})`));
      } else {
        const [id, vals] = cases[row.c];
        const head = h("div", "gm-x-case");
        head.setAttribute("role", "rowheader");
        head.append(h("span", "gm-x-rowid", `#${id}`));
        const txt = inputs.map((k, i) => `${k}: ${vals && vals[i] !== null ? vals[i] : "–"}`).join(" · ");
        head.append(h("span", "gm-x-inputs", txt));
        head.title = txt;
        line.append(head);
        for (let v = 0; v < nv; v += 1) line.append(cellNode(row.c, v, r));
      }
      frag.append(line);
    }
    const had = body.contains(document.activeElement); // redrawn rows keep the focus
    body.replaceChildren(frag);
    const f = focusedNode();
    if (f) {
      f.tabIndex = 0;
      if (had) f.focus({ preventScroll: true });
    }
  }
  const onScroll = () => {
    ui.scrollTop = scroll.scrollTop;
    drawRows(false);
  };
  scroll.addEventListener("scroll", onScroll, { passive: true });

  // -- focus and keys --
  function focusedNode() {
    return body.querySelector(`.gm-x-cell[data-r="${ui.focus.r}"][data-v="${ui.focus.v}"]`);
  }
  function moveTo(r, v) {
    if (!rows.length) return;
    r = Math.max(0, Math.min(rows.length - 1, r));
    v = Math.max(0, Math.min(nv - 1, v));
    ui.focus = { r, v };
    const y = r * ROW_H;
    const viewTop = scroll.scrollTop;
    const viewH = scroll.clientHeight - headRow.offsetHeight;
    if (y < viewTop) scroll.scrollTop = y;
    else if (y + ROW_H > viewTop + viewH) scroll.scrollTop = y + ROW_H - viewH;
    drawRows(true);
    const node = focusedNode();
    if (node) {
      node.tabIndex = 0;
      node.focus({ preventScroll: true });
      const x = node.offsetLeft;
      if (x < scroll.scrollLeft + 220) scroll.scrollLeft = Math.max(0, x - 220);
      else if (x + node.offsetWidth > scroll.scrollLeft + scroll.clientWidth) scroll.scrollLeft = x + node.offsetWidth - scroll.clientWidth;
    }
  }
  const step = (r, dir) => {
    let k = r + dir;
    while (k >= 0 && k < rows.length && rows[k].c === undefined) k += dir;
    return k >= 0 && k < rows.length ? k : r;
  };
  const cellOf = (r, v) => {
    const row = rows[r];
    return row && row.c !== undefined ? cellAt[row.c * nv + v] : undefined;
  };
  const onKey = (ev) => {
    if (ev.target === search) return;
    const { r, v } = ui.focus;
    if (ev.key === "ArrowDown") moveTo(step(r, 1), v);
    else if (ev.key === "ArrowUp") moveTo(step(r, -1), v);
    else if (ev.key === "ArrowRight") moveTo(r, v + 1);
    else if (ev.key === "ArrowLeft") moveTo(r, v - 1);
    else if (ev.key === "PageDown" || ev.key === "PageUp") {
      const page = Math.max(1, Math.floor((scroll.clientHeight - headRow.offsetHeight) / ROW_H) - 1);
      const to = Math.max(0, Math.min(rows.length - 1, r + (ev.key === "PageDown" ? page : -page)));
      moveTo(rows[to] && rows[to].c === undefined ? step(to, 1) : to, v);
    } else if (ev.key === "Home") moveTo(step(-1, 1), ev.ctrlKey ? 0 : v);
    else if (ev.key === "End") moveTo(step(rows.length, -1), ev.ctrlKey ? nv - 1 : v);
    else if (ev.key === "Enter") {
      const cell = cellOf(r, v);
      if (cell) (ev.shiftKey ? pick : open)(cell);
    } else if (ev.key === "c") {
      const cell = cellOf(r, v);
      if (cell) pick(cell);
    } else if (ev.key === "Escape") close();
    else return;
    ev.preventDefault();
    ev.stopPropagation();
  };
  const onRootKey = (ev) => {
    if (ev.key === "/" && ev.target !== search && !(ev.target instanceof HTMLInputElement)) {
      ev.preventDefault();
      search.focus();
      search.select();
    } else if (ev.key === "Escape" && ev.target === search) {
      moveTo(ui.focus.r, ui.focus.v);
    } else if (ev.key === "Escape" && panel.contains(ev.target)) {
      close();
    }
  };
  const onFocus = (ev) => {
    if (ev.target === scroll) {
      if (rows[ui.focus.r] && rows[ui.focus.r].c === undefined) ui.focus.r = step(ui.focus.r, 1);
      moveTo(ui.focus.r, ui.focus.v);
    }
  };
  const onClick = (ev) => {
    const node = ev.target.closest ? ev.target.closest(".gm-x-cell") : null;
    if (!node || !body.contains(node)) return;
    const r = Number(node.dataset.r);
    const v = Number(node.dataset.v);
    ui.focus = { r, v };
    const cell = cellOf(r, v);
    if (!cell) return;
    if (ev.shiftKey) pick(cell);
    else open(cell);
  };
  const onCellFocus = (ev) => {
    const node = ev.target.closest ? ev.target.closest(".gm-x-cell") : null;
    if (node && body.contains(node)) ui.focus = { r: Number(node.dataset.r), v: Number(node.dataset.v) };
  };
  body.addEventListener("focusin", onCellFocus);
  scroll.addEventListener("keydown", onKey);
  scroll.addEventListener("focus", onFocus);
  body.addEventListener("click", onClick);
  root.addEventListener("keydown", onRootKey);

  // -- the panel: one cell, or two compared --
  const cellById = new Map();
  for (const cell of cellAt) if (cell) cellById.set(cell[2], cell);
  function detailOf(id, redraw) {
    const d = details[String(id)] || asked.get(id);
    if (d) return d;
    if (data.mode !== "ask" || typeof model.send !== "function") {
      return { missing: "Details are not in this view: they are asked of the kernel, and none is running. "
        + "Run explore() in a notebook for them." };
    }
    asked.set(id, { pending: true });
    model.send({ type: "detail", id });
    setTimeout(() => {
      const a = asked.get(id);
      if (a && a.pending) {
        asked.set(id, { missing: "No kernel answered: details need a running kernel." });
        redraw();
      }
    }, ASK_TIMEOUT_MS);
    return asked.get(id);
  }
  const onMsg = (msg) => {
    if (!msg || msg.type !== "detail") return;
    asked.set(msg.id, msg.detail || { missing: String(msg.error || "no detail") });
    drawPanel();
  };
  if (typeof model.on === "function") model.on("msg:custom", onMsg);

  // All of a cell's output the matrix carries: the cut text and the rest (to SEARCH_CHARS).
  const shipped = (cell) => `${cell[3]}${cell[9] || ""}`;
  const where = (cell) => `case #${cases[cell[0]][0]} · ${variants[cell[1]].label}`;
  let panelCleanups = [];
  function panelHead(title, extra) {
    const head = h("div", "gm-x-phead");
    head.append(h("b", "gm-x-ptitle", title));
    for (const b of extra) head.append(b);
    const x = h("button", "gm-btn gm-x-close", "×");
    x.type = "button";
    x.title = "close (Esc)";
    x.setAttribute("aria-label", "close");
    x.addEventListener("click", close);
    head.append(x);
    return head;
  }
  function drawPanel() {
    panelCleanups.forEach((f) => f());
    panelCleanups = [];
    panel.replaceChildren();
    const pair = ui.pick.length === 2;
    if (ui.open === null && !pair) {
      panel.hidden = true;
      layout.classList.remove("gm-x-with-panel");
      return;
    }
    panel.hidden = false;
    layout.classList.add("gm-x-with-panel");
    if (pair) {
      const [a, b] = ui.pick.map((id) => cellById.get(id));
      const da = detailOf(a[2], drawPanel);
      const db = detailOf(b[2], drawPanel);
      panel.append(panelHead("compare", []));
      const textOf = (d, cell) => (d.reply !== undefined ? d.reply : shipped(cell)) || "";
      const ops = wordDiff(textOf(da, a), textOf(db, b));
      const panes = h("div", "gm-x-diff");
      [[a, "-"], [b, "+"]].forEach(([cell, side]) => {
        const pane = h("div", "gm-x-dpane");
        pane.append(h("div", "gm-x-dlabel", where(cell)));
        const text = h("pre", "gm-x-pre gm-x-dtext");
        if (ops === null) text.textContent = textOf(side === "-" ? da : db, cell);
        else {
          for (const [op, w] of ops) {
            if (op === "=") text.append(w);
            else if (op === side) text.append(h("span", side === "-" ? "gm-x-del" : "gm-x-ins", w));
          }
        }
        pane.append(text);
        panes.append(pane);
      });
      panel.append(panes);
      if (ops === null) panel.append(h("div", "gm-muted", "too long to diff word by word"));
      else if (ops.every(([op]) => op === "=")) {
        panel.append(h("div", "gm-muted gm-x-same", "the two replies are identical"));
      }
      if (da.pending || db.pending) panel.append(h("div", "gm-muted", "asking the kernel for the full replies…"));
      return;
    }
    const cell = cellById.get(ui.open);
    const d = detailOf(ui.open, drawPanel);
    const cmp = h("button", "gm-btn gm-x-cmp", ui.pick.includes(cell[2]) ? "picked" : "compare");
    cmp.type = "button";
    cmp.title = "pick this cell, then another, to see a word diff (shift-click or c)";
    cmp.addEventListener("click", () => pick(cell));
    const head = panelHead(where(cell), [cmp]);
    if (d.pending) panel.append(head, h("div", "gm-muted", "asking the kernel…"));
    else if (d.missing) {
      panel.append(head, h("div", "gm-muted", d.missing));
      panel.append(section(cell[9] ? "output (up to 4,000 characters)" : cell[4] ? "output (cut)" : "output",
        pre(cell[9] ? shipped(cell) : `${cell[3]}${cell[4] ? "…" : ""}`)));
    } else panel.append(drawDetail(d, head, panelCleanups));
  }
  function open(cell) {
    ui.open = cell[2];
    ui.pick = [];
    drawRows(true);
    drawPanel();
  }
  function pick(cell) {
    const id = cell[2];
    if (ui.pick.includes(id)) ui.pick = ui.pick.filter((x) => x !== id);
    else ui.pick = [...ui.pick, id].slice(-2);
    if (ui.pick.length === 2) ui.open = null;
    drawRows(true);
    drawPanel();
  }
  function close() {
    ui.open = null;
    ui.pick = [];
    drawRows(true);
    drawPanel();
    moveTo(ui.focus.r, ui.focus.v);
  }

  // -- controls --
  let timer = null;
  const onSearch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      ui.search = search.value;
      compute();
    }, 120);
  };
  search.addEventListener("input", onSearch);
  const onSelect = () => {
    ui.colour = colourBy.value;
    ui.show = show.value;
    ui.sort = sort.value;
    ui.group = group.value;
    compute();
  };
  for (const s of [colourBy, show, sort, group]) s.addEventListener("change", onSelect);

  compute();
  if (ui.scrollTop) scroll.scrollTop = ui.scrollTop;
  drawPanel();
  return () => {
    clearTimeout(timer);
    scroll.removeEventListener("scroll", onScroll);
    if (typeof model.off === "function") model.off("msg:custom", onMsg);
    panelCleanups.forEach((f) => f());
    cleanups.forEach((f) => f());
  };
}

export default { render: renderExplorer };
