// Shared parts of eegkit's built-in views: the frame protocol, the view shell
// (header, canvas, status banner), theme colours and number formatting.
// eegkit.notebook._widget inlines this file into each view (anywidget loads a view from
// text, so the browser cannot resolve a relative import itself).

// Per-model state, keyed by the `stream_id` trait: anywidget hands `initialize` and
// each `render` a different proxy object of the same model.
const STREAMS = new Map();

// Model side, called from `initialize`: keep the newest frame, tell the views.
export function attachStream(model) {
  const key = model.get("stream_id");
  const stream = { frame: null, frames: 0, listeners: new Set() };
  STREAMS.set(key, stream);
  const onMsg = (msg, buffers) => {
    if (!msg || msg.type !== "frame" || !buffers || !buffers.length) return;
    stream.frame = { ...msg, data: asFloat32(buffers[0]) };
    stream.frames += 1;
    stream.listeners.forEach((fn) => fn());
  };
  model.on("msg:custom", onMsg);
  model.send({ type: "ready" }); // a new frontend: frames sent before it will never be acked
  return () => {
    model.off("msg:custom", onMsg);
    if (STREAMS.get(key) === stream) STREAMS.delete(key);
  };
}

function asFloat32(buf) {
  const dv = buf instanceof DataView ? buf : new DataView(buf.buffer ?? buf);
  if (dv.byteOffset % 4 === 0) return new Float32Array(dv.buffer, dv.byteOffset, dv.byteLength >> 2);
  return new Float32Array(dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength));
}

const CSS = `
.eegkit-view { font-family: var(--jp-ui-font-family, system-ui, sans-serif); color: var(--jp-ui-font-color1, #212121);
  background: var(--jp-layout-color0, transparent); border: 1px solid var(--jp-border-color2, #e0e0e0);
  border-radius: 4px; padding: 6px 8px 4px; box-sizing: border-box; width: 100%; }
.eegkit-head { display: flex; align-items: baseline; gap: 10px; font-size: 12px; line-height: 18px; min-height: 18px; }
.eegkit-title { font-weight: 600; font-size: 13px; }
.eegkit-meta, .eegkit-note { color: var(--jp-ui-font-color2, #616161); }
.eegkit-note { margin-left: auto; font-variant-numeric: tabular-nums; }
.eegkit-body { position: relative; }
.eegkit-body canvas { display: block; width: 100%; }
.eegkit-wait { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  color: var(--jp-ui-font-color3, #9e9e9e); font-size: 12px; pointer-events: none; }
.eegkit-status { position: absolute; left: 0; right: 0; top: 0; padding: 6px 8px; font-size: 12px;
  white-space: pre-wrap; max-height: 60%; overflow: auto; border-radius: 3px;
  color: var(--jp-error-color1, #d32f2f); background: var(--jp-error-color3, #fdecea);
  border: 1px solid var(--jp-error-color2, #f28b82); }
.eegkit-wait[hidden], .eegkit-status[hidden] { display: none; }
.eegkit-view[data-state="disabled"] canvas { opacity: 0.35; }
@media (prefers-color-scheme: dark) {
  body:not([data-jp-theme-light]) .eegkit-view { color: #e0e0e0; border-color: #3a3a3a; }
}`;

function injectStyle() {
  if (document.getElementById("eegkit-view-style")) return;
  const style = document.createElement("style");
  style.id = "eegkit-view-style";
  style.textContent = CSS;
  document.head.appendChild(style);
}

// JupyterLab's theme variables, with light/dark fallbacks outside JupyterLab.
export function theme(el) {
  const cs = getComputedStyle(el);
  const has = cs.getPropertyValue("--jp-layout-color0").trim() !== "";
  const light = document.body.dataset.jpThemeLight;
  const dark = light !== undefined ? light === "false"
    : !has && window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches;
  const v = (name, fb) => cs.getPropertyValue(name).trim() || fb;
  return {
    dark,
    fg: v("--jp-ui-font-color1", dark ? "#e0e0e0" : "#212121"),
    muted: v("--jp-ui-font-color2", dark ? "#a0a0a0" : "#616161"),
    faint: v("--jp-ui-font-color3", dark ? "#707070" : "#9e9e9e"),
    grid: v("--jp-border-color2", dark ? "#333333" : "#e6e6e6"),
    axis: v("--jp-border-color1", dark ? "#555555" : "#bdbdbd"),
    bg: v("--jp-layout-color0", dark ? "#111111" : "#ffffff"),
    accent: v("--jp-brand-color1", dark ? "#64b5f6" : "#1976d2"),
    font: v("--jp-ui-font-family", "system-ui, sans-serif"),
  };
}

