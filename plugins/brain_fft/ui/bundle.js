// "Brain Waves FFT": live relative band power of the brain_fft.band_power stage.
// Bars: each band's share of the total power, averaged over channels, with the
// band's name and Hz range. Heat strip: the same share for every channel.
//
// A view module for eegkit's view host (see widgets/README.md in eegkit): the host
// receives the frames ({seq, shape: [channels, bands], data: Float32Array, ...}),
// draws at most once per animation frame, acks, resizes and shows the title and
// errors; this file only draws. `api` holds eegkit's drawing helpers.

const BANDS = {
  delta: { range: [1, 4], light: "#5c6bc0", dark: "#9fa8da" },
  theta: { range: [4, 8], light: "#26a69a", dark: "#80cbc4" },
  alpha: { range: [8, 13], light: "#43a047", dark: "#a5d6a7" },
  beta: { range: [13, 30], light: "#fb8c00", dark: "#ffcc80" },
  gamma: { range: [30, 45], light: "#e53935", dark: "#ef9a9a" },
};

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

function drawBands(ctx, frame, { w, h, th, info }, model, api) {
  const [nch, nb] = frame.shape;
  // the info trait and the frames travel separately: after a band change one may
  // arrive before the other, so names always follow the frame's band count
  const axis = info.axis && info.axis.length === nb ? info.axis : [];
  const names = Array.from({ length: nb }, (_, k) => axis[k] || `band ${k + 1}`);
  const d = frame.data;
  const chans = api.baseNames(info, nb);

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
    api.roundRect(ctx, x, barTop, bw, barH, 4);
    ctx.fill();
    const bh = Math.min(barH, (mean[k] / top) * barH);
    const grad = ctx.createLinearGradient(0, barTop + barH - bh, 0, barTop + barH);
    grad.addColorStop(0, colors[k]);
    grad.addColorStop(1, colors[k].startsWith("#") ? colors[k] + (th.dark ? "99" : "bb") : colors[k]);
    ctx.fillStyle = grad;
    api.roundRect(ctx, x, barTop + barH - bh, bw, bh, 4);
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

export default function brainWaves({ model, api }) {
  return {
    name: "brain_fft",
    title: "Brain Waves FFT",
    meta: (info) => `${api.baseNames(info).length} ch · share of band power, mean over channels`,
    height: () => 300,
    draw: (ctx, frame, size) => drawBands(ctx, frame, size, model, api),
  };
}
