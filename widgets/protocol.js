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

// Model side, called from `initialize`: keep the newest frame, load the view module,
// tell the rendered views. Returns the cleanup function.
export function attachStream(model) {
  const key = model.get("stream_id");
  const stream = { frame: null, raw: null, frames: 0, listeners: new Set(), factory: null, api: null,
    version: 0, loading: 0, error: null, ready: null, legacy: null };
  STREAMS.set(key, stream);
  const onMsg = (msg, buffers) => {
    if (!msg || msg.type !== "frame" || !buffers || !buffers.length) return;
    stream.raw = [msg, buffers];
    stream.frame = { ...msg, data: asFloat32(buffers[0]) };
    stream.frames += 1;
    stream.listeners.forEach((fn) => fn("frame"));
  };
  const onSource = () => { stream.ready = loadView(model, stream); };
  model.on("msg:custom", onMsg);
  model.on("change:_view_js", onSource);
  model.on("change:_api_js", onSource);
  model.send({ type: "ready" }); // a new frontend: frames sent before it will never be acked
  onSource();
  return () => {
    model.off("msg:custom", onMsg);
    model.off("change:_view_js", onSource);
    model.off("change:_api_js", onSource);
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
  const proxy = new Proxy(model, {
    get(target, key) {
      if (key === "on") {
        return (event, fn, ...rest) => {
          target.on(event, fn, ...rest);
          if (event === "msg:custom" && stream.raw) fn(...stream.raw);
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

const TRAITS = ["info", "title", "status", "scale", "log_scale", "height", "params"];

// View side, called from `render`: the shell around the view, the draw loop, acks.
export function mountView(model, el) {
  const stream = STREAMS.get(model.get("stream_id")) ?? (attachStream(model), STREAMS.get(model.get("stream_id")));
  const root = element("div", "eegkit-view", el);
  Object.assign(root.dataset, { frames: "0", draws: "0", lastSeq: "-1", firstValue: "", state: "ok", views: "0" });
  const head = element("div", "eegkit-head", root);
  const title = element("span", "eegkit-title", head);
  const meta = element("span", "eegkit-meta", head);
  const note = element("span", "eegkit-note", head);
  const body = element("div", "eegkit-body", root);
  const canvas = element("canvas", "", body);
  const wait = element("div", "eegkit-wait", body, "waiting for data…");
  const banner = element("div", "eegkit-status", body);
  banner.hidden = true;
  const ctx = canvas.getContext("2d");
  let view = null;        // the view instance
  let version = 0;        // stream.version it was made from
  let viewError = null;   // the view's last drawing error
  let pending = 0, draws = 0, acked = -1, drawMs = null, size = "", stale = true;

  let legacy = null;      // an old-style widget's render: { def, cleanup }

  // Old-style bundle: its own render draws and acks; the host's shell stays hidden.
  function makeLegacy() {
    if (legacy && legacy.def === stream.legacy?.def) return true;
    if (legacy) { if (typeof legacy.cleanup === "function") legacy.cleanup(); legacy = null; }
    if (!stream.legacy) { root.hidden = false; root.className = "eegkit-view"; return false; }
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

  function draw() {
    pending = 0;
    if (makeLegacy()) return;
    makeView();
    if (stale) header();
    const w = canvas.parentElement.clientWidth;
    if (w <= 0 || !view) return; // not on screen (or no view yet): draw when it is
    const info = model.get("info") || {};
    const h = model.get("height") || (view.height ? view.height(info, w) : 240);
    const dpr = globalThis.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      canvas.style.height = `${h}px`;
    }
    if (size !== `${w}x${h}`) {
      size = `${w}x${h}`;
      if (view.resize) view.resize(w, h);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const frame = stream.frame;
    if (!frame) return;
    const th = theme(root);
    ctx.font = `11px ${th.font}`;
    const t0 = performance.now();
    try {
      note.textContent = view.draw(ctx, frame, { w, h, th, info }) || "";
      if (viewError) { viewError = null; header(); }
    } catch (err) {
      if (!viewError) console.error(err); // once, with its stack; the banner keeps the message
      viewError = `view error: ${message(err)}`;
      header();
    }
    const dt = performance.now() - t0;
    drawMs = drawMs === null ? dt : 0.9 * drawMs + 0.1 * dt;
    wait.hidden = true;
    const first = frame.data.find((x) => Number.isFinite(x));
    Object.assign(root.dataset, { draws: String(++draws), lastSeq: String(frame.seq), drawMs: drawMs.toFixed(2),
      firstValue: first === undefined ? "" : String(first) });
    // the frame is consumed even when the view failed on it: the kernel keeps sending,
    // and a fixed view (hot reload) draws the next one
    if (frame.seq !== acked) {
      acked = frame.seq;
      model.send({ type: "ack", seq: frame.seq });
    }
  }

  const request = () => { if (!pending) pending = requestAnimationFrame(draw); };
  const onStream = (kind) => {
    if (kind === "view") { stale = true; if (makeLegacy()) return; }
    if (legacy) return;
    root.dataset.frames = String(stream.frames);
    request();
  };
  const onTraits = () => { stale = true; request(); };
  stream.listeners.add(onStream);
  TRAITS.forEach((name) => model.on(`change:${name}`, onTraits));
  const resize = new ResizeObserver(request);
  resize.observe(root);
  const themeWatch = new MutationObserver(request);
  themeWatch.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-name", "data-jp-theme-light"] });
  onStream("view");
  return () => {
    stream.listeners.delete(onStream);
    TRAITS.forEach((name) => model.off(`change:${name}`, onTraits));
    resize.disconnect();
    themeWatch.disconnect();
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
