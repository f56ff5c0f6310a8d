// Spectrum: power spectral density per channel (thin coloured lines) and their
// mean (bold), log or linear value axis, frequency axis in Hz.
// Frames: layout "latest", channels x bins (bins averaged by `step` when decimated).
// A view module of eegkit's view host (protocol.js): it only draws.

function frequencies(info, nbin, step) {
  const f = info.axis_values || [];
  const out = new Float64Array(nbin);
  for (let j = 0; j < nbin; j++) {
    if (f.length >= (j + 1) * step) {
      let s = 0;
      for (let i = j * step; i < (j + 1) * step; i++) s += f[i];
      out[j] = s / step;
    } else out[j] = j;
  }
  return out;
}

export default function spectrum({ model, api }) {
  const state = {}; // sticky auto ranges
  const { niceUp, tickStep, stickyRange, seriesColor, fmtNumber, fmtPow10, xAxis, yAxis, displayUnit, baseNames } = api;

  function draw(ctx, frame, { w, h, th, info }) {
    const log = model.get("log_scale");
    const [nch, nbin] = frame.shape;
    const { factor, unit } = displayUnit((info.units || [])[0]);
    const d = factor === 1 ? frame.data : frame.data.map((v) => v * factor);
    const freqs = frequencies(info, nbin, frame.step || 1);

    // mean over channels, and the value range
    // (the bottom of a log axis follows the mean, not the deepest single-channel notch)
    const mean = new Float64Array(nbin);
    let lo = Infinity, hi = -Infinity;
    for (let j = 0; j < nbin; j++) {
      let s = 0, n = 0;
      for (let c = 0; c < nch; c++) {
        const v = d[c * nbin + j];
        if (v === v) { s += v; n++; if (v > hi) hi = v; if (!log && v < lo) lo = v; }
      }
      mean[j] = n ? s / n : NaN;
      if (log && mean[j] > 0 && mean[j] / 4 < lo) lo = mean[j] / 4;
    }
    if (!(hi > lo)) { lo = log ? 1e-12 : 0; hi = log ? 1 : 1; }
    let y0, y1, ty;
    if (log) {
      // whole decades; the top grows at once, the range tightens only after a while
      y1 = stickyRange(state, "top", Math.ceil(Math.log10(hi)));
      y0 = -stickyRange(state, "bottom", -Math.floor(Math.log10(lo)));
      if (y1 - y0 < 1) y0 = y1 - 1;
      ty = (v) => (v > 0 ? Math.log10(v) : -Infinity);
    } else {
      y0 = Math.min(0, lo);
      y1 = stickyRange(state, "top", niceUp(hi), (a, b) => a <= b / 2);
      ty = (v) => v;
    }

    const yLabels = log ? Array.from({ length: y1 - y0 + 1 }, (_, i) => fmtPow10(y0 + i)) : [fmtNumber(y1)];
    const labelW = Math.max(...yLabels.map((s) => ctx.measureText(s).width)) + 12;
    const box = { left: labelW + 14, top: 8, width: Math.max(10, w - labelW - 24), height: Math.max(10, h - 32) };
    const Y = (v) => box.top + box.height * (1 - (ty(v) - y0) / (y1 - y0));

    // value axis: decades (log) or 1-2-5 ticks (linear)
    const ticks = [];
    if (log) {
      const every = Math.ceil((y1 - y0) / Math.max(2, box.height / 28));
      for (let k = y0; k <= y1; k += every) ticks.push([Math.pow(10, k), fmtPow10(k)]);
    } else {
      const step = tickStep(y1 - y0, Math.max(2, box.height / 40));
      for (let v = 0; v <= y1 + 1e-9 * step; v += step) ticks.push([v, fmtNumber(v)]);
    }
    yAxis(ctx, th, box, ticks, Y, unit);

    const f0 = freqs[0], f1 = freqs[nbin - 1] > f0 ? freqs[nbin - 1] : f0 + 1;
    xAxis(ctx, th, box, f0, f1, (v) => fmtNumber(v), Math.max(2, Math.floor(box.width / 70)));
    ctx.textAlign = "right";
    ctx.textBaseline = "bottom";
    ctx.fillStyle = th.faint;
    ctx.fillText("Hz", box.left + box.width, box.top + box.height - 2);

    const X = (f) => box.left + ((f - f0) / (f1 - f0)) * box.width;
    ctx.save();
    ctx.beginPath();
    ctx.rect(box.left, box.top, box.width, box.height);
    ctx.clip();
    const line = (get, color, width) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = width;
      ctx.beginPath();
      let pen = false;
      for (let j = 0; j < nbin; j++) {
        const v = get(j);
        const y = Y(v);
        if (!Number.isFinite(y)) { pen = false; continue; }
        if (pen) ctx.lineTo(X(freqs[j]), y); else ctx.moveTo(X(freqs[j]), y);
        pen = true;
      }
      ctx.stroke();
    };
    const alpha = nch > 16 ? 0.35 : 0.7;
    for (let c = 0; c < nch; c++) line((j) => d[c * nbin + j], seriesColor(c, th, alpha), 1);
    if (nch > 1) line((j) => mean[j], th.fg, 2);
    ctx.restore();

    // legend (few channels only)
    const names = baseNames(info);
    if (nch <= 12) {
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      const items = names.slice(0, nch).map((n, c) => [n, seriesColor(c, th, 1), 2]);
      if (nch > 1) items.push(["mean", th.fg, 3]);
      const lw = Math.max(...items.map(([n]) => ctx.measureText(n).width)) + 24;
      const x = box.left + box.width - lw - 6;
      ctx.fillStyle = th.bg;
      ctx.globalAlpha = 0.85;
      ctx.fillRect(x - 4, box.top + 2, lw + 8, items.length * 15 + 6);
      ctx.globalAlpha = 1;
      items.forEach(([n, color, width], i) => {
        const y = box.top + 10 + i * 15;
        ctx.strokeStyle = color;
        ctx.lineWidth = width;
        ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 16, y); ctx.stroke();
        ctx.fillStyle = th.fg;
        ctx.fillText(n, x + 22, y);
      });
    }
    return `${log ? "log" : "linear"} · ${fmtNumber(f0)}–${fmtNumber(f1)} Hz${nch > 1 ? " · bold: mean" : ""}`;
  }

  return {
    name: "spectrum",
    meta: (info) => `${baseNames(info).length} ch · ${(info.axis || []).length} bins · ${fmtNumber(info.sfreq || 0)} spectra/s`,
    height: () => 280,
    draw,
  };
}