// Distinct colours for n series (golden-angle hues), readable on the theme.
export function seriesColor(i, th, alpha = 1) {
  const hue = (i * 137.508 + 210) % 360;
  return `hsla(${hue.toFixed(1)}, ${th.dark ? 65 : 60}%, ${th.dark ? 66 : 42}%, ${alpha})`;
}

// Smallest 1-2-5 x 10^k number >= x.
export function niceUp(x) {
  if (!(x > 0) || !isFinite(x)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 5, 10]) if (m * p >= x * (1 - 1e-9)) return m * p;
  return 10 * p;
}

// A 1-2-5 tick step giving about `n` ticks over `span`.
export function tickStep(span, n) {
  return niceUp(span / Math.max(1, n));
}

const PREFIX = [[1e-9, "n"], [1e-6, "µ"], [1e-3, "m"], [1, ""]];

// "50 µV" for 5e-5 V; other units are printed as given.
export function fmtQuantity(x, unit) {
  const u = unit || "";
  if (u === "V" || u === "T") {
    let [f, p] = PREFIX[PREFIX.length - 1];
    for (const [ff, pp] of PREFIX) if (Math.abs(x) < ff * 1000) { [f, p] = [ff, pp]; break; }
    return `${fmtNumber(x / f)} ${p}${u}`;
  }
  return u ? `${fmtNumber(x)} ${u}` : fmtNumber(x);
}

// Powers of volts are shown in µV-based units (µV²/Hz), as EEG spectra usually are.
export function displayUnit(unit) {
  const u = (unit || "").replace("^2", "²");
  if (u === "V") return { factor: 1e6, unit: "µV" };
  if (u.startsWith("V²")) return { factor: 1e12, unit: "µV²" + u.slice(2) };
  return { factor: 1, unit: u };
}

export function fmtNumber(x) {
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(1).replace("e+", "e");
  return String(Number(x.toPrecision(3)));
}

const SUP = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };
export function fmtPow10(k) {
  if (k === 0) return "1";
  if (k === 1) return "10";
  return "10" + String(k).split("").map((c) => SUP[c]).join("");
}

// Auto range that grows at once and shrinks only after ~1.5 s of smaller values,
// so axes do not jitter from frame to frame.
export function stickyRange(state, key, target, shrink = (a, b) => a < b) {
  const s = state[key];
  if (!s || target > s.value || !isFinite(s.value)) {
    state[key] = { value: target, since: 0 };
  } else if (shrink(target, s.value)) {
    if (++s.since > 45) state[key] = { value: target, since: 0 };
  } else {
    s.since = 0;
  }
  return state[key].value;
}

