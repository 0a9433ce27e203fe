// gptmagic token counter: draws a "counter" state (docs/widgets.md).
// Shipped after common.js (h, refusal, ...: see views.esm_source).
// The live form (`live: true`) adds a textarea: typing is debounced, then
// written to `text`; the kernel recounts and replaces `data`. A toolbar above it
// writes `model` (on Enter or blur) and `max_tokens` (debounced; empty = none).

const KIND = "counter";
const VERSION = 1;
const DEBOUNCE_MS = 150;
// A recount that leaves `data` unchanged sends no change event; the kernel going
// idle after our update ends "counting…" then. Front ends that do not report
// that (a save_changes without callbacks) end it after this long.
const COUNTING_GIVE_UP_MS = 5000;
// Offered by the model field (plus the current model); any name may be typed.
// Current models first (gpt-4o, gpt-4o-mini, gpt-4.1 and gpt-4.1-mini retire on 2027-01-14);
// gpt-4 and gpt-3.5-turbo stay for their older encoding (cl100k_base).
const COMMON_MODELS = ["gpt-4.1-nano", "gpt-5-nano", "gpt-5-mini", "gpt-5", "o3-mini", "gpt-4",
  "gpt-3.5-turbo", "local"];
const MAX_TOKENS_HINT = "max_tokens: a whole number above 0, or empty for none";

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

// `max_tokens` as typed: {ok: true, value: int|null} or {ok: false}.
function parseMaxTokens(input) {
  if (input.validity && input.validity.badInput) return { ok: false };
  const raw = input.value.trim();
  if (raw === "") return { ok: true, value: null };
  if (!/^[0-9]+$/.test(raw)) return { ok: false };
  const n = Number(raw);
  return Number.isSafeInteger(n) && n > 0 ? { ok: true, value: n } : { ok: false };
}

function field(labelText, input, cls) {
  const label = h("label", `gm-group ${cls}`);
  label.append(h("span", "gm-label", labelText), input);
  return label;
}

