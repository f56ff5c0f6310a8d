// Scope: multichannel stacked traces of the last `seconds` of a timeseries.
// Frames: layout "minmax" (channels x buckets x [min, max]) or "raw" (channels x samples).
// A view module of eegkit's view host (protocol.js): it only draws.

const LABEL_FONT = 11;

function channelStats(frame) {
  // per channel: mean (traces are drawn centred on it) and standard deviation
  const [nch, npts] = frame.shape;
  const per = frame.layout === "minmax" ? 2 : 1;
  const d = frame.data;
  const mean = new Float64Array(nch);
  const sd = new Float64Array(nch);
  for (let c = 0; c < nch; c++) {
    let s = 0, s2 = 0, n = 0;
    for (let i = (c * npts + frame.valid_from) * per, end = (c + 1) * npts * per; i < end; i++) {
      const x = d[i];
      if (x === x) { s += x; s2 += x * x; n++; }
    }
    mean[c] = n ? s / n : 0;
    sd[c] = n ? Math.sqrt(Math.max(0, s2 / n - mean[c] * mean[c])) : 0;
  }
  return { mean, sd };
}

function median(a) {
  const b = Array.from(a).filter((x) => x > 0).sort((x, y) => x - y);
  return b.length ? b[b.length >> 1] : 0;
}

export default function scope({ model, api }) {
  const state = {}; // sticky auto range
  const { niceUp, stickyRange, fmtQuantity, fmtNumber, xAxis, trace } = api;

  function draw(ctx, frame, { w, h, th, info }) {
    const names = info.ch_names || [];
    const unit = (info.units || [])[0] || "";
    const [nch, npts] = frame.shape;
    const sfreq = frame.sfreq || info.sfreq || 1;

    const labelW = Math.min(80, Math.max(24, ...names.map((n) => ctx.measureText(n).width))) + 10;
    const box = { left: labelW, top: 4, width: Math.max(10, w - labelW - 8), height: Math.max(10, h - 26) };
    const lane = box.height / Math.max(1, nch);

    const { mean, sd } = channelStats(frame);
    // one lane ("division") holds about +-2 standard deviations of a typical channel
    const auto = stickyRange(state, "scale", niceUp(4 * median(sd) || 1e-6), (a, b) => a <= b / 2);
    const scale = model.get("scale") > 0 ? model.get("scale") : auto;
    const k = lane / scale;

    // time axis (absolute stream time, seconds)
    const t0 = frame.first_sample / sfreq;
    const t1 = (frame.first_sample + npts * frame.step) / sfreq;
    xAxis(ctx, th, box, t0, t1, (v, step) => `${v.toFixed(step < 1 ? 1 : 0)} s`, Math.max(2, Math.floor(box.width / 90)));

    // channel labels and faint zero lines
    const every = Math.max(1, Math.ceil(12 / lane));
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.font = `${Math.min(LABEL_FONT, Math.max(8, lane * 0.9))}px ${th.font}`;
    for (let c = 0; c < nch; c++) {
      const y = Math.round(box.top + lane * (c + 0.5)) + 0.5;
      if (c % every === 0) {
        ctx.fillStyle = th.muted;
        ctx.fillText(names[c] ?? `ch${c}`, box.left - 6, y);
      }
      if (lane >= 14) {
        ctx.strokeStyle = th.grid;
        ctx.beginPath(); ctx.moveTo(box.left, y); ctx.lineTo(box.left + box.width, y); ctx.stroke();
      }
    }

    // traces, clipped to the plot
    ctx.save();
    ctx.beginPath();
    ctx.rect(box.left, box.top, box.width, box.height);
    ctx.clip();
    ctx.lineWidth = nch > 32 ? 0.8 : 1;
    ctx.lineJoin = "round";
    const dx = box.width / npts;
    const X = (j) => box.left + (j + 0.5) * dx;
    const traceColors = [th.dark ? "#8ab4f8" : "#1a4f8b", th.dark ? "#c7d8f5" : "#3d3d3d"];
    for (let c = 0; c < nch; c++) {
      const y0 = box.top + lane * (c + 0.5);
      const m = mean[c];
      ctx.strokeStyle = traceColors[c % 2];
      trace(ctx, frame, c, X, (v) => y0 - (v - m) * k);
    }
    ctx.restore();

    const decim = frame.layout === "minmax" ? ` · min/max of ${frame.step}` : "";
    return `${fmtQuantity(scale, unit)} / div · ${fmtNumber(t1 - t0)} s${decim}`;
  }

  return {
    name: "scope",
    height: (info) => Math.min(640, Math.max(180, 26 + 22 * (info.ch_names || []).length)),
    draw,
  };
}
