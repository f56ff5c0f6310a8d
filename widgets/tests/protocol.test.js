// The view host (widgets/protocol.js) against a fake model and a fake DOM:
// node --test widgets/tests/
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { FakeModel, frameMessage } from "./fake-model.js";
import { installFakeDom, FakeElement } from "./fake-dom.js";
import host, { loaded, asFloat32 } from "../protocol.js";

const WIDGETS = new URL("../", import.meta.url);
const API = readFileSync(new URL("draw.js", WIDGETS), "utf8");

// A view that records what the host asks of it in model.log.
const RECORDER = `
export default function recorder({ model, api, el }) {
  model.log.push(["make", typeof api.fmtNumber, el.className]);
  return {
    name: "recorder",
    title: "Recorder",
    height: (info, w) => w / 2,
    resize: (w, h) => model.log.push(["resize", w, h]),
    draw(ctx, frame, { w, h, th, info }) {
      model.log.push(["draw", frame.seq, Array.from(frame.data), w, h]);
      ctx.fillText(info.ch_names.join(","), 0, 0);
      return "note " + frame.seq;
    },
    destroy: () => model.log.push(["destroy"]),
  };
}`;

let dom;
let ids = 0;
beforeEach(() => { dom = installFakeDom({ width: 600 }); });

function makeModel(view = RECORDER, extra = {}) {
  const model = new FakeModel({ stream_id: `s${++ids}`, view: "recorder.js", _view_js: view, _api_js: API,
    info: { ch_names: ["Fz", "Cz"], sfreq: 250, units: ["V", "V"] }, title: "", status: { state: "ok", error: null },
    height: 0, ...extra });
  model.log = [];
  return model;
}

async function start(model) {
  const cleanup = host.initialize({ model });
  await loaded(model);
  return cleanup;
}

function show(model) {
  const el = new FakeElement("div");
  const unmount = host.render({ model, el });
  return { el, root: el.children[0], unmount };
}

const draws = (model) => model.log.filter((e) => e[0] === "draw");
const part = (root, cls) => root.children.flatMap((c) => [c, ...c.children]).find((c) => c.className === cls);

test("initialize says ready and listens before any render", async () => {
  const model = makeModel();
  await start(model);
  assert.deepEqual(model.sent, [{ type: "ready" }]);
  assert.equal(model.listeners("msg:custom"), 1);
});

test("a frame sent before the first render is not lost", async () => {
  const model = makeModel();
  await start(model);
  model.deliver(...frameMessage(1, [[1, 2, 3], [4, 5, 6]]));
  const { root } = show(model);
  assert.equal(dom.flushFrame(), 1);
  assert.deepEqual(draws(model), [["draw", 1, [1, 2, 3, 4, 5, 6], 600, 300]]);
  // not acked: no output was on screen; the kernel hears "visible" and starts afresh
  assert.deepEqual(model.acks(), []);
  assert.deepEqual(model.sent, [{ type: "ready" }, { type: "visibility", visible: true }]);
  assert.equal(root.dataset.frames, "1");
  assert.equal(root.dataset.draws, "1");
  assert.equal(root.dataset.lastSeq, "1");
  assert.equal(root.dataset.firstValue, "1");
  assert.equal(root.className, "eegkit-view eegkit-recorder");
});

test("frames are decoded from aligned and unaligned buffers", async () => {
  for (const offset of [0, 8, 3]) {
    const [content, buffers] = frameMessage(1, [[0.5, -2], [1e-6, NaN]], offset);
    const data = asFloat32(buffers[0]);
    assert.ok(data instanceof Float32Array);
    assert.equal(data.length, 4);
    assert.deepEqual(Array.from(data.slice(0, 3)), [0.5, -2, Math.fround(1e-6)]);
    assert.ok(Number.isNaN(data[3]));
    assert.deepEqual(content.shape, [2, 2]);
  }
});

test("many frames between two animation frames give one draw; each is acked as it arrives", async () => {
  const model = makeModel();
  await start(model);
  const { root } = show(model);
  dom.flushFrame(); // first paint: no frame yet, nothing drawn or acked
  assert.deepEqual(draws(model), []);
  for (let seq = 1; seq <= 5; seq++) model.deliver(...frameMessage(seq, [[seq, 0], [0, 0]]));
  assert.equal(dom.pendingFrames(), 1);
  dom.flushFrame();
  assert.deepEqual(draws(model).map((d) => d[1]), [5]);
  assert.deepEqual(model.acks(), [1, 2, 3, 4, 5]);
  assert.equal(root.dataset.frames, "5");
  assert.equal(dom.flushFrame(), 0); // nothing new: no draw requested
  model.deliver(...frameMessage(6, [[6, 0], [0, 0]]));
  dom.flushFrame();
  assert.deepEqual(model.acks(), [1, 2, 3, 4, 5, 6]);
});

