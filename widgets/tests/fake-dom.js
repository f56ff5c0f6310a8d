// Just enough of a browser for the view host (protocol.js) in node: elements, a
// canvas whose 2D context records every call, animation frames run by hand, resize
// observers fired by hand. Install before mounting a view.

export class FakeElement {
  constructor(tag) {
    this.tagName = tag.toUpperCase();
    this.children = [];
    this.parentElement = null;
    this.dataset = {};
    this.style = {};
    this.className = "";
    this.textContent = "";
    this.hidden = false;
    this.clientWidth = 0;
    this.width = 300; // canvas defaults
    this.height = 150;
    this.context = null;
  }

  replaceChildren(...kids) {
    this.children = [];
    kids.forEach((k) => this.appendChild(k));
  }

  addEventListener(type, fn) {
    (this.handlers ??= []).push([type, fn]);
  }

  removeEventListener(type, fn) {
    this.handlers = (this.handlers ?? []).filter(([t, f]) => t !== type || f !== fn);
  }

  // dispatch a key press as the browser would to the focused element
  key(key) {
    const e = { key, prevented: false, preventDefault() { this.prevented = true; }, stopPropagation() {} };
    (this.handlers ?? []).filter(([t]) => t === "keydown").forEach(([, f]) => f(e));
    return e.prevented;
  }

  appendChild(child) {
    child.parentElement = this;
    this.children.push(child);
    return child;
  }

  // flat parse, enough for the old-style bundles' templates: every tag becomes a child
  set innerHTML(html) {
    this.children = [];
    for (const m of String(html).matchAll(/<(\w+)([^>]*)>/g)) {
      const e = document.createElement(m[1]);
      e.className = (m[2].match(/class="([^"]*)"/) || [])[1] || "";
      e.hidden = /\shidden\b/.test(m[2]);
      this.appendChild(e);
    }
  }

  // ".class" or "tag", searched depth-first
  querySelector(sel) {
    for (const c of this.children) {
      const hit = sel.startsWith(".") ? c.className.split(" ").includes(sel.slice(1))
        : c.tagName === sel.toUpperCase();
      if (hit) return c;
      const deeper = c.querySelector(sel);
      if (deeper) return deeper;
    }
    return null;
  }

  getContext(kind) {
    if (kind !== "2d") throw new Error(`fake canvas: no ${kind} context`);
    this.context ??= recordingContext();
    return this.context;
  }
}

// A 2D context that records method calls and property sets in `calls`.
export function recordingContext() {
  const calls = [];
  const props = { font: "10px sans-serif", globalAlpha: 1 };
  const special = {
    measureText: (text) => ({ width: String(text).length * 6 }),
    createLinearGradient: () => ({ addColorStop() {} }),
    createImageData: (w, h) => ({ width: w, height: h, data: new Uint8ClampedArray(w * h * 4) }),
  };
  return new Proxy({}, {
    get(_, key) {
      if (key === "calls") return calls;
      if (key in special) return (...args) => { calls.push([key, ...args]); return special[key](...args); };
      if (key in props) return props[key];
      return (...args) => { calls.push([key, ...args]); };
    },
    set(_, key, value) {
      props[key] = value;
      calls.push(["set", key, value]);
      return true;
    },
  });
}

export function installFakeDom({ width = 600 } = {}) {
  const frames = new Map();
  let nextFrame = 1;
  const observers = [];
  const body = new FakeElement("body");
  const dom = {
    body,
    width,
    observers,
    pendingFrames: () => frames.size,
    // run the callbacks of one animation frame (as the browser does before painting)
    flushFrame() {
      const due = [...frames.values()];
      frames.clear();
      due.forEach((fn) => fn(performance.now()));
      return due.length;
    },
    resizeAll() { observers.forEach((o) => o.fire()); },
  };
  globalThis.document = {
    body,
    head: new FakeElement("head"),
    createElement(tag) {
      const e = new FakeElement(tag);
      if (tag === "div") Object.defineProperty(e, "clientWidth", { get: () => dom.width });
      return e;
    },
    getElementById: () => null,
  };
  globalThis.window = globalThis;
  globalThis.getComputedStyle = () => ({ getPropertyValue: () => "" });
  globalThis.requestAnimationFrame = (fn) => { const id = nextFrame++; frames.set(id, fn); return id; };
  globalThis.cancelAnimationFrame = (id) => { frames.delete(id); };
  globalThis.ResizeObserver = class {
    constructor(fn) { this.fn = fn; this.targets = []; observers.push(this); }
    observe(el) { this.targets.push(el); }
    disconnect() { this.targets = []; }
    fire() { if (this.targets.length) this.fn([]); }
  };
  // on screen unless a test says otherwise (dom.setOnScreen); real browsers call back
  // asynchronously after observe(), this one at once
  const seen = [];
  dom.setOnScreen = (el, on) => {
    seen.filter((o) => o.targets.includes(el)).forEach((o) => o.fn([{ target: el, isIntersecting: on }]));
  };
  globalThis.IntersectionObserver = class {
    constructor(fn) { this.fn = fn; this.targets = []; seen.push(this); }
    observe(el) { this.targets.push(el); this.fn([{ target: el, isIntersecting: true }]); }
    disconnect() { this.targets = []; }
  };
  globalThis.MutationObserver = class {
    observe() {}
    disconnect() {}
  };
  return dom;
}
