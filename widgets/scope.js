// Scope: multichannel stacked traces of the last `seconds` of a timeseries.
// Frames: layout "minmax" (channels x buckets x [min, max]) or "raw" (channels x samples).
// A view module of eegkit's view host (protocol.js): it only draws.
//
// Controls (keys as in MNE's browser): +/- amplitude, a automatic amplitude,
// t next channel type (+/-/a then act on that type), Home/End shorter/longer time window,
// PageUp/PageDown a page of channels, ArrowUp/ArrowDown one channel. Channels are paged
// so that every label is legible. Each channel type (eeg, eog, emg, ...) has its own
// amplitude scale, as in MNE's browser: the first type's is the ``scale`` trait.

const LABEL_FONT = 11;
const MIN_LANE = 16; // px per channel: below that labels would overlap
const WINDOWS = [1, 2, 5, 10, 20, 30, 60];

function channelStats(frame, c0, c1) {
  // per channel: mean (traces are drawn centred on it) and standard deviation
  const npts = frame.shape[1];
  const per = frame.layout === "minmax" ? 2 : 1;
  const d = frame.data;
  const mean = new Float64Array(c1 - c0);
  const sd = new Float64Array(c1 - c0);
  for (let c = c0; c < c1; c++) {
    let s = 0, s2 = 0, n = 0;
    for (let i = (c * npts + (frame.valid_from || 0)) * per, end = (c + 1) * npts * per; i < end; i++) {
      const x = d[i];
      if (x === x) { s += x; s2 += x * x; n++; }
    }
    const m = n ? s / n : 0;
    mean[c - c0] = m;
    sd[c - c0] = n ? Math.sqrt(Math.max(0, s2 / n - m * m)) : 0;
  }
  return { mean, sd };
}

function typeScales(state, types, sd, c0, c1, stickyRange, niceUp) {
  // automatic scale per channel type present on the page: +-2 sd of its typical channel
  const sds = {};
  for (let c = c0; c < c1; c++) (sds[types[c]] ??= []).push(sd[c - c0]);
  const auto = {};
  for (const [type, values] of Object.entries(sds)) {
    auto[type] = stickyRange(state, `auto:${type}`, niceUp(4 * median(values) || 1e-6), (a, b) => a <= b / 2);
  }
  return auto;
}

function median(a) {
  const b = Array.from(a).filter((x) => x > 0).sort((x, y) => x - y);
  return b.length ? b[b.length >> 1] : 0;
}

