// gptmagic token counter: draws a "counter" state (docs/widgets.md).
// Shipped after common.js (h, refusal, ...: see views.esm_source).
// The live form (`live: true`) adds a textarea: typing is debounced, then
// written to `text`; the kernel recounts and replaces `data`.

const KIND = "counter";
const VERSION = 1;
const DEBOUNCE_MS = 150;
// A recount that leaves `data` unchanged sends no change event; the kernel going
// idle after our update ends "counting…" then. Front ends that do not report
// that (a save_changes without callbacks) end it after this long.
const COUNTING_GIVE_UP_MS = 5000;

const int = (x) => (typeof x === "number" && Number.isFinite(x) ? x.toLocaleString("en-US") : "–");

function percent(f) {
  const v = f * 100;
  if (v === 0) return "0%";
  if (v < 0.01) return "<0.01%";
  if (v < 10) return `${v.toFixed(2)}%`;
  return `${v.toFixed(1)}%`;
}

function money(cost, key) {
  const v = cost[key];
  if (v === null || v === undefined || v === "") return "–";
  const cur = String(cost.currency || "USD");
  return cur === "USD" ? `$${String(v)}` : `${String(v)} ${cur}`;
}

function drawState(out, data) {
  const why = refusal(data, KIND, VERSION);
  if (why) {
    out.append(h("div", "gm-refuse", why));
    return;
  }
  const head = h("div", "gm-headline");
  // A failed count keeps the shape with total 0: show no number, the error says why.
  const total = h("span", "gm-total", data.error ? "– tokens"
    : `${int(data.total)} token${data.total === 1 ? "" : "s"}`);
  total.dataset.total = String(data.total ?? "");
  head.append(total);
  const where = [data.model, data.encoding].filter((x) => x !== null && x !== undefined && x !== "");
  if (where.length) head.append(h("span", "gm-muted", where.map(String).join(" · ")));
  if (data.exact === false) head.append(h("span", "gm-badge", "approximate"));
  out.append(head);

  if (data.error) {
    out.append(h("div", "gm-error", String(data.error)));
  }

  const rows = Array.isArray(data.rows) ? data.rows.filter(Array.isArray) : [];
  if (data.mode === "chat" || rows.length) {
    const table = h("table", "gm-table");
    const thead = h("thead");
    const hr = h("tr");
    [["role", "gm-l"], ["name", "gm-l"], ["content"], ["name tokens"], ["overhead"], ["total"],
      ["preview", "gm-l"]].forEach(([label, cls]) => hr.append(h("th", cls, label)));
    thead.append(hr);
    const tbody = h("tbody");
    for (const [role, name, content, nameTok, overhead, preview] of rows) {
      const tr = h("tr", "gm-row");
      const sum = [content, nameTok, overhead].every((x) => typeof x === "number")
        ? content + nameTok + overhead : null;
      tr.append(
        h("td", "gm-l", role ?? ""),
        h("td", "gm-l", name ?? ""),
        h("td", null, int(content)),
        h("td", null, int(nameTok)),
        h("td", null, int(overhead)),
        h("td", null, int(sum)),
        h("td", "gm-l gm-preview", preview ?? ""),
      );
      tbody.append(tr);
    }
    const extra = (label, value) => {
      const tr = h("tr", "gm-extra");
      tr.append(h("td", "gm-l", label), h("td"), h("td"), h("td"), h("td"), h("td", null, int(value)), h("td"));
      tbody.append(tr);
    };
    if (typeof data.reply_priming === "number") extra("reply priming", data.reply_priming);
    if (typeof data.tools === "number" && data.tools > 0) extra("tools", data.tools);
    const tr = h("tr", "gm-sum");
    tr.append(h("td", "gm-l", "total"), h("td"), h("td"), h("td"), h("td"), h("td", null, int(data.total)), h("td"));
    tbody.append(tr);
    table.append(thead, tbody);
    out.append(table);
  }

  if (typeof data.fill === "number" && typeof data.context_window === "number") {
    const fill = h("div", "gm-fill");
    const label = h("div", "gm-fill-label");
    label.append(
      h("span", null, `${int(data.total)} of ${int(data.context_window)} context tokens `),
      h("b", "gm-fill-pct", `(${percent(data.fill)})`),
    );
    if (typeof data.max_output_tokens === "number") {
      label.append(h("span", "gm-muted", ` · max output ${int(data.max_output_tokens)}`));
    }
    const track = h("div", "gm-fill-track");
    track.setAttribute("role", "meter");
    track.setAttribute("aria-valuemin", "0");
    track.setAttribute("aria-valuemax", "1");
    track.setAttribute("aria-valuenow", String(data.fill));
    track.setAttribute("aria-label", "context window fill");
    const barCls = data.fill > 1 ? " gm-over" : data.fill > 0.8 ? " gm-high" : "";
    const bar = h("div", `gm-fill-bar${barCls}`);
    bar.style.width = `${Math.max(0, Math.min(100, data.fill * 100))}%`;
    track.append(bar);
    fill.append(label, track);
    out.append(fill);
  }

  const cost = data.cost && typeof data.cost === "object" ? data.cost : null;
  if (cost) {
    const box = h("div", "gm-cost");
    const item = (label, key, hint) => {
      const node = h("span", `gm-cost-${key}`);
      node.append(h("span", "gm-label", `${label} `), h("span", "gm-money", money(cost, key)));
      if (hint) node.append(h("span", "gm-muted", ` ${hint}`));
      return node;
    };
    const exp = cost.expected_completion_tokens;
    const max = cost.max_completion_tokens;
    box.append(
      item("low", "low", "(prompt only)"),
      item("expected", "expected", typeof exp === "number" ? `(+${int(exp)} completion)` : ""),
      item("high", "high", typeof max === "number" ? `(+${int(max)} completion, max)` : ""),
    );
    out.append(box);
    if (cost.source) out.append(h("div", "gm-note gm-source", `prices: ${String(cost.source)}`));
  }
  if (data.exact === false || data.note) {
    const note = data.note ? String(data.note) : "";
    out.append(h("div", "gm-note gm-approx", data.exact === false
      ? `≈ approximate count${note ? `: ${note}` : ""}` : note));
  }
}

