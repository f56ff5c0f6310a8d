// Display controls, pausing, visibility, delta frames and the topomap, through the view
// host with the built-in view modules on a recording canvas.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { FakeModel, frameMessage } from "./fake-model.js";
import { installFakeDom, FakeElement } from "./fake-dom.js";
import host, { loaded } from "../protocol.js";

const WIDGETS = new URL("../", import.meta.url);
const read = (path) => readFileSync(new URL(path, WIDGETS), "utf8");
const API = read("draw.js");

let dom;
let ids = 0;
beforeEach(() => { dom = installFakeDom({ width: 800 }); });

async function mount(view, info, extra = {}) {
  const model = new FakeModel({ stream_id: `c${++ids}`, view, _view_js: read(view), _api_js: API, info,
    title: "", status: { state: "ok" }, height: 0, scale: 0, log_scale: false, params: {}, paused: false,
    seconds: 5, positions: {}, ...extra });
  host.initialize({ model });
  await loaded(model);
  const el = new FakeElement("div");
  host.render({ model, el });
  const root = el.children[0];
  const ctx = root.children[1].children[0].context;
  const head = root.children[0];
  return {
    model, root, ctx,
    note: () => head.children[2].textContent,
    button: (label) => head.children[3].children.find((b) => b.dataset.control === label),
    // what the next animation frame draws: its fillText texts and the number of strokes
    frame() {
      const from = ctx.calls.length;
      dom.flushFrame();
      const calls = ctx.calls.slice(from);
      return { calls, texts: calls.filter((c) => c[0] === "fillText").map((c) => String(c[1])) };
    },
  };
}

const CH64 = Array.from({ length: 64 }, (_, i) => `E${i + 1}`);
const eeg64 = { ch_names: CH64, sfreq: 1000, units: CH64.map(() => "V"), kind: "timeseries" };

function window64(seq, first, n = 100, amp = 20e-6) {
  const rows = CH64.map((_, c) => Array.from({ length: n }, (_, j) => {
    const v = amp * Math.sin((first + j) / 7 + c);
    return [v - 1e-6, v + 1e-6];
  }));
  return frameMessage(seq, rows, 0, { layout: "minmax", first_sample: first, step: 10, valid_from: 0, sfreq: 1000 });
}

test("64 channels are paged so every label is drawn; PageDown and the buttons move the page", async () => {
  const v = await mount("scope.js", eeg64);
  v.model.deliver(...window64(1, 0));
  const first = v.frame();
  const labels = first.texts.filter((t) => /^E\d+$/.test(t));
  assert.ok(labels.length >= 20 && labels.length < 64, labels.join());
  assert.deepEqual(labels, CH64.slice(0, labels.length)); // consecutive: none skipped
  assert.match(v.note(), new RegExp(`ch 1–${labels.length} of 64`));
  assert.equal(v.root.key("PageDown"), true);
  const second = v.frame().texts.filter((t) => /^E\d+$/.test(t));
  assert.deepEqual(second, CH64.slice(64 - labels.length)); // the last page ends with the last channel
  assert.match(v.note(), new RegExp(`ch ${64 - labels.length + 1}–64 of 64`));
  v.button("▲").onclick();
  assert.equal(v.frame().texts.filter((t) => /^E\d+$/.test(t))[0], "E1");
  v.root.key("ArrowDown");
  assert.equal(v.frame().texts.filter((t) => /^E\d+$/.test(t))[0], "E2");
});

test("+/- change the amplitude scale, a returns to automatic; the scale bar says it in µV", async () => {
  const v = await mount("scope.js", eeg64);
  v.model.deliver(...window64(1, 0));
  const auto = v.frame();
  assert.match(v.note(), /^100 µV \/ div \(auto\)/);
  assert.ok(auto.texts.includes("100 µV"), auto.texts.join()); // the scale bar's label
  v.root.key("+");
  assert.equal(v.model.get("scale"), 50e-6);
  const zoomed = v.frame();
  assert.match(v.note(), /^50 µV \/ div ·/);
  assert.ok(zoomed.texts.includes("50 µV"));
  // a larger amplitude draws the same samples further from their lane's centre (on the traces' layer)
  const layer = auto.calls.find((c) => c[0] === "drawImage")[1].context.calls;
  const span = (from) => { // of the first channel drawn (its first 100 segments)
    const ys = layer.slice(from).filter((c) => c[0] === "lineTo").slice(0, 100).map((c) => c[2]);
    return Math.max(...ys) - Math.min(...ys);
  };
  const redraws = layer.map((c, i) => (c[0] === "clearRect" && c[1] === 0 && c[2] === 0 ? i : -1)).filter((i) => i >= 0);
  assert.equal(redraws.length, 2); // the first frame, then the new scale
  assert.ok(span(redraws[1]) > 1.5 * span(redraws[0]), `${span(redraws[1])} vs ${span(redraws[0])}`);
  v.button("−").onclick();
  v.button("−").onclick();
  assert.equal(v.model.get("scale"), 200e-6);
  v.root.key("a");
  assert.equal(v.model.get("scale"), 0);
});