export default function scope({ model, api }) {
  // manual: scales set with +/- for types other than the first (the first is the trait)
  const state = { page: 0, perPage: 1, nch: 0, scales: {}, types: [], sel: null, manual: {} };
  const { niceUp, niceDown, stickyRange, fmtQuantity, fmtNumber, xAxis, tracePath } = api;

  const primary = () => state.types[0] ?? "eeg";
  const selected = () => state.sel ?? primary();
  const setScale = (v) => {
    const value = Number(v.toPrecision(12));
    if (selected() === primary()) { model.set("scale", value); model.save_changes?.(); }
    else state.manual[selected()] = value;
  };
  const manualOf = (type) => (type === primary() ? model.get("scale") : state.manual[type]);
  const current = () => (manualOf(selected()) > 0 ? manualOf(selected()) : state.scales[selected()] ?? 1);
  const nextType = () => {
    const present = [...new Set(state.types)];
    state.sel = present[(present.indexOf(selected()) + 1) % present.length] ?? null;
  };
  const setWindow = (dir) => {
    const s = model.get("seconds") || 5;
    const next = dir < 0 ? [...WINDOWS].reverse().find((x) => x < s - 1e-9) : WINDOWS.find((x) => x > s + 1e-9);
    if (next !== undefined) { model.set("seconds", next); model.save_changes?.(); }
  };
  const scroll = (n) => {
    state.page = Math.max(0, Math.min(state.nch - state.perPage, state.page + n));
  };

  function draw(ctx, frame, { w, h, th, info }) {
    const names = info.ch_names || [];
    const unit = (info.units || [])[0] || "";
    const [nch, npts] = frame.shape;
    const sfreq = frame.sfreq || info.sfreq || 1;

    const box = { left: 0, top: 4, width: 0, height: Math.max(10, h - 26) };
    state.nch = nch;
    state.perPage = Math.max(1, Math.min(nch, Math.floor(box.height / MIN_LANE)));
    state.page = Math.max(0, Math.min(state.page, nch - state.perPage));
    const c0 = state.page, c1 = c0 + state.perPage;
    const lane = box.height / state.perPage;
    ctx.font = `${Math.min(LABEL_FONT, Math.max(9, lane * 0.8))}px ${th.font}`;
    let labelW = 24;
    for (let c = c0; c < c1; c++) labelW = Math.max(labelW, ctx.measureText(names[c] ?? `ch${c}`).width);
    box.left = Math.min(90, labelW) + 10;
    box.width = Math.max(10, w - box.left - 44); // room on the right for the scale bar

    const { mean, sd } = channelStats(frame, c0, c1);
    const types = state.types = Array.from({ length: nch }, (_, c) => (info.ch_types || [])[c] || "eeg");
    // one lane ("division") holds about +-2 standard deviations of a typical channel of its type
    const auto = typeScales(state, types, sd, c0, c1, stickyRange, niceUp);
    for (const type of Object.keys(auto)) state.scales[type] = manualOf(type) > 0 ? manualOf(type) : auto[type];
    const sel = auto[selected()] !== undefined ? selected() : types[c0];
    const scale = state.scales[sel];
    const k = new Float64Array(c1 - c0);
    for (let c = c0; c < c1; c++) k[c - c0] = lane / state.scales[types[c]];

    // channel labels and faint zero lines (one path)
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillStyle = th.muted;
    for (let c = c0; c < c1; c++) ctx.fillText(names[c] ?? `ch${c}`, box.left - 6, box.top + lane * (c - c0 + 0.5));
    ctx.font = `11px ${th.font}`;
    ctx.strokeStyle = th.grid;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let c = c0; c < c1; c++) {
      const y = Math.round(box.top + lane * (c - c0 + 0.5)) + 0.5;
      ctx.moveTo(box.left, y); ctx.lineTo(box.left + box.width, y);
    }
    ctx.stroke();

    // time axis (absolute stream time, seconds)
    const t0 = frame.first_sample / sfreq;
    const t1 = (frame.first_sample + npts * frame.step) / sfreq;
    xAxis(ctx, th, box, t0, t1, (v, step) => `${v.toFixed(step < 1 ? 1 : 0)} s`, Math.max(2, Math.floor(box.width / 90)));

    // traces live on their own layer (device pixels), which scrolls: a frame that
    // continues the last one shifts the layer and draws only the points that came in;
    // the whole layer is drawn again when anything else changed, and every 2 s so that
    // the traces are re-centred on their lanes
    const dpr = globalThis.devicePixelRatio || 1;
    const lw = Math.max(1, Math.round(box.width * dpr)), lh = Math.max(1, Math.round(box.height * dpr));
    const colors = [th.dark ? "#8ab4f8" : "#1a4f8b", th.dark ? "#c7d8f5" : "#3d3d3d"];
    const key = [lw, lh, dpr, c0, c1, Array.from(k).join(":"), colors[0], npts, frame.step, frame.layout].join();
    const L = state.layer ??= { canvas: null, key: "", origin: 0, shifted: 0, first: 0, centres: null, at: 0 };
    if (!L.canvas) L.canvas = document.createElement("canvas");
    const lctx = L.canvas.getContext("2d");
    const dx = box.width / npts;
    const now = performance.now();
    const moved = (frame.first_sample - L.first) / frame.step;
    let from = 0;
    if (key !== L.key || !(moved >= 0 && moved < npts) || now - L.at > 2000) {
      if (L.canvas.width !== lw || L.canvas.height !== lh) { L.canvas.width = lw; L.canvas.height = lh; }
      Object.assign(L, { key, origin: frame.first_sample, shifted: 0, centres: mean, at: now });
      lctx.setTransform(1, 0, 0, 1, 0, 0);
      lctx.clearRect(0, 0, lw, lh);
    } else {
      from = npts - moved;
      const target = Math.round(((frame.first_sample - L.origin) / frame.step) * dx * dpr);
      const shift = target - L.shifted;
      lctx.setTransform(1, 0, 0, 1, 0, 0);
      if (shift > 0) {
        lctx.globalCompositeOperation = "copy";
        lctx.drawImage(L.canvas, -shift, 0);
        lctx.globalCompositeOperation = "source-over";
      }
      L.shifted = target;
    }
    L.first = frame.first_sample;
    // layer x of point j, in CSS pixels: where it was drawn less how far the layer moved
    const base = (frame.first_sample - L.origin) / frame.step;
    const X = (j) => (base + j + 0.5) * dx - L.shifted / dpr;
    state.drawnPoints = npts - from;
    if (from < npts) {
      lctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      lctx.save();
      if (from > 0) { // the new strip only (from half a point before the first new one)
        const x0 = X(from) - dx / 2;
        lctx.clearRect(x0, 0, box.width - x0 + 1, box.height);
        lctx.beginPath();
        lctx.rect(x0, 0, box.width - x0 + 1, box.height);
        lctx.clip();
      }
      lctx.lineWidth = lane < 24 ? 0.8 : 1;
      lctx.lineJoin = "round";
      for (let parity = 0; parity < 2; parity++) {
        lctx.strokeStyle = colors[parity];
        lctx.beginPath(); // one path per colour: two strokes in all
        for (let c = c0 + ((c0 + parity) % 2); c < c1; c += 2) {
          const y0 = lane * (c - c0 + 0.5);
          const m = L.centres[c - c0];
          const kc = k[c - c0];
          tracePath(lctx, frame, c, X, (v) => y0 - (v - m) * kc, Math.max(0, from - 1));
        }
        lctx.stroke();
      }
      lctx.restore();
    }
    ctx.drawImage(L.canvas, box.left, box.top, lw / dpr, lh / dpr);

    // scale bar: one division, labelled in the stream's unit (µV for volts)
    const bx = box.left + box.width + 10;
    const by = box.top + box.height - 6;
    ctx.strokeStyle = th.fg;
    ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(bx, by); ctx.lineTo(bx, by - lane); ctx.stroke();
    ctx.lineWidth = 1;
    ctx.save();
    ctx.translate(bx + 10, by - lane / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillStyle = th.fg;
    const many = Object.keys(auto).length > 1;
    ctx.fillText((many ? `${sel} ` : "") + fmtQuantity(scale, unit), 0, 0);
    ctx.restore();

    const isManual = (type) => manualOf(type) > 0;
    const scaleText = many
      ? Object.keys(auto).map((type) => `${type === sel ? "▸" : ""}${type} ${fmtQuantity(state.scales[type], unit)}${isManual(type) ? "" : " (auto)"}`).join(", ") + " / div"
      : `${fmtQuantity(scale, unit)} / div${isManual(sel) ? "" : " (auto)"}`;
    const pages = state.perPage < nch ? ` · ch ${c0 + 1}–${c1} of ${nch}` : "";
    const decim = frame.layout === "minmax" ? ` · min/max of ${frame.step}` : "";
    return `${scaleText} · ${fmtNumber(t1 - t0)} s${pages}${decim}`;
  }

  return {
    name: "scope",
    height: (info) => Math.min(640, Math.max(180, 26 + 22 * (info.ch_names || []).length)),
    controls: [
      { label: "−", keys: ["-", "_"], title: "smaller amplitude (-)", run: () => setScale(niceUp(current() * 1.01)) },
      { label: "+", keys: ["+", "="], title: "larger amplitude (+)", run: () => setScale(niceDown(current())) },
      { label: "auto", keys: ["a"], title: "automatic amplitude (a)", run: () => setScale(0) },
      { label: "type", keys: ["t"], title: "next channel type: +/-/auto act on it (t)", run: nextType },
      { label: "⇤", keys: ["Home"], title: "shorter time window (Home)", run: () => setWindow(-1) },
      { label: "⇥", keys: ["End"], title: "longer time window (End)", run: () => setWindow(1) },
      { label: "▲", keys: ["PageUp"], title: "previous channels (PageUp; ↑ one channel)", run: () => scroll(-state.perPage) },
      { label: "▼", keys: ["PageDown"], title: "next channels (PageDown; ↓ one channel)", run: () => scroll(state.perPage) },
      { label: "↑", keys: ["ArrowUp"], title: "one channel up", run: () => scroll(-1), hidden: true },
      { label: "↓", keys: ["ArrowDown"], title: "one channel down", run: () => scroll(1), hidden: true },
    ],
    draw,
  };
}