// The view shell: header, canvas, "waiting" and status overlays, counters as
// data-* attributes, at most one draw per animation frame, an ack per frame drawn.
// spec = { name, height(info, w), meta(info)?, draw(ctx, frame, box, th, view) -> note text }
export function mountView(model, el, spec) {
  injectStyle();
  if (!STREAMS.has(model.get("stream_id"))) attachStream(model);
  const stream = STREAMS.get(model.get("stream_id"));
  const root = document.createElement("div");
  root.className = `eegkit-view eegkit-${spec.name}`;
  Object.assign(root.dataset, { frames: "0", draws: "0", lastSeq: "-1", firstValue: "", state: "ok" });
  root.innerHTML = `<div class="eegkit-head"><span class="eegkit-title"></span>
    <span class="eegkit-meta"></span><span class="eegkit-note"></span></div>
    <div class="eegkit-body"><canvas></canvas><div class="eegkit-wait">waiting for data…</div>
    <div class="eegkit-status" hidden></div></div>`;
  el.appendChild(root);
  const $ = (sel) => root.querySelector(sel);
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const view = { model, root, state: {} };
  let pending = 0;
  let draws = 0;
  let acked = -1;
  let drawMs = null; // moving average of the canvas drawing time

  function header() {
    const info = model.get("info") || {};
    $(".eegkit-title").textContent = model.get("title") || spec.name;
    $(".eegkit-meta").textContent = spec.meta ? spec.meta(info)
      : `${(info.ch_names || []).length} ch · ${fmtNumber(info.sfreq || 0)} Hz`;
    const st = model.get("status") || {};
    root.dataset.state = st.state || "ok";
    const banner = $(".eegkit-status");
    banner.hidden = st.state !== "disabled";
    banner.textContent = st.state === "disabled" ? `Stage disabled: ${st.error || "no error text"}` : "";
  }

  function draw() {
    pending = 0;
    const w = canvas.parentElement.clientWidth;
    if (w <= 0) return; // not on screen: draw when it is
    const info = model.get("info") || {};
    const h = model.get("height") || spec.height(info, w);
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      canvas.style.height = `${h}px`;
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const frame = stream.frame;
    if (!frame) return;
    const th = theme(root);
    ctx.font = `11px ${th.font}`;
    const t0 = performance.now();
    const note = spec.draw(ctx, frame, { w, h }, th, view);
    drawMs = drawMs === null ? performance.now() - t0 : 0.9 * drawMs + 0.1 * (performance.now() - t0);
    root.dataset.drawMs = drawMs.toFixed(2);
    $(".eegkit-note").textContent = note || "";
    $(".eegkit-wait").hidden = true;
    draws += 1;
    root.dataset.draws = String(draws);
    root.dataset.lastSeq = String(frame.seq);
    const first = frame.data.find((x) => Number.isFinite(x));
    root.dataset.firstValue = first === undefined ? "" : String(first);
    if (frame.seq !== acked) {
      acked = frame.seq;
      model.send({ type: "ack", seq: frame.seq });
    }
  }

  const request = () => { if (!pending) pending = requestAnimationFrame(draw); };
  const onFrame = () => { root.dataset.frames = String(stream.frames); request(); };
  const onTraits = () => { header(); request(); };
  const traits = ["info", "title", "status", "scale", "log_scale", "height", "params"];
  stream.listeners.add(onFrame);
  traits.forEach((name) => model.on(`change:${name}`, onTraits));
  const resize = new ResizeObserver(request);
  resize.observe(root);
  const themeWatch = new MutationObserver(request);
  themeWatch.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-name", "data-jp-theme-light"] });
  header();
  if (stream.frame) onFrame();
  request();
  return () => {
    stream.listeners.delete(onFrame);
    traits.forEach((name) => model.off(`change:${name}`, onTraits));
    resize.disconnect();
    themeWatch.disconnect();
    if (pending) cancelAnimationFrame(pending);
  };
}

// Axis helper: draw a horizontal time/frequency axis with ticks and grid lines.
export function xAxis(ctx, th, box, x0, x1, fmt, nTicks) {
  const { left, top, width, height } = box;
  const step = tickStep(x1 - x0, nTicks);
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let v = Math.ceil(x0 / step - 1e-9) * step; v <= x1 + 1e-9 * step; v += step) {
    const x = Math.round(left + ((v - x0) / (x1 - x0)) * width) + 0.5;
    ctx.strokeStyle = th.grid;
    ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
    ctx.fillStyle = th.muted;
    ctx.fillText(fmt(v, step), x, top + height + 4);
  }
  ctx.strokeStyle = th.axis;
  ctx.beginPath(); ctx.moveTo(left, top + height + 0.5); ctx.lineTo(left + width, top + height + 0.5); ctx.stroke();
}

// Axis helper: value ticks with grid lines at Y(v), labels left of the box, and the
// unit written vertically at the left edge.
export function yAxis(ctx, th, box, ticks, Y, unit) {
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const [v, label] of ticks) {
    const y = Math.round(Y(v)) + 0.5;
    ctx.strokeStyle = th.grid;
    ctx.beginPath(); ctx.moveTo(box.left, y); ctx.lineTo(box.left + box.width, y); ctx.stroke();
    ctx.fillStyle = th.muted;
    ctx.fillText(label, box.left - 6, y);
  }
  ctx.save();
  ctx.translate(10, box.top + box.height / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillStyle = th.faint;
  ctx.fillText(unit, 0, 0);
  ctx.restore();
}
