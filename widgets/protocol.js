// eegkit's view host: the anywidget module (`_esm`) of every StreamView.
//
// It speaks the frame protocol (README.md beside this file) once for all views:
// binary frames from `msg:custom`, listened to from `initialize`; a "ready" hello;
// at most one draw per animation frame; one ack per frame drawn; resizing with the
// container; the header, status banner and data-* test counters. The view itself (a
// built-in view or a plugin's ui/bundle.js) is an ES module whose source text
// arrives in the `_view_js` trait; it only draws:
//
//   export default function view({ model, api, el }) {
//     return { name, title?, meta?(info), height?(info, width), resize?(w, h),
//              draw(ctx, frame, { w, h, th, info }) -> note, destroy?() };
//   }
//
// `api` is the module in the `_api_js` trait (draw.js): helpers, so views import nothing.
// A new source in either trait (hot reload) is imported again and replaces the view;
// a source that fails keeps the previous view running and shows the error.

// Per-model state, keyed by the `stream_id` trait: anywidget hands `initialize` and
// each `render` a different proxy object of the same model.
const STREAMS = new Map();
// Imported modules by source text: views showing the same file share one import.
const MODULES = new Map();

// Import an ES module from its source text (as anywidget does with `_esm`).
export function importSource(src, name = "view.js") {
  if (!MODULES.has(src)) {
    const text = `${src}\n//# sourceURL=eegkit-view/${name}`;
    const url = URL.createObjectURL(new Blob([text], { type: "text/javascript" }));
    const loaded = import(/* webpackIgnore: true */ url).catch((err) => {
      // Node's ESM loader (the JS unit tests) does not import blob: URLs
      if (err && err.code === "ERR_UNSUPPORTED_ESM_URL_SCHEME") {
        return import(`data:text/javascript;charset=utf-8,${encodeURIComponent(text)}`);
      }
      throw err;
    }).finally(() => URL.revokeObjectURL(url));
    loaded.catch(() => MODULES.delete(src)); // a failed source may be fixed and sent again
    MODULES.set(src, loaded);
  }
  return MODULES.get(src);
}

// Decode a frame's float32 buffer without copying when it is aligned.
export function asFloat32(buf) {
  const dv = buf instanceof DataView ? buf : new DataView(buf.buffer ?? buf);
  if (dv.byteOffset % 4 === 0) return new Float32Array(dv.buffer, dv.byteOffset, dv.byteLength >> 2);
  return new Float32Array(dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength));
}

// Shift a delta frame's points (the window's newest `delta`) into the previous window.
// Returns the new window's data, or null when the delta does not continue it.
function shiftIn(stream, msg, tail) {
  const prev = stream.frame, n = msg.delta;
  const [nch, npts] = msg.shape;
  const per = msg.layout === "minmax" ? 2 : 1;
  if (!prev || prev.layout !== msg.layout || prev.step !== msg.step || prev.shape[0] !== nch
    || prev.shape[1] !== npts || msg.first_sample - prev.first_sample !== n * msg.step
    || tail.length !== nch * n * per) return null;
  // two windows, swapped: the one drawn last stays intact while the next is filled
  let out = stream.spare;
  if (!out || out.length !== prev.data.length) out = new Float32Array(prev.data.length);
  const row = npts * per, keep = (npts - n) * per;
  for (let c = 0; c < nch; c++) {
    out.set(prev.data.subarray(c * row + n * per, (c + 1) * row), c * row);
    out.set(tail.subarray(c * n * per, (c + 1) * n * per), c * row + keep);
  }
  stream.spare = prev.data.buffer === tail.buffer ? null : prev.data;
  return out;
}

// Is any rendered output of the stream on screen (and the page shown)? Tell the
// kernel when that changes: it sends nothing to a stream nobody can see.
function updateVisibility(model, stream) {
  // an old-style bundle acks as it draws: it is always "visible" to the kernel
  const visible = !!stream.legacy || stream.onScreen.size > 0 && !(globalThis.document && document.hidden);
  if (visible === stream.visible) return;
  stream.visible = visible;
  model.send({ type: "visibility", visible });
}