test("the view is resized with its container and redrawn", async () => {
  const model = makeModel();
  await start(model);
  model.deliver(...frameMessage(1, [[1], [2]]));
  const { root } = show(model);
  dom.flushFrame();
  dom.width = 400;
  dom.resizeAll();
  dom.flushFrame();
  assert.deepEqual(model.log.filter((e) => e[0] === "resize"), [["resize", 600, 300], ["resize", 400, 200]]);
  const canvas = part(root, "eegkit-body").children[0];
  assert.equal(canvas.width, 400);
  assert.equal(canvas.style.height, "200px");
  assert.deepEqual(model.acks(), []); // came before any output was shown; a redraw acks nothing
});

test("the header shows title and stream; a disabled stage shows its error", async () => {
  const model = makeModel();
  await start(model);
  const { root } = show(model);
  dom.flushFrame();
  assert.equal(part(root, "eegkit-title").textContent, "Recorder");
  assert.equal(part(root, "eegkit-meta").textContent, "2 ch · 250 Hz");
  model.set("title", "Raw EEG");
  model.set("status", { state: "disabled", error: "ValueError: boom" });
  dom.flushFrame();
  assert.equal(part(root, "eegkit-title").textContent, "Raw EEG");
  const banner = part(root, "eegkit-status");
  assert.equal(banner.hidden, false);
  assert.equal(banner.textContent, "Stage disabled: ValueError: boom");
  assert.equal(root.dataset.state, "disabled");
});

test("a plugin view (brain_fft's bundle) is loaded and called", async () => {
  const bundle = readFileSync(new URL("../plugins/brain_fft/ui/bundle.js", WIDGETS), "utf8");
  const bands = ["delta", "theta", "alpha", "beta", "gamma"];
  const model = makeModel(bundle, { info: { ch_names: ["Fz", "Cz"].flatMap((c) => bands.map((b) => `${c}:${b}`)),
    sfreq: 7.8, units: Array(10).fill("V²"), axis: bands, axis_values: [2.5, 6, 10.5, 21.5, 37.5] },
  params: { bands: [1, 4, 8, 13, 30, 45] } });
  await start(model);
  const { root } = show(model);
  model.deliver(...frameMessage(1, [[1, 1, 6, 1, 1], [1, 2, 5, 1, 1]]));
  dom.flushFrame();
  assert.equal(root.className, "eegkit-view eegkit-brain_fft");
  assert.equal(root.dataset.state, "ok");
  assert.equal(part(root, "eegkit-title").textContent, "Brain Waves FFT");
  assert.equal(part(root, "eegkit-note").textContent, "dominant: alpha (8–13 Hz)");
  const ctx = part(root, "eegkit-body").children[0].context;
  const texts = ctx.calls.filter((c) => c[0] === "fillText").map((c) => c[1]);
  assert.ok(texts.includes("alpha") && texts.includes("8–13 Hz") && texts.includes("Cz"), texts);
  assert.deepEqual(model.acks(), [1]);
});

test("a new view source replaces the view (hot reload); a broken one keeps the last good view", async () => {
  const model = makeModel();
  await start(model);
  const { root } = show(model);
  model.deliver(...frameMessage(1, [[1], [2]]));
  dom.flushFrame();
  model.set("_view_js", RECORDER.replace('"recorder"', '"recorder2"'));
  await loaded(model);
  dom.flushFrame();
  assert.equal(root.className, "eegkit-view eegkit-recorder2");
  assert.equal(root.dataset.views, "2");
  assert.deepEqual(model.log.filter((e) => e[0] !== "resize").map((e) => e[0]),
    ["make", "draw", "destroy", "make", "draw"]);

  const error = console.error;
  console.error = () => {};
  try {
    model.set("_view_js", "export default function ( {");
    await loaded(model);
  } finally {
    console.error = error;
  }
  model.deliver(...frameMessage(2, [[3], [4]]));
  dom.flushFrame();
  const banner = part(root, "eegkit-status");
  assert.equal(banner.hidden, false);
  assert.match(banner.textContent, /^view recorder\.js failed to load: /);
  assert.equal(root.dataset.state, "error");
  assert.deepEqual(draws(model).at(-1).slice(0, 2), ["draw", 2]); // the last good view still draws
  assert.deepEqual(model.acks(), [1, 2]);

  model.set("_view_js", RECORDER);
  await loaded(model);
  dom.flushFrame();
  assert.equal(banner.hidden, true);
  assert.equal(root.dataset.state, "ok");
});

