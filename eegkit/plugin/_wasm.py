"""WebAssembly stages (``wasm = "kernel.wasm"``): the native ABI over linear memory, sandboxed.

The module is run by wasmtime (``pip install 'eegkit[wasm]'``) and exports what a
native library does (see ``eegkit/abi/eegkit_plugin.h``) plus its ``memory`` and
``eegkit_alloc``. The sandbox:

- no host imports at all: a module that imports anything is rejected at load;
- a fuel budget per call (``fuel`` per channel-sample of the chunk, from the
  manifest, plus a fixed allowance): a kernel that loops forever runs out of fuel,
  traps, and its stage is disabled while the rest of the pipeline goes on;
- traps (out-of-bounds access, ``unreachable``, division by zero) disable the stage;
- linear memory is limited to :data:`MEMORY_LIMIT` bytes per stage.

Samples are copied into the module's memory through a NumPy view of it (no
per-sample Python work), processed in place there, and copied back. Each stage
instance has its own store, so stages never share memory. ``.wat`` text modules are
accepted too (handy for tests and small kernels).
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import threading
import warnings
import weakref

import numpy as np

from .._errors import PluginLoadError, StageError
from .._optional import require
from ._native import check_abi, flatten_params

FUEL_PER_SAMPLE = 10_000    # instructions per channel-sample of a chunk (manifest: fuel)
FUEL_BASE = 1_000_000       # per call, on top
SETUP_FUEL = 100_000_000
MEMORY_LIMIT = 256 << 20    # bytes of linear memory per stage
MIN_SAMPLES = 256           # initial sample buffer, per channel
_LOCK = threading.Lock()
_MODULES: dict = {}         # digest -> (engine, module)
_INSTANCES: dict = {}       # key in a handle -> _Instance
# wasmtime's objects must go before wasmtime's own module teardown at exit
atexit.register(_INSTANCES.clear)
atexit.register(_MODULES.clear)


def load_wasm_code(manifest, spec):
    """The stage code of a wasm stage (same interface as a Python stage's).

    Raises
    ------
    MissingExtraError
        wasmtime is not installed.
    PluginLoadError
        No module file, invalid module, host imports, missing exports, wrong ABI version.
    """
    from ._loader import StageCode
    from ._manager import PluginApiWarning

    wasmtime = require("wasmtime", "wasm", "WebAssembly stages")
    where = f"plugin '{manifest.name}' stage '{spec.type}' ({spec.wasm.name})"
    if not spec.wasm.is_file():
        raise PluginLoadError(f"{where}: {spec.wasm.name} does not exist; build it with: "
                              f"eegkit plugins build {manifest.name}")
    data = spec.wasm.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    with _LOCK:
        cached = _MODULES.get(digest)
        if cached is None:
            cached = _MODULES[digest] = _compile(wasmtime, data, spec.wasm.suffix, where)
    engine, module = cached
    imports = [f"{i.module}.{i.name}" for i in module.imports]
    if imports:
        raise PluginLoadError(f"{where}: the module imports {', '.join(imports)}; a wasm stage "
                              f"may import nothing (it only gets the eegkit ABI)")
    names = {e.name for e in module.exports}
    prefix = spec.symbol
    needed = ["memory", "eegkit_abi_version", "eegkit_alloc", f"{prefix}_setup",
              f"{prefix}_process_f64", f"{prefix}_free"]
    missing = [n for n in needed if n not in names]
    if missing:
        raise PluginLoadError(f"{where}: the module does not export {', '.join(missing)} (see "
                              f"eegkit_plugin.h)")
    probe = _Instance(wasmtime, engine, module, spec, where)
    version = probe.call("eegkit_abi_version", SETUP_FUEL) & 0xFFFFFFFF
    warning = check_abi((version >> 16, version & 0xFFFF), where)
    if warning:
        warnings.warn(warning, PluginApiWarning, stacklevel=4)
    fuel = spec.fuel or FUEL_PER_SAMPLE

    def setup(info, **params):
        instance = _Instance(wasmtime, engine, module, spec, where, fuel)
        instance.setup(flatten_params(spec.params, params), info)
        handle = np.zeros(2, dtype=np.uint64)
        handle[0] = id(instance)
        handle[1] = handle.ctypes.data  # a copy (the host's warm-up) is told apart: see process
        handle.flags.writeable = False
        _INSTANCES[id(instance)] = instance
        weakref.finalize(handle, _INSTANCES.pop, id(instance), None)
        return (handle,)

    return StageCode(spec=spec, manifest=manifest, setup=setup, process=process, digest=digest)


def process(x, handle):
    """Run the module's ``process`` on ``x`` in place (nothing on a copy of the handle:
    the host warms kernels up on copies of their state, which a module cannot honour)."""
    if handle[1] != handle.ctypes.data:
        return
    _INSTANCES[int(handle[0])].run(x)


def _compile(wasmtime, data, suffix, where):
    config = wasmtime.Config()
    config.consume_fuel = True
    engine = wasmtime.Engine(config)
    try:
        source = data.decode("utf-8") if suffix == ".wat" else data
        return engine, wasmtime.Module(engine, source)
    except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
        raise PluginLoadError(f"{where}: not a valid WebAssembly module: {exc}") from None


class _Instance:
    """One stage's store, instance and sample buffer."""

    def __init__(self, wasmtime, engine, module, spec, where, fuel=FUEL_PER_SAMPLE):
        self.wasmtime, self.spec, self.where, self.fuel = wasmtime, spec, where, fuel
        self.store = wasmtime.Store(engine)
        self.store.set_limits(memory_size=MEMORY_LIMIT)
        try:
            self.store.set_fuel(SETUP_FUEL)
            instance = wasmtime.Instance(self.store, module, [])
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise StageError(f"{where}: instantiating the module failed: {exc}") from None
        self.exports = instance.exports(self.store)
        self.memory = self.exports["memory"]
        self.state = 0
        self.buffer, self.capacity = 0, 0
        self.view = None
        self.fn = None

    def call(self, name, fuel, *args):
        """Call an export with a fuel budget; a trap becomes a StageError."""
        self.store.set_fuel(fuel)
        try:
            return self.exports[name](self.store, *args)
        except (self.wasmtime.Trap, self.wasmtime.WasmtimeError) as exc:
            # wasmtime puts the backtrace first and the cause ("wasm trap: ...") last
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            text = lines[-1] if lines else type(exc).__name__
            if "fuel" in text:
                text += f" (budget {fuel} instructions: an endless loop, or raise 'fuel' in the manifest)"
            raise StageError(f"{self.where}: {name} trapped: {text}") from None

    def bytes(self, offset, n):
        """A uint8 view of ``n`` bytes of linear memory at ``offset`` (fresh after growth)."""
        length = self.memory.data_len(self.store)
        base = ctypes.addressof(self.memory.data_ptr(self.store).contents)
        if self.view is None or self.view[0] != (base, length):
            raw = (ctypes.c_ubyte * length).from_address(base)
            self.view = ((base, length), np.frombuffer(raw, dtype=np.uint8))
        if offset <= 0 or offset + n > length:
            raise StageError(f"{self.where}: eegkit_alloc returned {offset}, outside the "
                             f"module's {length} bytes of memory (or 0: out of memory)")
        return self.view[1][offset:offset + n]

    def alloc(self, n):
        ptr = self.call("eegkit_alloc", SETUP_FUEL, int(n))
        self.bytes(ptr, n)  # checks it
        return ptr

    def setup(self, values, info):
        prefix = self.spec.symbol
        params = self.alloc(max(values.nbytes, 8))
        self.bytes(params, values.nbytes)[:] = values.view(np.uint8)
        out = self.alloc(8)
        rc = self.call(f"{prefix}_setup", SETUP_FUEL, params, int(values.size),
                       float(info.sfreq), int(info.n_channels), out)
        if rc != 0:
            raise StageError(f"{self.where}: {prefix}_setup returned {rc}{self.error_text(0)}")
        self.state = int(self.bytes(out, 4).view(np.uint32)[0])
        dtype = np.dtype(info.dtype)
        name = f"{prefix}_process_{'f64' if dtype == np.float64 else 'f32'}"
        if name not in self.exports:
            raise StageError(f"{self.where}: the stream is {dtype} but the module exports no "
                             f"{name}")
        self.fn = name
        self.grow(info.n_channels * MIN_SAMPLES * dtype.itemsize)

    def grow(self, nbytes):
        if nbytes > self.capacity:  # the old buffer is not returned: eegkit_alloc has no free
            self.buffer, self.capacity = self.alloc(nbytes), nbytes

    def run(self, x):
        n = x.nbytes
        self.grow(n)
        dst = self.bytes(self.buffer, n).view(x.dtype).reshape(x.shape)
        dst[...] = x
        budget = FUEL_BASE + self.fuel * x.size
        rc = self.call(self.fn, budget, self.state, self.buffer, x.shape[0], x.shape[1])
        if rc != 0:
            raise StageError(f"{self.where}: process returned {rc}{self.error_text(self.state)}")
        x[...] = self.bytes(self.buffer, n).view(x.dtype).reshape(x.shape)  # memory may have moved

    def error_text(self, state) -> str:
        """``": <text>"`` from the module's eegkit_last_error, or a note that it has none."""
        if "eegkit_last_error" not in self.exports:
            return " (the module gave no error text)"
        try:
            ptr = self.call("eegkit_last_error", SETUP_FUEL, state)
            raw = bytes(self.bytes(ptr, min(500, self.memory.data_len(self.store) - ptr)))
        except StageError:
            return " (its error text could not be read)"
        text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        return f": {text}" if text else " (the library gave no error text)"