function render({ model, el }) {
  const root = h("div", "gm-root gm-counter");
  // Every TokenCounter syncs `text`; the live form (no prompt given) has `live: true`.
  const flag = model.get("live");
  const live = flag === undefined ? model.get("text") !== undefined : flag === true;
  const out = h("div", "gm-out");
  let area = null;
  let status = null;
  let timer = null; // text typed, not yet sent
  let numTimer = null; // max_tokens typed, not yet sent
  let giveUp = null;
  let tools = null;

  const redraw = () => {
    const frag = document.createDocumentFragment();
    const box = h("div");
    drawState(box, model.get("data"));
    frag.append(...box.childNodes);
    out.replaceChildren(frag);
  };
  const pending = () => timer !== null || numTimer !== null;
  // Nothing typed and unsent, and no update waiting for the kernel.
  const idle = () => !pending() && giveUp === null;
  const settle = () => {
    clearTimeout(giveUp);
    giveUp = null;
    root.classList.remove("gm-counting");
    if (status) status.textContent = "";
  };
  const counting = () => {
    root.classList.add("gm-counting");
    status.textContent = "counting…";
  };
  const onData = () => {
    if (!pending()) settle();
    redraw();
  };

  let sent = 0;
  // Write traits to the kernel, which recounts; "counting…" ends with its reply.
  const write = (pairs) => {
    const mine = ++sent;
    counting();
    for (const [key, value] of pairs) model.set(key, value);
    // ipywidgets calls these for the kernel's replies to this update; `data`
    // (if it changed) arrives before the kernel reports idle.
    model.save_changes({ iopub: { status: (msg) => {
      const state = msg && msg.content && msg.content.execution_state;
      if (state === "idle" && mine === sent && !pending()) settle();
    } } });
    clearTimeout(giveUp);
    giveUp = setTimeout(settle, COUNTING_GIVE_UP_MS);
  };
  const send = () => {
    timer = null;
    write([["text", area.value]]);
  };
  const onInput = () => {
    counting();
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

  // ---- the toolbar: model and max_tokens ----
  const makeTools = () => {
    const uid = Math.random().toString(36).slice(2, 10);
    const bar = h("div", "gm-bar gm-tools");
    const modelIn = h("input", "gm-field gm-model-input");
    modelIn.type = "text";
    modelIn.spellcheck = false;
    modelIn.autocomplete = "off";
    modelIn.placeholder = "model";
    const list = h("datalist");
    list.id = `gm-models-${uid}`;
    modelIn.setAttribute("list", list.id);
    const maxIn = h("input", "gm-field gm-max-input");
    maxIn.type = "number";
    maxIn.min = "1";
    maxIn.step = "1";
    maxIn.placeholder = "none";
    maxIn.title = "completion budget (max_tokens); empty for none";
    const msg = h("span", "gm-field-msg");
    msg.id = `gm-max-msg-${uid}`;
    msg.setAttribute("aria-live", "polite");
    for (const input of [modelIn, maxIn]) {
      // Keys typed here are input, not JupyterLab shortcuts.
      input.setAttribute("data-lm-suppress-shortcuts", "true");
    }
    bar.append(field("model", modelIn, "gm-model-field"), list,
      field("max_tokens", maxIn, "gm-max-field"), msg);

    const currentModel = () => {
      const v = model.get("model");
      return typeof v === "string" ? v : "";
    };
    const currentMax = () => {
      const v = model.get("max_tokens");
      return typeof v === "number" ? v : null;
    };
    const fillList = () => {
      const names = [...COMMON_MODELS];
      const cur = currentModel();
      if (cur && !names.includes(cur)) names.unshift(cur);
      list.replaceChildren(...names.map((n) => {
        const opt = h("option");
        opt.value = n;
        return opt;
      }));
    };
    const showMsg = (text, input) => {
      msg.textContent = text;
      if (text) {
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", msg.id);
      } else {
        for (const i of [modelIn, maxIn]) {
          i.removeAttribute("aria-invalid");
          i.removeAttribute("aria-describedby");
        }
      }
    };
    let shownModel = currentModel(); // the trait value the field last showed
    modelIn.value = shownModel;
    maxIn.value = currentMax() === null ? "" : String(currentMax());
    fillList();

    const commitModel = () => {
      const name = modelIn.value.trim();
      if (name === "") {
        showMsg("model: enter a model name (e.g. gpt-4o)", modelIn);
        return;
      }
      if (modelIn.getAttribute("aria-invalid")) showMsg("", modelIn);
      if (name === currentModel()) {
        modelIn.value = name;
        return;
      }
      modelIn.value = name;
      shownModel = name;
      write([["model", name]]);
    };
    const sendMax = () => {
      numTimer = null;
      const got = parseMaxTokens(maxIn);
      if (!got.ok) return;
      if (got.value !== currentMax()) write([["max_tokens", got.value]]);
      else if (idle()) settle();
    };
    const onModelKey = (ev) => {
      if (ev.isComposing) return;
      if (ev.key === "Enter") {
        ev.preventDefault();
        commitModel();
      } else if (ev.key === "Escape") {
        modelIn.value = currentModel();
        if (modelIn.getAttribute("aria-invalid")) showMsg("", modelIn);
      }
    };
    const onModelInput = (ev) => {
      // Picking a suggestion from the list commits it at once.
      if (typeof InputEvent !== "undefined" && ev instanceof InputEvent
        && ev.inputType === "insertReplacementText") commitModel();
    };
    const onMaxInput = () => {
      clearTimeout(numTimer);
      numTimer = null;
      const got = parseMaxTokens(maxIn);
      if (!got.ok) {
        showMsg(MAX_TOKENS_HINT, maxIn);
        if (idle()) settle();
        return;
      }
      showMsg("", maxIn);
      if (got.value === currentMax()) {
        if (idle()) settle();
        return;
      }
      counting();
      numTimer = setTimeout(sendMax, DEBOUNCE_MS);
    };
    const onMaxKey = (ev) => {
      if (ev.key !== "Enter" || ev.isComposing) return;
      ev.preventDefault();
      if (numTimer !== null) {
        clearTimeout(numTimer);
        sendMax();
      }
    };
    const onModel = () => {
      // Python (or another view) changed `model`: show it unless the user is editing it here.
      fillList();
      const v = currentModel();
      const editing = document.activeElement === modelIn && modelIn.value.trim() !== shownModel;
      if (!editing) modelIn.value = v;
      shownModel = v;
    };
    const onMax = () => {
      const v = currentMax();
      const got = parseMaxTokens(maxIn);
      const dirty = numTimer !== null || !(got.ok && got.value === v);
      if (dirty && document.activeElement === maxIn) return;
      maxIn.value = v === null ? "" : String(v);
      showMsg("", maxIn);
    };
    const on = [[modelIn, "keydown", onModelKey], [modelIn, "change", commitModel],
      [modelIn, "input", onModelInput], [maxIn, "input", onMaxInput], [maxIn, "keydown", onMaxKey]];
    for (const [node, type, fn] of on) node.addEventListener(type, fn);
    model.on("change:model", onModel);
    model.on("change:max_tokens", onMax);
    return {
      bar,
      destroy() {
        clearTimeout(numTimer);
        for (const [node, type, fn] of on) node.removeEventListener(type, fn);
        model.off("change:model", onModel);
        model.off("change:max_tokens", onMax);
      },
    };
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
    tools = makeTools();
    const top = h("div", "gm-bar");
    top.append(status);
    root.append(tools.bar, area, top);
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
      tools.destroy();
      model.off("change:text", onText);
      area.removeEventListener("input", onInput);
      area.removeEventListener("keydown", onKeyDown);
    }
    el.replaceChildren();
  };
}

export default { render };