test("a view that throws shows the error and the frame is still acked", async () => {
  const model = makeModel(`export default () => ({ name: "bad", draw() { throw new RangeError("no room"); } });`);
  await start(model);
  const { root } = show(model);
  const error = console.error;
  console.error = () => {};
  try {
    model.deliver(...frameMessage(1, [[1], [2]]));
    dom.flushFrame();
  } finally {
    console.error = error;
  }
  assert.equal(part(root, "eegkit-status").textContent, "view error: no room");
  assert.deepEqual(model.acks(), [1]);
});

test("an old-style bundle (a whole anywidget module, plugin API 1.0) still loads and draws, acked once", async () => {
  const bundle = readFileSync(new URL("tests/fixtures/legacy_brain_fft.js", WIDGETS), "utf8");
  const bands = ["delta", "theta", "alpha", "beta", "gamma"];
  const model = makeModel(bundle, { info: { ch_names: ["Fz", "Cz"].flatMap((c) => bands.map((b) => `${c}:${b}`)),
    sfreq: 7.8, units: Array(10).fill("V²"), axis: bands, axis_values: [2.5, 6, 10.5, 21.5, 37.5] },
  params: { bands: [1, 4, 8, 13, 30, 45] } });
  host.initialize({ model });
  model.deliver(...frameMessage(1, [[1, 1, 6, 1, 1], [1, 2, 5, 1, 1]])); // before the bundle is imported
  await loaded(model);
  assert.equal(model.listeners("msg:custom"), 1); // the host's: it hands the bundle whole windows
  const { el } = show(model);
  dom.flushFrame();
  const [shell, legacy] = el.children;
  assert.equal(shell.hidden, true);
  assert.equal(shell.className, "eegkit-host");
  assert.equal(legacy.className, "bfft eegkit-view");
  assert.equal(legacy.dataset.draws, "1");
  assert.equal(legacy.querySelector(".bfft-note").textContent, "dominant: alpha (8–13 Hz)");
  model.deliver(...frameMessage(2, [[1, 1, 1, 6, 1], [1, 1, 1, 5, 1]]));
  dom.flushFrame();
  assert.equal(legacy.querySelector(".bfft-note").textContent, "dominant: beta (13–30 Hz)");
  assert.deepEqual(model.acks(), [1, 2]); // the bundle's acks only, never the host's as well
  assert.equal(model.sent.filter((m) => m.type === "ready").length, 2);

  // a factory `() => ({ initialize, render })` is recognised too
  const factory = makeModel(bundle.replace("export default {", "const widget = {") + "\nexport default () => widget;\n");
  await start(factory);
  const shown = show(factory);
  factory.deliver(...frameMessage(1, [[1, 6, 1, 1, 1], [1, 5, 1, 1, 1]]));
  dom.flushFrame();
  assert.equal(shown.el.children[1].dataset.draws, "1");
  assert.deepEqual(factory.acks(), [1]);
});

test("a module without a view factory is refused with a sentence", async () => {
  const model = makeModel(`export default { name: "nothing" };`);
  const error = console.error;
  console.error = () => {};
  try {
    await start(model);
  } finally {
    console.error = error;
  }
  const { root } = show(model);
  dom.flushFrame();
  assert.match(part(root, "eegkit-status").textContent,
    /failed to load: its default export must be a function \(\{ model, api, el \}\) => \(\{ draw, \.\.\. \}\), got object/);
});

test("cleanup removes every listener", async () => {
  const model = makeModel();
  const cleanup = await start(model);
  const { unmount } = show(model);
  model.deliver(...frameMessage(1, [[1], [2]]));
  dom.flushFrame();
  model.deliver(...frameMessage(2, [[1], [2]]));
  unmount();
  assert.equal(dom.pendingFrames(), 0);
  assert.equal(model.log.at(-1)[0], "destroy");
  cleanup();
  for (const event of ["msg:custom", "change:_view_js", "change:title", "change:info"]) {
    assert.equal(model.listeners(event), 0, event);
  }
});
