// Every shipped view module drawn through the view host on realistic frames: the
// built-in views, brain_fft's bundle (protocol.test.js) and the `new-plugin --ui` template.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { FakeModel, frameMessage } from "./fake-model.js";
import { installFakeDom, FakeElement } from "./fake-dom.js";
import host, { loaded } from "../protocol.js";

const WIDGETS = new URL("../", import.meta.url);
const read = (path) => readFileSync(new URL(path, WIDGETS), "utf8");
const API = read("draw.js");
const CH = ["Fz", "Cz", "Pz"];
const BANDS = ["delta", "theta", "alpha", "beta", "gamma"];

let dom;
let ids = 0;
beforeEach(() => { dom = installFakeDom({ width: 640 }); });

async function drawOnce(source, info, message, extra = {}) {
  const model = new FakeModel({ stream_id: `v${++ids}`, view: "v.js", _view_js: source, _api_js: API, info,
    title: "", status: { state: "ok" }, height: 0, scale: 0, log_scale: false, params: {}, ...extra });
  host.initialize({ model });
  await loaded(model);
  const el = new FakeElement("div");
  host.render({ model, el });
  model.deliver(...message);
  dom.flushFrame();
  const root = el.children[0];
  const [head, body] = root.children;
  const ctx = body.children[0].context;
  return { model, root, canvas: body.children[0], title: head.children[0].textContent,
    note: head.children[2].textContent, banner: body.children[2],
    texts: ctx.calls.filter((c) => c[0] === "fillText").map((c) => String(c[1])),
    strokes: ctx.calls.filter((c) => c[0] === "stroke").length };
}

function sine(n, k) {
  return Array.from({ length: n }, (_, i) => 20e-6 * Math.sin((2 * Math.PI * i) / 50 + k));
}

function ok(out) {
  assert.equal(out.banner.hidden, true, out.banner.textContent);
  assert.equal(out.root.dataset.state, "ok");
  assert.deepEqual(out.model.acks(), [1]);
}

const timeseries = { ch_names: CH, sfreq: 250, units: ["V", "V", "V"], kind: "timeseries" };

test("scope draws raw and min/max frames with channel labels, time axis and scale", async () => {
  const raw = await drawOnce(read("scope.js"), timeseries,
    frameMessage(1, CH.map((_, k) => sine(500, k)), 0, { layout: "raw", first_sample: 1000, step: 1, valid_from: 0, sfreq: 250 }));
  ok(raw);
  for (const t of ["Fz", "Cz", "Pz", "4.0 s", "6.0 s"]) assert.ok(raw.texts.includes(t), `${t} in ${raw.texts}`);
  assert.match(raw.note, /µV \/ div \(auto\) · 2 s$/);
  assert.ok(raw.strokes >= 3);
  const minmax = CH.map((_, k) => sine(100, k).map((v) => [v - 1e-6, v + 1e-6]));
  const mm = await drawOnce(read("scope.js"), timeseries,
    frameMessage(1, minmax, 0, { layout: "minmax", first_sample: 0, step: 5, valid_from: 10, sfreq: 250 }));
  ok(mm);
  assert.match(mm.note, /min\/max of 5$/);
});