test("automatic amplitude follows a smaller signal within a second", async () => {
  const v = await mount("scope.js", eeg64);
  v.model.deliver(...window64(1, 0, 100, 200e-6));
  v.frame();
  assert.match(v.note(), /^1 mV/);
  const t0 = performance.now();
  let seq = 2;
  while (!/^100 µV/.test(v.note()) && performance.now() - t0 < 1500) {
    v.model.deliver(...window64(seq++, 0, 100, 20e-6));
    v.frame();
    await new Promise((r) => setTimeout(r, 30));
  }
  assert.match(v.note(), /^100 µV/);
  assert.ok(performance.now() - t0 < 1000, `took ${performance.now() - t0} ms`);
});

test("Home/End change the time window (the kernel's seconds trait)", async () => {
  const v = await mount("scope.js", eeg64);
  v.model.deliver(...window64(1, 0));
  v.frame();
  v.root.key("End");
  assert.equal(v.model.get("seconds"), 10);
  v.root.key("Home");
  v.root.key("Home");
  assert.equal(v.model.get("seconds"), 2);
});

test("pause keeps the picture: frames still come, nothing is drawn until resumed", async () => {
  const v = await mount("scope.js", eeg64);
  v.model.deliver(...window64(1, 0));
  v.frame();
  v.root.key(" ");
  assert.equal(v.model.get("paused"), true);
  v.frame();
  assert.match(v.note(), /^paused · /);
  const draws = v.root.dataset.draws;
  v.model.deliver(...window64(2, 10));
  assert.equal(dom.flushFrame(), 0);
  assert.equal(v.root.dataset.draws, draws);
  assert.equal(v.root.dataset.lastSeq, "1");
  assert.equal(v.button("pause").textContent, "▶");
  v.button("pause").onclick();
  assert.equal(v.model.get("paused"), false);
  v.frame();
  assert.equal(v.root.dataset.lastSeq, "2");
});

test("a view scrolled out of sight tells the kernel, draws and acks nothing, and catches up when seen", async () => {
  const v = await mount("scope.js", eeg64);
  v.model.deliver(...window64(1, 0));
  v.frame();
  assert.deepEqual(v.model.sent.filter((m) => m.type === "visibility"), [{ type: "visibility", visible: true }]);
  dom.setOnScreen(v.root, false);
  assert.deepEqual(v.model.sent.at(-1), { type: "visibility", visible: false });
  assert.equal(v.root.dataset.visible, "false");
  v.model.deliver(...window64(2, 10)); // in flight when it was hidden
  assert.equal(dom.flushFrame(), 0);
  assert.equal(v.root.dataset.draws, "1");
  assert.deepEqual(v.model.acks(), [1]);
  dom.setOnScreen(v.root, true);
  assert.deepEqual(v.model.sent.at(-1), { type: "visibility", visible: true });
  v.frame();
  assert.equal(v.root.dataset.lastSeq, "2");
});

test("a hidden page counts as out of sight", async () => {
  const v = await mount("scope.js", eeg64);
  globalThis.document.hidden = true;
  const handlers = [];
  globalThis.document.addEventListener = (type, fn) => handlers.push(fn);
  try {
    const w = await mount("scope.js", eeg64);
    handlers.forEach((fn) => fn());
    assert.deepEqual(w.model.sent.at(-1), { type: "visibility", visible: false });
  } finally {
    delete globalThis.document.hidden;
  }
  assert.ok(v);
});

test("delta frames are shifted into the window; one that does not continue it asks for a resync", async () => {
  const v = await mount("scope.js", { ch_names: ["Fz", "Cz"], sfreq: 100, units: ["V", "V"] });
  const raw = (seq, first, rows, extra = {}) => frameMessage(seq, rows, 0,
    { layout: "raw", first_sample: first, step: 1, valid_from: 0, sfreq: 100, ...extra });
  v.model.deliver(...raw(1, 0, [[1, 2, 3, 4], [5, 6, 7, 8]]));
  v.model.deliver(...raw(2, 2, [[9, 10], [11, 12]], { shape: [2, 4], delta: 2 }));
  v.frame();
  assert.equal(v.root.dataset.firstValue, "3");
  v.model.deliver(...raw(3, 3, [[13], [14]], { shape: [2, 4], delta: 1 }));
  v.frame();
  assert.equal(v.root.dataset.firstValue, "4");
  assert.deepEqual(v.model.acks(), [1, 2, 3]);
  v.model.deliver(...raw(4, 9, [[15], [16]], { shape: [2, 4], delta: 1 })); // a gap: 5..8 never came
  assert.deepEqual(v.model.sent.at(-1), { type: "resync", seq: 4 });
  assert.equal(dom.flushFrame(), 0);
});