// Model side, called from `initialize`: keep the newest window, load the view module,
// ack frames while some output is on screen, tell the rendered views. Returns the cleanup.
export function attachStream(model) {
  const key = model.get("stream_id");
  const stream = { frame: null, spare: null, frames: 0, listeners: new Set(), factory: null, api: null,
    version: 0, loading: 0, error: null, ready: null, legacy: null, legacyListeners: new Set(),
    onScreen: new Set(), visible: null };
  STREAMS.set(key, stream);
  const onMsg = (msg, buffers) => {
    if (!msg || msg.type !== "frame" || !buffers || !buffers.length) return;
    let data = asFloat32(buffers[0]);
    if (msg.delta !== undefined) {
      data = shiftIn(stream, msg, data);
      if (!data) { model.send({ type: "resync", seq: msg.seq }); return; } // e.g. a frame sent before "ready"
      msg = { ...msg };
      delete msg.delta;
    }
    stream.frame = { ...msg, data };
    stream.frames += 1;
    // acked when received, not when drawn: every delta is needed, the draw takes only
    // the newest window at the next animation frame, and the kernel keeps at most two
    // frames in flight; while no output is on screen nothing is acked or drawn
    if (stream.visible && !stream.legacy) model.send({ type: "ack", seq: msg.seq });
    if (stream.legacyListeners.size) {
      const whole = [msg, [new DataView(data.buffer, data.byteOffset, data.byteLength)]];
      stream.legacyListeners.forEach((fn) => fn(...whole));
    }
    stream.listeners.forEach((fn) => fn("frame"));
  };
  const onSource = () => { stream.ready = loadView(model, stream); };
  const onPage = () => updateVisibility(model, stream);
  model.on("msg:custom", onMsg);
  model.on("change:_view_js", onSource);
  model.on("change:_api_js", onSource);
  globalThis.document?.addEventListener?.("visibilitychange", onPage);
  model.send({ type: "ready" }); // a new frontend: frames sent before it will never be acked
  onSource();
  return () => {
    model.off("msg:custom", onMsg);
    model.off("change:_view_js", onSource);
    model.off("change:_api_js", onSource);
    globalThis.document?.removeEventListener?.("visibilitychange", onPage);
    stopLegacy(stream);
    if (STREAMS.get(key) === stream) STREAMS.delete(key);
  };
}

async function loadView(model, stream) {
  const token = ++stream.loading;
  const name = String(model.get("view") || "view").split(/[\\/]/).pop();
  try {
    const [api, mod] = await Promise.all([importSource(model.get("_api_js") || "", "draw.js"),
      importSource(model.get("_view_js") || "", name)]);
    const legacy = await legacyWidget(mod.default);
    if (legacy) {
      if (token !== stream.loading) return;
      startLegacy(model, stream, legacy);
      Object.assign(stream, { api, factory: null, error: null, version: stream.version + 1 });
      stream.listeners.forEach((fn) => fn("view"));
      return;
    }
    if (typeof mod.default !== "function") {
      throw new TypeError(`its default export must be a function ({ model, api, el }) => ({ draw, ... }), `
        + `got ${typeof mod.default}`);
    }
    if (token !== stream.loading) return; // a newer source arrived meanwhile
    stopLegacy(stream);
    Object.assign(stream, { api, factory: mod.default, error: null, version: stream.version + 1 });
  } catch (err) {
    if (token !== stream.loading) return;
    console.error(err);
    stream.error = `view ${name} failed to load: ${err && err.message ? err.message : err}`;
  }
  stream.listeners.forEach((fn) => fn("view"));
}

// Plugin API 1.x compatibility: a bundle written before view modules is a whole
// anywidget module (`export default {initialize, render}` or a factory returning one)
// with its own frame listener and acks. Returns that definition, or null for a view.
async function legacyWidget(def) {
  const isWidget = (d) => d && typeof d === "object" && typeof d.draw !== "function"
    && (typeof d.render === "function" || typeof d.initialize === "function");
  if (isWidget(def)) return def;
  // anywidget calls a factory without arguments; a view takes ({model, api, el}), so
  // only a function declaring no parameter may be an old-style factory
  if (typeof def === "function" && def.length === 0) {
    let out;
    try { out = await def(); } catch { return null; }
    if (isWidget(out)) return out;
  }
  return null;
}

