// Topomap: one value per channel (a band's power, any feature, or the newest sample)
// interpolated over the head seen from above, nose up, as MNE's plot_topomap.
// Frames: layout "latest", channels x axis items; the item shown is chosen with
// ←/→ (default: "alpha" when there is one). Positions come once in the `positions`
// trait ({ch_names, pos: [[x, y] | null], missing}), computed in Python from the
// channel names (eegkit.notebook.topomap_positions): the unit circle is the head.
// A view module of eegkit's view host (protocol.js): it only draws.

const GRID = 64; // interpolation grid (cells per side), scaled up smoothly when drawn

// Colour maps as anchor points: sequential (values of one sign) and diverging.
const SEQ = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const DIV = [[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]];

function colorAt(map, t) {
  const x = Math.max(0, Math.min(1, t)) * (map.length - 1);
  const i = Math.min(map.length - 2, Math.floor(x)), f = x - i;
  return map[i].map((a, k) => Math.round(a + (map[i + 1][k] - a) * f));
}

// Inverse-distance weights (power 2) from every grid cell inside the disk to every
// positioned channel; recomputed only when the positions change.
function weights(pts, radius) {
  const n = pts.length;
  const w = new Float32Array(GRID * GRID * n);
  const inside = new Uint8Array(GRID * GRID);
  for (let gy = 0; gy < GRID; gy++) {
    for (let gx = 0; gx < GRID; gx++) {
      const x = ((gx + 0.5) / GRID * 2 - 1) * radius, y = (1 - (gy + 0.5) / GRID * 2) * radius;
      const cell = gy * GRID + gx;
      if (x * x + y * y > radius * radius) continue;
      inside[cell] = 1;
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const d2 = (x - pts[i][0]) ** 2 + (y - pts[i][1]) ** 2;
        const v = 1 / (d2 * d2 + 1e-9); // 1/d^4: local, without MNE's bullseyes of 1/d^2
        w[cell * n + i] = v;
        sum += v;
      }
      for (let i = 0; i < n; i++) w[cell * n + i] /= sum;
    }
  }
  return { w, inside, n };
}

