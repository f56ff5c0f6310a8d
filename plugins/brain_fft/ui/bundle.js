// "Brain Waves FFT": live relative band power of the brain_fft.band_power stage.
// Bars: each band's share of the total power, averaged over channels, with the
// band's name and Hz range. Heat strip: the same share for every channel.
//
// Speaks eegkit's frame protocol (see eegkit/notebook/_widget.py): frames arrive as custom
// messages {type: "frame", seq, shape: [channels, bands], ...} with one float32
// buffer; the view acks each frame it draws and draws at most once per animation frame.

const BANDS = {
  delta: { range: [1, 4], light: "#5c6bc0", dark: "#9fa8da" },
  theta: { range: [4, 8], light: "#26a69a", dark: "#80cbc4" },
  alpha: { range: [8, 13], light: "#43a047", dark: "#a5d6a7" },
  beta: { range: [13, 30], light: "#fb8c00", dark: "#ffcc80" },
  gamma: { range: [30, 45], light: "#e53935", dark: "#ef9a9a" },
};
// per-model state, keyed by the `stream_id` trait (initialize and render get different proxies)
const STREAMS = new Map();

function asFloat32(buf) {
  const dv = buf instanceof DataView ? buf : new DataView(buf.buffer ?? buf);
  if (dv.byteOffset % 4 === 0) return new Float32Array(dv.buffer, dv.byteOffset, dv.byteLength >> 2);
  return new Float32Array(dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength));
}

function palette(el) {
  const cs = getComputedStyle(el);
  const v = (name, fb) => cs.getPropertyValue(name).trim() || fb;
  const flag = document.body.dataset.jpThemeLight;
  const dark = flag !== undefined ? flag === "false"
    : !v("--jp-layout-color0", "") && window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches;
  return {
    dark,
    fg: v("--jp-ui-font-color1", dark ? "#e0e0e0" : "#212121"),
    muted: v("--jp-ui-font-color2", dark ? "#a0a0a0" : "#616161"),
    faint: v("--jp-ui-font-color3", dark ? "#707070" : "#9e9e9e"),
    track: v("--jp-layout-color2", dark ? "#2a2a2a" : "#eeeeee"),
    font: v("--jp-ui-font-family", "system-ui, sans-serif"),
  };
}

function bandColor(name, i, th) {
  const b = BANDS[String(name).toLowerCase()];
  if (b) return th.dark ? b.dark : b.light;
  return `hsl(${(i * 137.5 + 220) % 360}, 60%, ${th.dark ? 66 : 45}%)`;
}

function fmtHz(x) {
  return String(Number(Number(x).toPrecision(3)));
}

// "8–13 Hz": from the stage's band edges when the view has them, else the usual ranges.
function bandRanges(model, names) {
  const edges = (model.get("params") || {}).bands;
  return names.map((name, i) => {
    if (Array.isArray(edges) && edges.length === names.length + 1) return `${fmtHz(edges[i])}–${fmtHz(edges[i + 1])} Hz`;
    const b = BANDS[String(name).toLowerCase()];
    if (b) return `${b.range[0]}–${b.range[1]} Hz`;
    const centre = ((model.get("info") || {}).axis_values || [])[i];
    return centre === undefined ? "" : `~${fmtHz(centre)} Hz`;
  });
}

const CSS = `
.bfft { font-family: var(--jp-ui-font-family, system-ui, sans-serif); color: var(--jp-ui-font-color1, #212121);
  border: 1px solid var(--jp-border-color2, #e0e0e0); border-radius: 6px; padding: 8px 10px 6px; box-sizing: border-box; }
.bfft-head { display: flex; align-items: baseline; gap: 10px; font-size: 12px; line-height: 18px; }
.bfft-title { font-weight: 600; font-size: 14px; }
.bfft-meta { color: var(--jp-ui-font-color2, #616161); }
.bfft-note { margin-left: auto; color: var(--jp-ui-font-color2, #616161); }
.bfft-body { position: relative; }
.bfft canvas { display: block; width: 100%; }
.bfft-wait { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  color: var(--jp-ui-font-color3, #9e9e9e); font-size: 12px; }
.bfft-status { position: absolute; left: 0; right: 0; top: 0; padding: 6px 8px; font-size: 12px; white-space: pre-wrap;
  color: var(--jp-error-color1, #d32f2f); background: var(--jp-error-color3, #fdecea);
  border: 1px solid var(--jp-error-color2, #f28b82); border-radius: 3px; }
.bfft-wait[hidden], .bfft-status[hidden] { display: none; }
.bfft[data-state="disabled"] canvas { opacity: 0.35; }`;