// Run an old-style widget's `initialize` on the model. Frames that came before it are
// handed to its listener (it registered too late for them), as anywidget would have.
function startLegacy(model, stream, def) {
  stopLegacy(stream);
  // its frame listener gets whole windows (the host merges delta frames), starting
  // with the newest one if frames came before it listened
  const proxy = new Proxy(model, {
    get(target, key) {
      if (key === "on" || key === "off") {
        return (event, fn, ...rest) => {
          if (event !== "msg:custom") return target[key](event, fn, ...rest);
          if (key === "off") return stream.legacyListeners.delete(fn);
          stream.legacyListeners.add(fn);
          const f = stream.frame;
          if (f) fn(f, [new DataView(f.data.buffer, f.data.byteOffset, f.data.byteLength)]);
        };
      }
      const v = target[key];
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  stream.legacy = { def, model: proxy, cleanup: null };
  const out = def.initialize ? def.initialize({ model: proxy }) : null;
  if (typeof out === "function") stream.legacy.cleanup = out;
}

function stopLegacy(stream) {
  if (!stream.legacy) return;
  if (stream.legacy.cleanup) stream.legacy.cleanup();
  stream.legacy = null;
  stream.legacyListeners.clear();
}

// Promise settled when the model's view source has been imported (or failed to).
export function loaded(model) {
  const stream = STREAMS.get(model.get("stream_id"));
  return stream ? stream.ready : Promise.resolve();
}

// JupyterLab's theme variables, with light/dark fallbacks outside JupyterLab.
export function theme(el) {
  const cs = getComputedStyle(el);
  const has = cs.getPropertyValue("--jp-layout-color0").trim() !== "";
  const light = document.body.dataset.jpThemeLight;
  const dark = light !== undefined ? light === "false"
    : !has && typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches;
  const v = (name, fb) => cs.getPropertyValue(name).trim() || fb;
  return {
    dark,
    fg: v("--jp-ui-font-color1", dark ? "#e0e0e0" : "#212121"),
    muted: v("--jp-ui-font-color2", dark ? "#a0a0a0" : "#616161"),
    faint: v("--jp-ui-font-color3", dark ? "#707070" : "#9e9e9e"),
    grid: v("--jp-border-color2", dark ? "#333333" : "#e6e6e6"),
    axis: v("--jp-border-color1", dark ? "#555555" : "#bdbdbd"),
    bg: v("--jp-layout-color0", dark ? "#111111" : "#ffffff"),
    track: v("--jp-layout-color2", dark ? "#2a2a2a" : "#eeeeee"),
    accent: v("--jp-brand-color1", dark ? "#64b5f6" : "#1976d2"),
    font: v("--jp-ui-font-family", "system-ui, sans-serif"),
  };
}

function element(tag, className, parent, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

function message(err) {
  return err && err.message ? err.message : String(err);
}

const TRAITS = ["info", "title", "status", "scale", "log_scale", "height", "params", "paused", "seconds"];

// View side, called from `render`: the shell around the view, the draw loop, acks.
export function mountView(model, el) {
  const stream = STREAMS.get(model.get("stream_id")) ?? (attachStream(model), STREAMS.get(model.get("stream_id")));
  const root = element("div", "eegkit-view", el);
  Object.assign(root.dataset, { frames: "0", draws: "0", lastSeq: "-1", firstValue: "", state: "ok", views: "0" });
  const head = element("div", "eegkit-head", root);
  const title = element("span", "eegkit-title", head);
  const meta = element("span", "eegkit-meta", head);
  const note = element("span", "eegkit-note", head);
  const tools = element("span", "eegkit-tools", head);
  const body = element("div", "eegkit-body", root);
  const canvas = element("canvas", "", body);
  const wait = element("div", "eegkit-wait", body, "waiting for data…");
  const banner = element("div", "eegkit-status", body);
  banner.hidden = true;
  const ctx = canvas.getContext("2d");
  let view = null;        // the view instance
  let version = 0;        // stream.version it was made from
  let viewError = null;   // the view's last drawing error
  let pending = 0, draws = 0, drawMs = null, size = "", stale = true;

  let legacy = null;      // an old-style widget's render: { def, cleanup }

  // Old-style bundle: its own render draws and acks; the host's shell stays hidden.
  function makeLegacy() {
    if (legacy && legacy.def === stream.legacy?.def) return true;
    if (legacy) { // the bundle was replaced (hot reload): back to the host's shell
      if (typeof legacy.cleanup === "function") legacy.cleanup();
      legacy = null;
      root.hidden = false;
      root.className = "eegkit-view";
      version = -1;
    }
    if (!stream.legacy) return false;
    root.hidden = true;
    root.className = "eegkit-host"; // tests find the bundle's own root by .eegkit-view
    legacy = { def: stream.legacy.def, cleanup: null };
    version = stream.version;
    try {
      legacy.cleanup = stream.legacy.def.render?.({ model: stream.legacy.model, el });
    } catch (err) {
      console.error(err);
    }
    return true;
  }

  function makeView() {
    if (!stream.factory || version === stream.version) return;
    if (view && view.destroy) view.destroy();
    version = stream.version;
    viewError = null;
    try {
      view = stream.factory({ model, api: stream.api, el: body });
      root.className = `eegkit-view eegkit-${view.name || "view"}`;
      root.dataset.views = String(+root.dataset.views + 1);
      size = "";
    } catch (err) {
      view = null;
      viewError = `view failed to start: ${message(err)}`;
    }
    stale = true;
  }

  function header() {
    stale = false;
    const info = model.get("info") || {};
    title.textContent = model.get("title") || (view && (view.title || view.name)) || "";
    meta.textContent = view && view.meta ? view.meta(info)
      : `${(info.ch_names || []).length} ch · ${api().fmtNumber(info.sfreq || 0)} Hz`;
    const st = model.get("status") || {};
    const error = st.state === "disabled" ? `Stage disabled: ${st.error || "no error text"}`
      : stream.error || viewError;
    root.dataset.state = st.state === "disabled" ? "disabled" : error ? "error" : "ok";
    banner.hidden = !error;
    banner.textContent = error || "";
  }

  const api = () => stream.api || { fmtNumber: String };

  // Controls: the host's pause, then the view's own (`controls`), as buttons in the
  // header and keys on the focused view (MNE's browser keys where they exist).
  const pause = { id: "pause", keys: [" ", "p"], label: "‖", title: "pause / resume (space)", run() {
    model.set("paused", !model.get("paused"));
    model.save_changes?.();
  } };
  let controls = [pause];
  function makeControls() {
    tools.replaceChildren();
    controls = [pause, ...((view && view.controls) || [])];
    for (const c of controls) {
      if (c.hidden) continue; // a key only
      const b = element("button", "eegkit-button", tools, c.label);
      b.title = c.title || "";
      b.tabIndex = -1; // the view takes the keys; buttons are for the mouse
      b.dataset.control = c.id || c.label;
      b.onclick = () => run(c);
      c.button = b;
    }
  }
  function run(c) {
    try { c.run(); } catch (err) { console.error(err); }
    stale = true;
    request();
  }
  root.tabIndex = 0;
  const onKey = (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const c = controls.find((x) => x.keys && x.keys.includes(e.key));
    if (!c) return;
    e.preventDefault?.();
    e.stopPropagation?.(); // JupyterLab's command mode must not see them
    run(c);
  };
  root.addEventListener?.("keydown", onKey);

  // Measured only when the container changes (a ResizeObserver callback), never in the
  // draw: reading layout after the last draw's DOM writes would force a layout per frame.
  let width = -1, dpr = 1, th = null, held = null;
  const visible = () => stream.onScreen.has(token) && !(globalThis.document && document.hidden);

  function draw() {
    pending = 0;
    if (makeLegacy()) return;
    if (version !== stream.version) { makeView(); makeControls(); }
    if (stale) header();
    if (!visible()) return; // scrolled away, collapsed or a hidden tab: drawn when seen again
    if (width < 0) width = canvas.parentElement.clientWidth;
    const w = width;
    root.dataset.width = String(w);
    if (w <= 0) width = -1; // laid out without a size (e.g. skipped off-screen content): measure again
    if (w <= 0 || !view) return;
    const info = model.get("info") || {};
    const h = model.get("height") || (view.height ? view.height(info, w) : 240);
    if (size !== `${w}x${h}`) {
      size = `${w}x${h}`;
      dpr = globalThis.devicePixelRatio || 1;
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      canvas.style.height = `${h}px`;
      if (view.resize) view.resize(w, h);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const paused = !!model.get("paused");
    if (paused && !held && stream.frame) held = { ...stream.frame, data: stream.frame.data.slice() };
    if (!paused) held = null;
    const frame = held || stream.frame;
    if (pause.button) pause.button.textContent = paused ? "▶" : "‖";
    root.dataset.paused = String(paused);
    if (!frame) return;
    if (!th) th = theme(root);
    ctx.font = `11px ${th.font}`;
    const t0 = performance.now();
    let text = "";
    try {
      text = view.draw(ctx, frame, { w, h, th, info }) || "";
      if (viewError) { viewError = null; header(); }
    } catch (err) {
      if (!viewError) console.error(err); // once, with its stack; the banner keeps the message
      viewError = `view error: ${message(err)}`;
      header();
    }
    if (paused) text = text ? `paused · ${text}` : "paused";
    if (note.textContent !== text) note.textContent = text;
    const dt = performance.now() - t0;
    drawMs = drawMs === null ? dt : 0.9 * drawMs + 0.1 * dt;
    if (!wait.hidden) wait.hidden = true;
    let first;
    for (const x of frame.data) if (x === x) { first = x; break; }
    Object.assign(root.dataset, { draws: String(++draws), lastSeq: String(frame.seq), drawMs: drawMs.toFixed(2),
      firstValue: first === undefined ? "" : String(first) });
  }

  const request = () => { if (!pending) pending = requestAnimationFrame(draw); };
  const onStream = (kind) => {
    if (kind === "view") { stale = true; if (makeLegacy()) { updateVisibility(model, stream); return; } }
    if (legacy) return;
    root.dataset.frames = String(stream.frames);
    if (kind === "frame" && (model.get("paused") || !visible())) return;
    request();
  };
  const onTraits = () => { stale = true; request(); };
  stream.listeners.add(onStream);
  TRAITS.forEach((name) => model.on(`change:${name}`, onTraits));
  const resize = new ResizeObserver(() => { width = -1; request(); });
  resize.observe(root);
  const themeWatch = new MutationObserver(() => { th = null; request(); });
  themeWatch.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-name", "data-jp-theme-light"] });
  // on screen or not: a view without IntersectionObserver (outside a browser) counts as shown
  const token = {};
  const setOnScreen = (on) => {
    if (on) stream.onScreen.add(token); else stream.onScreen.delete(token);
    root.dataset.visible = String(on);
    updateVisibility(model, stream);
    if (on) request();
  };
  const onPage = () => { if (visible()) request(); };
  globalThis.document?.addEventListener?.("visibilitychange", onPage);
  let seen = null;
  if (typeof IntersectionObserver === "function") {
    seen = new IntersectionObserver((entries) => setOnScreen(entries[entries.length - 1].isIntersecting),
      { rootMargin: "64px" });
    seen.observe(root);
  } else {
    setOnScreen(true);
  }
  onStream("view");
  return () => {
    stream.listeners.delete(onStream);
    TRAITS.forEach((name) => model.off(`change:${name}`, onTraits));
    resize.disconnect();
    themeWatch.disconnect();
    seen?.disconnect();
    globalThis.document?.removeEventListener?.("visibilitychange", onPage);
    root.removeEventListener?.("keydown", onKey);
    setOnScreen(false);
    if (pending) cancelAnimationFrame(pending);
    if (view && view.destroy) view.destroy();
    if (legacy && typeof legacy.cleanup === "function") legacy.cleanup();
  };
}

export default {
  initialize({ model }) {
    return attachStream(model);
  },
  render({ model, el }) {
    return mountView(model, el);
  },
};
