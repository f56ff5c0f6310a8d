// A fake anywidget model (after lonboard's src/tests/fake-widget-model.ts): traits in a
// plain object, events on a map, messages to the kernel recorded in `sent`.

export class FakeModel {
  constructor(state = {}) {
    this.state = { ...state };
    this.handlers = new Map(); // event -> Set of callbacks
    this.sent = [];            // contents sent to the kernel, in order
  }

  get(key) {
    return this.state[key];
  }

  set(key, value) {
    this.state[key] = value;
    this.emit(`change:${key}`, value);
  }

  save_changes() {}

  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(fn);
  }

  off(event, fn) {
    this.handlers.get(event)?.delete(fn);
  }

  send(content) {
    this.sent.push(content);
  }

  emit(event, ...args) {
    for (const fn of [...(this.handlers.get(event) ?? [])]) fn(...args);
  }

  listeners(event) {
    return this.handlers.get(event)?.size ?? 0;
  }

  // the kernel side: a custom message with binary buffers, as ipywidgets delivers it
  deliver(content, buffers = []) {
    this.emit("msg:custom", content, buffers);
  }

  acks() {
    return this.sent.filter((m) => m.type === "ack").map((m) => m.seq);
  }
}

// A frame as StreamView sends it: content plus one float32 buffer handed over as a
// DataView at `offset` bytes into a larger buffer (ipywidgets hands out views).
export function frameMessage(seq, rows, offset = 0, extra = {}) {
  const flat = rows.flat(Infinity);
  const bytes = new ArrayBuffer(offset + flat.length * 4);
  const view = new DataView(bytes, offset, flat.length * 4);
  flat.forEach((v, i) => view.setFloat32(i * 4, v, true));
  const shape = [rows.length, ...(Array.isArray(rows[0]) ? shapeOf(rows[0]) : [])];
  return [{ type: "frame", seq, layout: "latest", shape, first_sample: seq, step: 1, ...extra }, [view]];
}

function shapeOf(a) {
  return Array.isArray(a) ? [a.length, ...shapeOf(a[0])] : [];
}