function render({ model, el }) {
  const root = h("div", "gm-root gm-counter");
  // Every TokenCounter syncs `text`; the live form (no prompt given) has `live: true`.
  const flag = model.get("live");
  const live = flag === undefined ? model.get("text") !== undefined : flag === true;
  const out = h("div", "gm-out");
  let area = null;
  let status = null;
  let timer = null;
  let giveUp = null;

  const redraw = () => {
    const frag = document.createDocumentFragment();
    const box = h("div");
    drawState(box, model.get("data"));
    frag.append(...box.childNodes);
    out.replaceChildren(frag);
  };
  const settle = () => {
    clearTimeout(giveUp);
    giveUp = null;
    root.classList.remove("gm-counting");
    if (status) status.textContent = "";
  };
  const onData = () => {
    if (timer === null) settle();
    redraw();
  };

  let sent = 0;
  const send = () => {
    timer = null;
    const mine = ++sent;
    model.set("text", area.value);
    // ipywidgets calls these for the kernel's replies to this update; `data`
    // (if it changed) arrives before the kernel reports idle.
    model.save_changes({ iopub: { status: (msg) => {
      const state = msg && msg.content && msg.content.execution_state;
      if (state === "idle" && mine === sent && timer === null) settle();
    } } });
    clearTimeout(giveUp);
    giveUp = setTimeout(settle, COUNTING_GIVE_UP_MS);
  };
  const onInput = () => {
    root.classList.add("gm-counting");
    status.textContent = "counting…";
    clearTimeout(timer);
    timer = setTimeout(send, DEBOUNCE_MS);
  };
  const onKeyDown = (ev) => {
    // JupyterLab cancels a line break typed anywhere inside a cell (its Shift+Enter
    // guard), so the text area inserts its own.
    if (ev.key !== "Enter" || ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    ev.preventDefault();
    // insertText keeps the browser's undo history and fires an input event.
    if (!document.execCommand || !document.execCommand("insertText", false, "\n")) {
      area.setRangeText("\n", area.selectionStart, area.selectionEnd, "end");
      onInput();
    }
  };
  const onText = () => {
    // The kernel (or another view) changed `text`: follow it unless the user is typing here.
    const v = model.get("text");
    if (typeof v === "string" && v !== area.value && timer === null && document.activeElement !== area) {
      area.value = v;
    }
  };

  if (live) {
    area = h("textarea", "gm-input");
    area.rows = 5;
    area.spellcheck = false;
    area.placeholder = "Type or paste text to count (lines like 'user:' or 'system:' start chat messages)";
    area.setAttribute("aria-label", "text to count");
    // Keys typed here are text, not JupyterLab shortcuts (Enter, arrows, a, b, ...).
    area.setAttribute("data-lm-suppress-shortcuts", "true");
    const v = model.get("text");
    area.value = typeof v === "string" ? v : "";
    status = h("span", "gm-status");
    status.setAttribute("aria-live", "polite");
    area.addEventListener("input", onInput);
    area.addEventListener("keydown", onKeyDown);
    model.on("change:text", onText);
    const top = h("div", "gm-bar");
    top.append(status);
    root.append(area, top);
  }
  root.append(out);
  redraw();
  model.on("change:data", onData);
  el.replaceChildren(root);

  return () => {
    clearTimeout(timer);
    clearTimeout(giveUp);
    model.off("change:data", onData);
    if (live) {
      model.off("change:text", onText);
      area.removeEventListener("input", onInput);
      area.removeEventListener("keydown", onKeyDown);
    }
    el.replaceChildren();
  };
}

export default { render };
