// Bars: features per channel (e.g. band powers), grouped by channel, one colour
// per axis item (band), linear or log value axis.
// Frames: layout "latest", channels x items.
// A view module of eegkit's view host (protocol.js): it only draws.

const BAND_COLORS = {
  delta: ["#5c6bc0", "#9fa8da"], theta: ["#26a69a", "#80cbc4"], alpha: ["#66bb6a", "#a5d6a7"],
  beta: ["#ffa726", "#ffcc80"], gamma: ["#ef5350", "#ef9a9a"],
};

export default function bars({ model, api }) {
  const state = {}; // sticky auto ranges
  const { tickStep, stickyRange, seriesColor, fmtNumber, fmtPow10, displayUnit, yAxis, baseNames } = api;

  const itemColor = (name, i, th) => {
    const c = BAND_COLORS[String(name).toLowerCase()];
    return c ? c[th.dark ? 1 : 0] : seriesColor(i, th, 0.9);
  };

  const layout = (info) => {
    const items = info.axis && info.axis.length ? info.axis : ["value"];
    return { items, chans: baseNames(info, items.length) };
  };

  function draw(ctx, frame, { w, h, th, info }) {
    const log = model.get("log_scale");
    const { factor, unit } = displayUnit((info.units || [])[0]);
    const [nch, nit] = frame.shape;
    const d = factor === 1 ? frame.data : frame.data.map((v) => v * factor);
    const { items, chans } = layout(info);

    let lo = Infinity, hi = 0;
    for (const v of d) if (v > 0) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (!(hi > 0)) { hi = 1; lo = 0.1; }
    let y0, y1, ty;
    if (log) {
      y1 = stickyRange(state, "top", Math.ceil(Math.log10(hi)));
      y0 = -stickyRange(state, "bottom", -Math.floor(Math.log10(lo)));
      if (y1 - y0 < 1) y0 = y1 - 1;
      ty = (v) => (v > 0 ? Math.max(y0, Math.log10(v)) : y0);
    } else {
      // top: a whole number of 1-2-5 ticks above the highest bar
      const step = tickStep(hi, 4);
      y0 = 0;
      y1 = stickyRange(state, "top", Math.ceil(hi / step) * step, (a, b) => a <= b / 2);
      ty = (v) => Math.max(0, v);
    }
    const ticks = [];
    if (log) {
      for (let k = y0; k <= y1; k++) ticks.push([k, fmtPow10(k)]);
    } else {
      const step = tickStep(y1, 4);
      for (let v = 0; v <= y1 * (1 + 1e-9); v += step) ticks.push([v, fmtNumber(v)]);
    }
    const labelW = Math.max(...ticks.map(([, s]) => ctx.measureText(s).width)) + 10;
    const legendH = nit > 1 ? 18 : 0;
    const box = { left: labelW + 14, top: 6 + legendH, width: Math.max(10, w - labelW - 22), height: Math.max(10, h - 30 - legendH) };
    const Y = (v) => box.top + box.height * (1 - (v - y0) / (y1 - y0));

    yAxis(ctx, th, box, ticks, Y, unit);

    // groups of bars
    const gw = box.width / nch;
    const pad = Math.min(8, gw * 0.2);
    const bw = Math.max(1, (gw - pad) / nit);
    const colors = items.map((n, i) => itemColor(n, i, th));
    const base = Y(y0);
    for (let c = 0; c < nch; c++) {
      for (let k = 0; k < nit; k++) {
        const v = d[c * nit + k];
        if (v !== v) continue;
        const x = box.left + c * gw + pad / 2 + k * bw;
        const y = Y(ty(v));
        ctx.fillStyle = colors[k];
        ctx.fillRect(x, y, Math.max(1, bw - (bw > 4 ? 1 : 0)), base - y);
      }
    }
    ctx.strokeStyle = th.axis;
    ctx.beginPath(); ctx.moveTo(box.left, Math.round(base) + 0.5); ctx.lineTo(box.left + box.width, Math.round(base) + 0.5); ctx.stroke();

    // channel labels, thinned to what fits
    ctx.fillStyle = th.muted;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const widest = Math.max(...chans.map((n) => ctx.measureText(n).width)) + 6;
    const every = Math.max(1, Math.ceil(widest / gw));
    for (let c = 0; c < nch; c += every) ctx.fillText(chans[c] ?? `ch${c}`, box.left + (c + 0.5) * gw, base + 5);

    // legend of items
    if (nit > 1) {
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      let x = box.left;
      items.forEach((n, k) => {
        ctx.fillStyle = colors[k];
        ctx.fillRect(x, 4, 10, 10);
        ctx.fillStyle = th.fg;
        ctx.fillText(n, x + 14, 9);
        x += ctx.measureText(n).width + 30;
      });
    }
    return `${log ? "log" : "linear"} scale`;
  }

  return {
    name: "bars",
    meta: (info) => `${layout(info).chans.length} ch · ${layout(info).items.length} per channel · ${fmtNumber(info.sfreq || 0)} updates/s`,
    height: () => 240,
    draw,
  };
}