test("spectrum draws a log frequency plot with units and a legend", async () => {
  const freqs = Array.from({ length: 129 }, (_, i) => i * 250 / 256);
  const info = { ch_names: CH.flatMap((c) => freqs.map((f) => `${c}:${f}`)), sfreq: 7.8, kind: "spectrum",
    units: Array(3 * 129).fill("V²/Hz"), axis: freqs.map(String), axis_values: freqs };
  const psd = CH.map((_, k) => freqs.map((f) => 1e-11 / (1 + f) * (1 + k)));
  const out = await drawOnce(read("spectrum.js"), info, frameMessage(1, psd), { log_scale: true });
  ok(out);
  // EEG defaults: dB with 60 dB shown, 0 to 60 Hz (no band-pass edge in params), legend outside the plot
  for (const t of ["dB re 1 µV²/Hz", "-40", "20", "Hz", "50", "Fz", "mean"]) assert.ok(out.texts.includes(t), `${t} in ${out.texts}`);
  assert.ok(!out.texts.includes("120"), out.texts);
  assert.match(out.note, /^dB, 60 dB · 0–59\.6 Hz · mean of ~8 spectra · bold: mean$/);
  const ctx = out.canvas.context.calls;
  const plotRight = ctx.filter((c) => c[0] === "rect").map((c) => c[1] + c[3])[0];
  const legendX = ctx.filter((c) => c[0] === "fillText" && c[1] === "Fz").map((c) => c[2])[0];
  assert.ok(legendX > plotRight, `legend at ${legendX}, plot ends at ${plotRight}`);
  const banded = await drawOnce(read("spectrum.js"), info, frameMessage(1, psd), { log_scale: true, params: { high: 40 } });
  assert.match(banded.note, /· 0–39\.1 Hz ·/);
});

test("bars draws grouped bars with a band legend and value unit", async () => {
  const info = { ch_names: CH.flatMap((c) => BANDS.map((b) => `${c}:${b}`)), sfreq: 7.8, kind: "features",
    units: Array(15).fill("V²"), axis: BANDS, axis_values: [2.5, 6, 10.5, 21.5, 37.5] };
  const out = await drawOnce(read("bars.js"), info, frameMessage(1, CH.map(() => [4e-12, 2e-12, 9e-12, 1e-12, 5e-13])));
  ok(out);
  for (const t of ["µV²", "alpha", "Cz", "0", "10"]) assert.ok(out.texts.includes(t), `${t} in ${out.texts}`);
});

test("the new-plugin --ui template draws a titled, labelled, unit-aware chart that follows its container", async () => {
  const source = readFileSync(new URL("../eegkit/plugin/templates/bundle.js.in", WIDGETS), "utf8")
    .replaceAll("__NAME__", "my_filter");
  const frame = frameMessage(1, CH.map((_, k) => sine(500, k).map((v) => v * (k + 1))), 0,
    { layout: "raw", first_sample: 0, step: 1, valid_from: 0, sfreq: 250 });
  const out = await drawOnce(source, timeseries, frame);
  ok(out);
  assert.equal(out.root.className, "eegkit-view eegkit-my_filter");
  assert.equal(out.title, "my_filter: peak-to-peak amplitude per channel");
  for (const t of ["peak-to-peak (µV)", "channel", "Fz", "Cz", "Pz", "0"]) assert.ok(out.texts.includes(t), `${t} in ${out.texts}`);
  assert.match(out.note, /^largest: 120 µV$/);
  assert.equal(out.canvas.style.height, "224px"); // 0.35 x 640
  dom.width = 900;
  dom.resizeAll();
  dom.flushFrame();
  assert.equal(out.canvas.style.height, "315px");
  assert.equal(out.canvas.width, 900);
});

test("the RMS meter written in notebooks/02_write_your_first_plugin.ipynb draws", async () => {
  const nb = JSON.parse(readFileSync(new URL("../notebooks/02_write_your_first_plugin.ipynb", WIDGETS), "utf8"));
  const cell = nb.cells.map((c) => [].concat(c.source).join("")).find((s) => s.startsWith("%%writefile {plugin}/ui/bundle.js"));
  const source = cell.split("\n").slice(1).join("\n");
  const info = { ch_names: CH.map((c) => `${c}:rms`), sfreq: 5, units: ["V", "V", "V"], kind: "features",
    axis: ["rms"], axis_values: [0] };
  const out = await drawOnce(source, info, frameMessage(1, [[12e-6], [20e-6], [7e-6]]));
  ok(out);
  assert.equal(out.title, "RMS");
  for (const t of ["Fz", "20 µV", "7 µV"]) assert.ok(out.texts.includes(t), `${t} in ${out.texts}`);
  assert.equal(out.note, "full scale 20 µV");
});
