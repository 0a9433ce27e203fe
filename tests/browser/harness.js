// Test harness: mounts a gptmagic front end with a fake anywidget model.
// The fake model keeps what anywidget's model offers a view (get, set,
// save_changes, on, off) and records the calls so tests can count them.
// `<name>.js` is served as the module Jupyter gets: common.js followed by the view
// (tests/browser_support.harness_site writes gptmagic.widgets.views.esm_source).

class FakeModel {
  constructor(state) {
    this.state = { ...state };
    this.handlers = new Map();
    this.sets = [];
    this.saves = 0;
  }
  get(key) {
    return this.state[key];
  }
  set(key, value) {
    this.sets.push([key, value]);
    const old = this.state[key];
    this.state[key] = value;
    if (old !== value) this.emit(`change:${key}`);
  }
  save_changes(callbacks) {
    this.saves += 1;
    this.callbacks = callbacks;
  }
  // What ipywidgets does when the kernel reports on the last update.
  kernelStatus(state) {
    const status = this.callbacks && this.callbacks.iopub && this.callbacks.iopub.status;
    if (status) status({ content: { execution_state: state } });
  }
  on(event, cb) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(cb);
  }
  off(event, cb) {
    const set = this.handlers.get(event);
    if (!set) return;
    if (cb) set.delete(cb);
    else set.clear();
  }
  emit(event) {
    for (const cb of [...(this.handlers.get(event) || [])]) cb();
  }
  // What the kernel does: replace a trait and notify the views.
  push(key, value) {
    this.state[key] = value;
    this.emit(`change:${key}`);
  }
  listeners() {
    let n = 0;
    for (const set of this.handlers.values()) n += set.size;
    return n;
  }
}

const mounts = [];

async function mount(name, state, opts = {}) {
  const mod = await import(`./${name}.js`);
  const host = document.createElement("div");
  host.className = `gm-host${opts.clip ? " gm-clip" : ""}`;
  if (opts.style) host.setAttribute("style", opts.style);
  const el = document.createElement("div");
  host.append(el);
  document.getElementById("mounts").append(host);
  const model = new FakeModel(state);
  const t0 = performance.now();
  const cleanup = mod.default.render({ model, el });
  const ms = performance.now() - t0;
  mounts.push({ model, el, host, cleanup });
  return { id: mounts.length - 1, ms };
}

// Render time of a `data` state, including the first layout (forced by reading
// offsetHeight); also how many tokens were drawn, so a refusal cannot pass as fast.
async function time(name, data) {
  const mod = await import(`./${name}.js`);
  const el = document.createElement("div");
  document.getElementById("mounts").append(el);
  const model = new FakeModel({ data });
  const t0 = performance.now();
  const cleanup = mod.default.render({ model, el });
  void el.offsetHeight;
  const ms = performance.now() - t0;
  const tokens = el.querySelectorAll(".gm-tok").length;
  if (typeof cleanup === "function") cleanup();
  el.remove();
  return { ms, tokens };
}

function clear() {
  for (const m of mounts.splice(0)) {
    if (typeof m.cleanup === "function") m.cleanup();
    m.host.remove();
  }
}

window.gm = { mount, time, clear, mounts, ready: true };
