// Drawing helpers handed to every view (built-in or plugin) as `api`: colours,
// 1-2-5 ticks, number and unit formatting, sticky auto ranges, axes, labels and
// traces. Pure functions of a canvas 2D context and a theme `th` (see theme() in
// protocol.js); no DOM, no imports, so views need none either.

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

// Auto range that grows at once and shrinks after `ms` (0.5 s) of smaller values, so
// axes do not jitter from frame to frame yet follow the signal within a second.
export function stickyRange(state, key, target, shrink = (a, b) => a < b, ms = 500) {
  const s = state[key];
  const now = performance.now();
  if (!s || target > s.value || !isFinite(s.value)) {
    state[key] = { value: target, since: null };
  } else if (shrink(target, s.value)) {
    if (s.since === null) s.since = now;
    else if (now - s.since >= ms) state[key] = { value: target, since: null };
  } else {
    s.since = null;
  }
  return state[key].value;
}

// Largest 1-2-5 x 10^k number < x (the step below niceUp's ladder).
export function niceDown(x) {
  if (!(x > 0) || !isFinite(x)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  // rounded: 5 * 1e-5 is 4.9999...e-5 in floating point, and the value is shown and sent
  for (const m of [5, 2, 1, 0.5]) if (m * p < x * (1 - 1e-9)) return Number((m * p).toPrecision(12));
  return Number((0.5 * p).toPrecision(12));
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

// An axis title ("frequency (Hz)", "RMS (µV)"): centred at (x, y), vertical when `vertical`.
export function axisLabel(ctx, th, text, x, y, vertical = false) {
  ctx.save();
  ctx.translate(x, y);
  if (vertical) ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillStyle = th.faint;
  ctx.fillText(text, 0, 0);
  ctx.restore();
}

// One channel of a window frame as a path: for layout "minmax" a vertical stroke per
// bucket from its min to its max (every spike stays visible), for "raw" a polyline.
// X(j) and Y(v) map point index and value to pixels; NaN points (no data yet) lift the pen.
export function trace(ctx, frame, c, X, Y) {
  ctx.beginPath();
  tracePath(ctx, frame, c, X, Y);
  ctx.stroke();
}

// trace() without beginPath/stroke: add channel c to the current path, so channels of
// one colour are stroked together (one state change and one stroke per colour).
// `from`: first point index (to draw only the newest points of a scrolling trace).
export function tracePath(ctx, frame, c, X, Y, from = 0) {
  const d = frame.data;
  const npts = frame.shape[1];
  const minmax = frame.layout === "minmax";
  let pen = false;
  for (let j = Math.max(from, frame.valid_from || 0); j < npts; j++) {
    const x = X(j);
    if (minmax) {
      const lo = d[(c * npts + j) * 2], hi = d[(c * npts + j) * 2 + 1];
      if (lo !== lo) { pen = false; continue; }
      if (pen) ctx.lineTo(x, Y(lo)); else ctx.moveTo(x, Y(lo));
      ctx.lineTo(x, Y(hi));
    } else {
      const v = d[c * npts + j];
      if (v !== v) { pen = false; continue; }
      if (pen) ctx.lineTo(x, Y(v)); else ctx.moveTo(x, Y(v));
    }
    pen = true;
  }
}

// Channel names of a spectrum/features stream, whose rows are "<channel>:<item>".
export function baseNames(info, nItems) {
  const names = info.ch_names || [];
  const n = Math.max(1, nItems ?? (info.axis || []).length);
  const out = [];
  for (let i = 0; i < names.length; i += n) out.push(names[i].replace(/:[^:]*$/, ""));
  return out;
}

// A rectangle with rounded corners as the current path (fill or stroke it).
export function roundRect(ctx, x, y, w, h, r) {
  r = Math.max(0, Math.min(r, w / 2, h / 2));
  ctx.beginPath();
  ctx.moveTo(x + r, y);
  ctx.arcTo(x + w, y, x + w, y + h, r);
  ctx.arcTo(x + w, y + h, x, y + h, r);
  ctx.arcTo(x, y + h, x, y, r);
  ctx.arcTo(x, y, x + w, y, r);
  ctx.closePath();
}