test("topomap draws the interpolated map, head, colour bar with unit, and lists channels without position", async () => {
  const bands = ["delta", "theta", "alpha", "beta", "gamma"];
  const ch = ["Fz", "Cz", "Pz", "O1", "O2", "EOG"];
  const info = { ch_names: ch.flatMap((c) => bands.map((b) => `${c}:${b}`)), sfreq: 4, kind: "features",
    units: Array(30).fill("V²"), axis: bands, axis_values: [2.5, 6, 10.5, 21.5, 37.5] };
  const positions = { ch_names: ch, pos: [[0, 0.69], [0, 0.19], [0, -0.31], [-0.2, -0.62], [0.2, -0.62], null],
    missing: ["EOG"] };
  const v = await mount("topomap.js", info, { positions });
  const rows = ch.map((_, c) => bands.map((_, b) => (b === 2 ? (c + 1) * 1e-12 : 1e-12)));
  v.model.deliver(...frameMessage(1, rows));
  const out = v.frame();
  assert.equal(v.root.className, "eegkit-view eegkit-topomap");
  assert.equal(v.root.dataset.state, "ok");
  assert.match(v.note(), /^alpha · 5\/6 ch positioned$/);
  for (const t of ["no position:", "EOG", "µV²", "5", "3", "1"]) assert.ok(out.texts.includes(t), `${t} in ${out.texts}`);
  const off = out.calls.find((c) => c[0] === "drawImage")[1];
  const put = off.context.calls.find((c) => c[0] === "putImageData")[1];
  const alpha = put.data.filter((_, i) => i % 4 === 3 && put.data[i] === 255).length;
  assert.ok(alpha > 0.5 * 64 * 64 * Math.PI / 4, `${alpha} cells painted`);
  // front (Fz, small) and back (O1/O2, large) differ in colour
  const px = (x, y) => Array.from(put.data.slice((y * 64 + x) * 4, (y * 64 + x) * 4 + 3)).join();
  assert.notEqual(px(32, 12), px(32, 52));
  // → shows the next band
  v.root.key("ArrowRight");
  v.frame();
  assert.match(v.note(), /^beta · /);
  assert.equal(v.root.className, "eegkit-view eegkit-topomap"); // still, after several draws
});

test("the scope scrolls its traces: a frame that continues the window draws only the new points", async () => {
  const v = await mount("scope.js", eeg64);
  v.model.deliver(...window64(1, 0));
  const full = v.frame();
  const layer = full.calls.find((c) => c[0] === "drawImage")[1].context.calls;
  const n0 = layer.filter((c) => c[0] === "lineTo").length;
  const mark = layer.length;
  v.model.deliver(...window64(2, 30)); // 3 buckets of 10 samples later
  v.frame();
  const next = layer.slice(mark);
  const n1 = next.filter((c) => c[0] === "lineTo").length;
  assert.ok(n0 > 1000 && n1 < n0 / 10, `${n0} then ${n1} segments`);
  assert.ok(next.some((c) => c[0] === "set" && c[1] === "globalCompositeOperation" && c[2] === "copy"));
  assert.ok(next.some((c) => c[0] === "drawImage" && c[2] < 0)); // the layer moved left
  v.model.deliver(...window64(3, 5000)); // a jump: drawn whole again
  v.frame();
  assert.ok(layer.slice(mark).filter((c) => c[0] === "lineTo").length > n0 / 2 + n1);
});

test("each channel type has its own amplitude scale; t selects the type +/- act on", async () => {
  const info = { ch_names: ["Fz", "Cz", "EOG"], ch_types: ["eeg", "eeg", "eog"], sfreq: 1000,
    units: ["V", "V", "V"], kind: "timeseries" };
  const v = await mount("scope.js", info);
  const rows = [20e-6, 20e-6, 400e-6].map((amp, c) => Array.from({ length: 100 }, (_, j) => {
    const x = amp * Math.sin(j / 7 + c);
    return [x - 1e-7, x + 1e-7];
  }));
  v.model.deliver(...frameMessage(1, rows, 0, { layout: "minmax", first_sample: 0, step: 10, valid_from: 0, sfreq: 1000 }));
  v.frame();
  const auto = v.note();
  assert.match(auto, /eeg [\d.]+ µV \(auto\), eog [\d.]+ (µV|mV) \(auto\) \/ div/);
  const [eeg, eog] = [/eeg ([^,]+) \(auto\)/, /eog (.+?) \(auto\)/].map((r) => auto.match(r)[1]);
  assert.notEqual(eeg, eog); // the 20x larger EOG gets its own, larger division
  v.root.key("t");           // select eog
  v.root.key("+");           // larger amplitude for eog only
  v.frame();
  assert.equal(v.model.get("scale"), 0); // the eeg scale (the trait) is still automatic
  assert.match(v.note(), /eeg [^,]+ \(auto\), ▸eog [^(]+ \/ div/); // eog now manual
  v.root.key("t");           // back to eeg
  v.root.key("+");
  v.frame();
  assert.ok(v.model.get("scale") > 0);
});
