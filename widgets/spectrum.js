// Spectrum: power spectral density per channel (thin coloured lines) and their
// mean (bold), in dB (60 dB shown) or linear, frequency axis in Hz from 0 to the
// stage's upper band edge (`params.fmax`, else `params.high`, else 60 Hz; f shows all).
// Each line is a running average over the last spectra (about AVG of them).
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

const AVG = 8;         // spectra in the running average (exponential, weight 1/AVG)
const RANGE_DB = 60;  // dynamic range shown in dB

export default function spectrum({ model, api }) {
  const state = { avg: null, full: false }; // sticky auto ranges, running average, full range
  const { niceUp, tickStep, stickyRange, seriesColor, fmtNumber, xAxis, yAxis, displayUnit, baseNames } = api;

  function draw(ctx, frame, { w, h, th, info }) {
    const log = model.get("log_scale");
    const [nch, nbin] = frame.shape;
    const { factor, unit } = displayUnit((info.units || [])[0]);
    // running average across windows (reset when the layout changes)
    if (!state.avg || state.avg.length !== frame.data.length) state.avg = Float64Array.from(frame.data);
    else if (state.seq !== frame.seq) {
      for (let i = 0; i < state.avg.length; i++) {
        const v = frame.data[i];
        state.avg[i] = state.avg[i] === state.avg[i] ? state.avg[i] + (v - state.avg[i]) / AVG : v;
      }
    }
    state.seq = frame.seq;
    const d = state.avg.map((v) => v * factor);
    const allFreqs = frequencies(info, nbin, frame.step || 1);
    // shown range: 0 .. the band-pass upper edge (or 60 Hz), unless "f" asked for everything
    const params = model.get("params") || {};
    const edge = Number(params.fmax ?? params.high ?? params.h_freq ?? 60);
    const fmax = state.full || !(edge > 0) ? Infinity : edge;
    let nshow = nbin;
    while (nshow > 2 && allFreqs[nshow - 1] > fmax) nshow--;
    const freqs = allFreqs;

    // mean over channels, and the value range over the shown bins
    const mean = new Float64Array(nshow);
    let lo = Infinity, hi = -Infinity;
    for (let j = 0; j < nshow; j++) {
      let s = 0, n = 0;
      for (let c = 0; c < nch; c++) {
        const v = d[c * nbin + j];
        if (v === v) { s += v; n++; if (v > hi) hi = v; if (v < lo) lo = v; }
      }
      mean[j] = n ? s / n : NaN;
    }
    let y0, y1, ty;
    if (log) {
      // dB: the top at the next 10 dB above the highest line (grows at once, shrinks
      // within a second), RANGE_DB below it
      const top = hi > 0 ? 10 * Math.log10(hi) : 0;
      y1 = stickyRange(state, "top", Math.ceil(top / 10) * 10);
      y0 = y1 - RANGE_DB;
      ty = (v) => (v > 0 ? 10 * Math.log10(v) : -Infinity);
    } else {
      if (!(hi > lo)) { lo = 0; hi = 1; }
      y0 = Math.min(0, lo);
      y1 = stickyRange(state, "top", niceUp(hi), (a, b) => a <= b / 2);
      ty = (v) => v;
    }

    // legend outside the plot, on the right (few channels only): it never covers data
    const names = baseNames(info);
    const items = nch <= 12 ? names.slice(0, nch).map((n, c) => [n, seriesColor(c, th, 1), 2]) : [];
    if (items.length && nch > 1) items.push(["mean", th.fg, 3]);
    const legendW = items.length ? Math.max(...items.map(([n]) => ctx.measureText(n).width)) + 30 : 0;

    const ticks = [];
    if (log) {
      const every = RANGE_DB / Math.max(2, Math.min(6, Math.floor((h - 32) / 28))) > 10 ? 20 : 10;
      for (let v = y0; v <= y1; v += every) ticks.push([v, String(v)]);
    } else {
      const step = tickStep(y1 - y0, Math.max(2, (h - 32) / 40));
      for (let v = 0; v <= y1 + 1e-9 * step; v += step) ticks.push([v, fmtNumber(v)]);
    }
    const labelW = Math.max(...ticks.map(([, l]) => ctx.measureText(l).width)) + 12;
    const box = { left: labelW + 14, top: 8, width: Math.max(10, w - labelW - 24 - legendW), height: Math.max(10, h - 32) };
    const Yv = (y) => box.top + box.height * (1 - (y - y0) / (y1 - y0));
    const Y = (v) => Yv(ty(v));

    // value axis: dB every 10 (or 20) dB, or 1-2-5 ticks (linear)
    yAxis(ctx, th, box, ticks, Yv, log ? `dB re 1 ${unit}` : unit);

    const f0 = freqs[0], f1 = freqs[nshow - 1] > f0 ? freqs[nshow - 1] : f0 + 1;
    xAxis(ctx, th, box, f0, f1, (v) => fmtNumber(v), Math.max(2, Math.floor(box.width / 70)));
    ctx.textAlign = "right";
    ctx.textBaseline = "top";
    ctx.fillStyle = th.faint;
    ctx.fillText("Hz", w - 2, box.top + box.height + 4);

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
      for (let j = 0; j < nshow; j++) {
        const y = Y(get(j));
        if (!Number.isFinite(y)) { pen = false; continue; }
        const yc = Math.max(box.top - 2, Math.min(box.top + box.height + 2, y)); // below the range: at the floor
        if (pen) ctx.lineTo(X(freqs[j]), yc); else ctx.moveTo(X(freqs[j]), yc);
        pen = true;
      }
      ctx.stroke();
    };
    const alpha = nch > 16 ? 0.35 : 0.7;
    for (let c = 0; c < nch; c++) line((j) => d[c * nbin + j], seriesColor(c, th, alpha), 1);
    if (nch > 1) line((j) => mean[j], th.fg, 2);
    ctx.restore();

    if (items.length) {
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      const x = box.left + box.width + 10;
      items.forEach(([n, color, width], i) => {
        const y = box.top + 6 + i * 15;
        ctx.strokeStyle = color;
        ctx.lineWidth = width;
        ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 14, y); ctx.stroke();
        ctx.fillStyle = th.fg;
        ctx.fillText(n, x + 18, y);
      });
    }
    const range = nshow < nbin ? "" : " (all)";
    return `${log ? `dB, ${RANGE_DB} dB` : "linear"} · ${fmtNumber(f0)}–${fmtNumber(f1)} Hz${range}`
      + ` · mean of ~${AVG} spectra${nch > 1 ? " · bold: mean" : ""}`;
  }

  return {
    name: "spectrum",
    meta: (info) => `${baseNames(info).length} ch · ${(info.axis || []).length} bins · ${fmtNumber(info.sfreq || 0)} spectra/s`,
    height: () => 280,
    controls: [
      { label: "f", keys: ["f"], title: "all frequencies / up to the band edge (f)", run: () => { state.full = !state.full; } },
      { label: "dB", keys: ["l"], title: "dB / linear (l)", run: () => { model.set("log_scale", !model.get("log_scale")); model.save_changes?.(); } },
    ],
    draw,
  };
}