function draw(ctx, frame, w, h, th, model) {
  const info = model.get("info") || {};
  const [nch, nb] = frame.shape;
  // the info trait and the frames travel separately: after a band change one may
  // arrive before the other, so names always follow the frame's band count
  const axis = info.axis && info.axis.length === nb ? info.axis : [];
  const names = Array.from({ length: nb }, (_, k) => axis[k] || `band ${k + 1}`);
  const d = frame.data;
  const chans = [];
  for (let i = 0; i < (info.ch_names || []).length; i += nb) chans.push(info.ch_names[i].replace(/:[^:]*$/, ""));

  // relative power per channel and band, and its mean over channels
  const rel = new Float64Array(nch * nb);
  const mean = new Float64Array(nb);
  let used = 0;
  for (let c = 0; c < nch; c++) {
    let total = 0;
    for (let k = 0; k < nb; k++) { const v = d[c * nb + k]; if (v > 0) total += v; }
    if (!(total > 0)) continue;
    used++;
    for (let k = 0; k < nb; k++) {
      const r = Math.max(0, d[c * nb + k]) / total;
      rel[c * nb + k] = r;
      mean[k] += r;
    }
  }
  for (let k = 0; k < nb; k++) mean[k] = used ? mean[k] / used : 0;
  const colors = names.map((n, i) => bandColor(n, i, th));
  const ranges = bandRanges(model, names);

  // bars
  const stripRowH = Math.max(8, Math.min(14, Math.floor((h * 0.34) / nb)));
  const stripH = stripRowH * nb + 18;
  const barTop = 22, barBottom = h - stripH - 40;
  const barH = Math.max(20, barBottom - barTop);
  const left = 64, right = w - 10;
  const slot = (right - left) / nb;
  const bw = Math.min(90, slot * 0.62);
  const top = Math.max(0.25, Math.ceil(Math.max(...mean) * 10 + 0.5) / 10); // axis max, in 10 % steps
  ctx.textAlign = "center";
  for (let k = 0; k < nb; k++) {
    const cx = left + slot * (k + 0.5);
    const x = cx - bw / 2;
    ctx.fillStyle = th.track;
    roundRect(ctx, x, barTop, bw, barH, 4);
    ctx.fill();
    const bh = Math.min(barH, (mean[k] / top) * barH);
    const grad = ctx.createLinearGradient(0, barTop + barH - bh, 0, barTop + barH);
    grad.addColorStop(0, colors[k]);
    grad.addColorStop(1, colors[k].startsWith("#") ? colors[k] + (th.dark ? "99" : "bb") : colors[k]);
    ctx.fillStyle = grad;
    roundRect(ctx, x, barTop + barH - bh, bw, bh, 4);
    ctx.fill();
    ctx.fillStyle = th.fg;
    ctx.font = `600 12px ${th.font}`;
    ctx.textBaseline = "bottom";
    ctx.fillText(`${(mean[k] * 100).toFixed(0)} %`, cx, barTop + barH - bh - 3);
    ctx.textBaseline = "top";
    ctx.font = `600 12px ${th.font}`;
    ctx.fillText(names[k], cx, barTop + barH + 6);
    ctx.font = `11px ${th.font}`;
    ctx.fillStyle = th.muted;
    ctx.fillText(ranges[k], cx, barTop + barH + 21);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  ctx.font = `10px ${th.font}`;
  ctx.fillStyle = th.faint;
  for (const f of [0, 0.5, 1]) ctx.fillText(`${Math.round(top * f * 100)} %`, left - 8, barTop + barH * (1 - f));

  // heat strip: one row per band, one cell per channel, opacity = share of that channel's power
  const sy = h - stripH + 4;
  const cw = (right - left) / Math.max(1, nch);
  ctx.font = `10px ${th.font}`;
  for (let k = 0; k < nb; k++) {
    const y = sy + k * stripRowH;
    ctx.fillStyle = th.muted;
    ctx.textAlign = "right";
    ctx.fillText(names[k], left - 8, y + stripRowH / 2);
    ctx.fillStyle = th.track;
    ctx.fillRect(left, y, right - left, stripRowH - 1);
    ctx.fillStyle = colors[k];
    for (let c = 0; c < nch; c++) {
      ctx.globalAlpha = Math.min(1, rel[c * nb + k] / Math.max(1e-9, top));
      ctx.fillRect(left + c * cw + 0.5, y, Math.max(1, cw - 1), stripRowH - 1);
    }
    ctx.globalAlpha = 1;
  }
  ctx.fillStyle = th.muted;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const widest = Math.max(1, ...chans.map((n) => ctx.measureText(n).width)) + 6;
  const every = Math.max(1, Math.ceil(widest / cw));
  for (let c = 0; c < nch; c += every) ctx.fillText(chans[c] ?? `ch${c}`, left + (c + 0.5) * cw, sy + nb * stripRowH + 2);

  let best = 0;
  for (let k = 1; k < nb; k++) if (mean[k] > mean[best]) best = k;
  return used ? `dominant: ${names[best]} (${ranges[best]})` : "no power yet";
}

function roundRect(ctx, x, y, w, h, r) {
  r = Math.min(r, w / 2, h / 2);
  ctx.beginPath();
  ctx.moveTo(x + r, y);
  ctx.arcTo(x + w, y, x + w, y + h, r);
  ctx.arcTo(x + w, y + h, x, y + h, r);
  ctx.arcTo(x, y + h, x, y, r);
  ctx.arcTo(x, y, x + w, y, r);
  ctx.closePath();
}

export default {
  initialize({ model }) {
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
    model.send({ type: "ready" });
    return () => {
      model.off("msg:custom", onMsg);
      if (STREAMS.get(key) === stream) STREAMS.delete(key);
    };
  },

  render({ model, el }) {
    if (!document.getElementById("bfft-style")) {
      const style = document.createElement("style");
      style.id = "bfft-style";
      style.textContent = CSS;
      document.head.appendChild(style);
    }
    const stream = STREAMS.get(model.get("stream_id"));
    const root = document.createElement("div");
    root.className = "bfft eegkit-view";
    Object.assign(root.dataset, { frames: "0", draws: "0", lastSeq: "-1", firstValue: "", state: "ok" });
    root.innerHTML = `<div class="bfft-head"><span class="bfft-title"></span><span class="bfft-meta"></span>
      <span class="bfft-note"></span></div><div class="bfft-body"><canvas></canvas>
      <div class="bfft-wait">waiting for band powers…</div><div class="bfft-status" hidden></div></div>`;
    el.appendChild(root);
    const $ = (s) => root.querySelector(s);
    const canvas = $("canvas");
    const ctx = canvas.getContext("2d");
    let pending = 0, draws = 0, acked = -1;

    const header = () => {
      const info = model.get("info") || {};
      const nb = Math.max(1, (info.axis || []).length);
      $(".bfft-title").textContent = model.get("title") || "Brain Waves FFT";
      $(".bfft-meta").textContent = `${(info.ch_names || []).length / nb} ch · share of band power, mean over channels`;
      const st = model.get("status") || {};
      root.dataset.state = st.state || "ok";
      $(".bfft-status").hidden = st.state !== "disabled";
      $(".bfft-status").textContent = st.state === "disabled" ? `Stage disabled: ${st.error || ""}` : "";
    };
    const paint = () => {
      pending = 0;
      const w = canvas.parentElement.clientWidth;
      const frame = stream && stream.frame;
      if (w <= 0 || !frame) return;
      const h = model.get("height") || 300;
      const dpr = window.devicePixelRatio || 1;
      if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
        canvas.width = Math.round(w * dpr);
        canvas.height = Math.round(h * dpr);
        canvas.style.height = `${h}px`;
      }
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);
      $(".bfft-note").textContent = draw(ctx, frame, w, h, palette(root), model);
      $(".bfft-wait").hidden = true;
      root.dataset.draws = String(++draws);
      root.dataset.lastSeq = String(frame.seq);
      const first = frame.data.find((x) => Number.isFinite(x));
      root.dataset.firstValue = first === undefined ? "" : String(first);
      if (frame.seq !== acked) {
        acked = frame.seq;
        model.send({ type: "ack", seq: frame.seq });
      }
    };
    const request = () => { if (!pending) pending = requestAnimationFrame(paint); };
    const onFrame = () => { root.dataset.frames = String(stream.frames); request(); };
    const onTraits = () => { header(); request(); };
    const traits = ["info", "title", "status", "params", "height"];
    if (stream) stream.listeners.add(onFrame);
    traits.forEach((t) => model.on(`change:${t}`, onTraits));
    const resize = new ResizeObserver(request);
    resize.observe(root);
    header();
    if (stream && stream.frame) onFrame();
    return () => {
      if (stream) stream.listeners.delete(onFrame);
      traits.forEach((t) => model.off(`change:${t}`, onTraits));
      resize.disconnect();
      if (pending) cancelAnimationFrame(pending);
    };
  },
};