export default function topomap({ model, api }) {
  const state = { item: null, key: "", grid: null, off: null };
  const { stickyRange, fmtNumber, displayUnit, baseNames } = api;

  const items = () => (model.get("info") || {}).axis || [];
  const step = (n) => {
    const k = Math.max(1, items().length);
    state.item = ((state.item ?? 0) + n + k) % k;
  };

  function layout(info) {
    const p = model.get("positions") || {};
    const names = p.ch_names || baseNames(info);
    const pos = p.pos || [];
    const known = [];
    names.forEach((name, c) => { if (pos[c]) known.push({ c, name, xy: pos[c] }); });
    const missing = p.missing || names.filter((_, c) => !pos[c]);
    const radius = Math.max(1, ...known.map((k) => Math.hypot(k.xy[0], k.xy[1]) + 0.05));
    return { known, missing, radius };
  }

  function draw(ctx, frame, { w, h, th, info }) {
    const [nch, nitems] = frame.shape;
    const axis = items();
    if (state.item === null) state.item = Math.max(0, axis.findIndex((a) => String(a).toLowerCase() === "alpha"));
    const item = Math.min(state.item, nitems - 1);
    const key = JSON.stringify(model.get("positions"));
    if (key !== state.key) { state.key = key; state.geo = layout(info); state.grid = null; }
    const { known, missing, radius } = state.geo;
    const { factor, unit } = displayUnit(((info.units || [])[item]) || (info.units || [])[0]);
    const log = model.get("log_scale");
    const value = (c) => {
      const v = frame.data[c * nitems + item] * factor;
      return log ? (v > 0 ? 10 * Math.log10(v) : NaN) : v;
    };

    // value range: symmetric around 0 (diverging map) when values of both signs
    let lo = Infinity, hi = -Infinity;
    for (const k of known) { const v = value(k.c); if (v === v) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }
    if (!(hi >= lo)) { lo = 0; hi = 1; }
    const diverging = !log && lo < 0 && hi > 0;
    if (diverging) { hi = stickyRange(state, "abs", Math.max(-lo, hi)); lo = -hi; }
    if (hi === lo) { hi += 1e-12 + Math.abs(hi) * 0.01; lo -= 1e-12 + Math.abs(lo) * 0.01; }
    const map = diverging ? DIV : SEQ;

    // geometry: head on the left, colour bar on the right, channels without position listed on the left
    const listW = missing.length ? 90 : 0;
    const size = Math.max(40, Math.min(h - 16, w - listW - 90));
    const cx = listW + 8 + size / 2, cy = 8 + size / 2;
    const s = (size / 2) / (radius * 1.12); // px per head radius, room for nose and ears
    const R = radius * s;

    // the interpolated map: ImageData of the grid, drawn scaled with smoothing
    if (known.length) {
      if (!state.grid) state.grid = weights(known.map((k) => k.xy), radius);
      const { w: wt, inside, n } = state.grid;
      const vals = known.map((k) => value(k.c));
      if (!state.off) {
        state.off = document.createElement("canvas");
        state.off.width = GRID; state.off.height = GRID;
      }
      const octx = state.off.getContext("2d");
      const img = octx.createImageData(GRID, GRID);
      for (let cell = 0; cell < GRID * GRID; cell++) {
        if (!inside[cell]) continue;
        let v = 0, sw = 0;
        for (let i = 0; i < n; i++) { const x = vals[i]; if (x === x) { v += wt[cell * n + i] * x; sw += wt[cell * n + i]; } }
        if (!sw) continue;
        const rgb = colorAt(map, (v / sw - lo) / (hi - lo));
        img.data[cell * 4] = rgb[0]; img.data[cell * 4 + 1] = rgb[1]; img.data[cell * 4 + 2] = rgb[2];
        img.data[cell * 4 + 3] = 255;
      }
      octx.putImageData(img, 0, 0);
      ctx.save();
      ctx.beginPath();
      ctx.arc(cx, cy, R, 0, 2 * Math.PI);
      ctx.clip();
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(state.off, cx - R, cy - R, 2 * R, 2 * R);
      ctx.restore();
    }

    // head outline (unit circle), nose and ears, as MNE draws them
    ctx.strokeStyle = th.fg;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.arc(cx, cy, s, 0, 2 * Math.PI);
    ctx.moveTo(cx - 0.18 * s, cy - 0.985 * s);
    ctx.lineTo(cx, cy - 1.15 * s);
    ctx.lineTo(cx + 0.18 * s, cy - 0.985 * s);
    for (const side of [-1, 1]) {
      ctx.moveTo(cx + side * s, cy - 0.1 * s);
      ctx.quadraticCurveTo(cx + side * 1.12 * s, cy, cx + side * s, cy + 0.12 * s);
    }
    ctx.stroke();

    // sensors (one path), names when they fit
    ctx.fillStyle = th.fg;
    ctx.beginPath();
    for (const k of known) {
      const x = cx + k.xy[0] * s, y = cy - k.xy[1] * s;
      ctx.moveTo(x + 1.6, y);
      ctx.arc(x, y, 1.6, 0, 2 * Math.PI);
    }
    ctx.fill();
    if (known.length <= 32 && size >= 200) {
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      ctx.font = `9px ${th.font}`;
      for (const k of known) ctx.fillText(k.name, cx + k.xy[0] * s, cy - k.xy[1] * s + 3);
      ctx.font = `11px ${th.font}`;
    }

    // channels without a position, beside the head
    if (missing.length) {
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      ctx.fillStyle = th.muted;
      ctx.fillText("no position:", 4, 8);
      const rows = Math.max(1, Math.floor((h - 28) / 13));
      missing.slice(0, rows).forEach((n, i) => ctx.fillText(
        i === rows - 1 && missing.length > rows ? `+${missing.length - rows + 1} more` : n, 8, 24 + i * 13));
    }

    // colour bar with its unit
    const bx = cx + size / 2 + 16, bh = Math.max(30, size * 0.7), by = cy - bh / 2;
    for (let i = 0; i < bh; i++) {
      const [r, g, b] = colorAt(map, 1 - i / bh);
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(bx, by + i, 12, 1.5);
    }
    ctx.strokeStyle = th.axis;
    ctx.lineWidth = 1;
    ctx.strokeRect(bx + 0.5, by + 0.5, 12, bh);
    ctx.fillStyle = th.muted;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(fmtNumber(hi), bx + 16, by);
    ctx.fillText(fmtNumber((hi + lo) / 2), bx + 16, by + bh / 2);
    ctx.fillText(fmtNumber(lo), bx + 16, by + bh);
    ctx.textBaseline = "bottom";
    ctx.fillStyle = th.faint;
    ctx.fillText(log ? `dB (${unit || "1"})` : unit, bx, by - 6);

    const what = axis.length > 1 ? `${axis[item]} · ` : "";
    return `${what}${known.length}/${nch} ch positioned${log ? " · dB" : ""}`;
  }

  return {
    name: "topomap",
    meta: (info) => `${baseNames(info).length} ch · ${fmtNumber(info.sfreq || 0)} maps/s`,
    height: () => 300,
    controls: [
      { label: "‹", keys: ["ArrowLeft"], title: "previous item (←)", run: () => step(-1) },
      { label: "›", keys: ["ArrowRight"], title: "next item (→)", run: () => step(1) },
    ],
    draw,
  };
}
