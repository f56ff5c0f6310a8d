"""Native stages: a shared library built from C, Rust, ... (``library = "name"``).

The library for the running platform is ``bin/<target-triple>/lib<name>.so``
(``.dylib`` on macOS, ``.dll`` on Windows) inside the plugin folder, built by
``eegkit plugins build``. Loading it reads ``eegkit_abi_version()`` before anything
else (see ``eegkit/abi/eegkit_plugin.h``): another major version is rejected, a newer
minor version is loaded with a warning. The stage's code then has the interface of
a Python stage's (:class:`~eegkit.plugin._loader.StageCode`): ``setup`` passes the
validated parameters to the library as doubles and returns the native state as a
handle array; ``process`` is the one compiled kernel of
:mod:`eegkit.plugin._native_kernel`, which calls the library through a function
pointer and fuses with numba stages.

A non-zero return code disables the stage with the library's ``eegkit_last_error``
text. A crash cannot be caught in-process: run untrusted libraries with
``isolation = "process"``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import platform
import shutil
import sys
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np

from .. import _numba
from .._errors import PluginLoadError, StageError
from . import _native_kernel

ABI = (1, 0)  # eegkit/abi/eegkit_plugin.h: EEGKIT_ABI_MAJOR, EEGKIT_ABI_MINOR
HEADER = Path(__file__).resolve().parents[1] / "abi" / "eegkit_plugin.h"
_LOCK = threading.Lock()
_LIBS: dict = {}     # digest -> loaded library
_KERNEL = []         # the compiled kernel (one for every native stage)


def target_triple() -> str:
    """Target triple of the running platform, as Rust names it (``x86_64-unknown-linux-gnu``)."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.platform.startswith("linux"):
        libc = "musl" if "musl" in (platform.libc_ver()[0] or "") else "gnu"
        return f"{arch}-unknown-linux-{libc}"
    if sys.platform == "darwin":
        return f"{arch}-apple-darwin"
    if sys.platform == "win32":
        return f"{arch}-pc-windows-msvc"
    return f"{arch}-unknown-{sys.platform}"


def library_names(library: str) -> tuple:
    """File names a build of ``library`` may have on the running platform."""
    if sys.platform == "darwin":
        return (f"lib{library}.dylib",)
    if sys.platform == "win32":
        return (f"{library}.dll", f"lib{library}.dll")
    return (f"lib{library}.so",)


def library_file(folder: Path, library: str, where: str) -> Path:
    """The build of ``library`` for this platform under ``folder/bin/``.

    Raises
    ------
    PluginLoadError
        Naming the triples found, and how to build.
    """
    triple = target_triple()
    for name in library_names(library):
        path = folder / "bin" / triple / name
        if path.is_file():
            return path
    bins = folder / "bin"
    found = sorted(d.name for d in bins.iterdir() if d.is_dir()) if bins.is_dir() else []
    have = f"bin/ holds builds for: {', '.join(found)}" if found else "bin/ holds no build"
    raise PluginLoadError(f"{where}: no build of library '{library}' for this platform "
                          f"({triple}: expected bin/{triple}/{library_names(library)[0]}); "
                          f"{have}. Build it with: eegkit plugins build {folder.name}")


def abi_version(lib, where: str) -> tuple:
    """``(major, minor)`` from the library's ``eegkit_abi_version()``."""
    try:
        fn = lib.eegkit_abi_version
    except AttributeError:
        raise PluginLoadError(f"{where}: the library exports no eegkit_abi_version(); include "
                              f"eegkit_plugin.h and return EEGKIT_ABI_VERSION") from None
    fn.restype, fn.argtypes = ctypes.c_uint32, []
    version = int(fn())
    return version >> 16, version & 0xFFFF


def check_abi(version: tuple, where: str) -> str | None:
    """Reject another major ABI version; return a warning text for a newer minor one."""
    got, host = f"{version[0]}.{version[1]}", f"{ABI[0]}.{ABI[1]}"
    if version[0] != ABI[0]:
        raise PluginLoadError(f"{where}: the library speaks native ABI {got}, but this eegkit "
                              f"speaks ABI {host}; major versions must match. Rebuild it "
                              f"against this eegkit's eegkit_plugin.h (eegkit plugins build).")
    if version[1] > ABI[1]:
        return (f"{where}: the library was built for native ABI {got}, newer than this "
                f"eegkit's {host}; it is loaded, but newer features may not work. Upgrade eegkit.")
    return None


def load_library(path: Path, where: str):
    """Load a library (a private copy named by its content, so a rebuilt file is loaded
    anew: the dynamic loader would hand back the old one for the same path) and check
    its ABI version. Returns ``(ctypes library, digest)``."""
    from ._manager import PluginApiWarning

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    with _LOCK:
        lib = _LIBS.get(digest)
        if lib is None:
            copy = _numba.cache_root() / "native" / digest / path.name
            if not copy.is_file():
                copy.parent.mkdir(parents=True, exist_ok=True)
                tmp = copy.with_suffix(f".{id(data)}.tmp")
                shutil.copyfile(path, tmp)
                tmp.replace(copy)
            try:
                lib = ctypes.CDLL(str(copy))
            except OSError as exc:
                raise PluginLoadError(f"{where}: cannot load {path}: {exc}") from None
            lib._eegkit_abi = abi_version(lib, where)
            _LIBS[digest] = lib
    warning = check_abi(lib._eegkit_abi, where)
    if warning:
        warnings.warn(warning, PluginApiWarning, stacklevel=4)
    return lib, digest


def load_native_code(manifest, spec):
    """The stage code of a native stage (same interface as a Python stage's).

    Raises
    ------
    PluginLoadError
        No build for this platform, a wrong ABI version or a missing symbol.
    """
    from ._loader import StageCode

    where = f"plugin '{manifest.name}' stage '{spec.type}' (library '{spec.library}')"
    path = library_file(manifest.path, spec.library, where)
    lib, digest = load_library(path, where)
    fns = _symbols(lib, spec.symbol, where)
    kernel = _kernel()
    module = Path(_native_kernel.__file__)
    # the fused chains find a kernel by module name: this one answers to the plugin's
    sys.modules.setdefault(_module_name(manifest.name, module), _native_kernel)
    label = f"stage type '{spec.type}' ({path.name})"
    return StageCode(spec=dataclasses.replace(spec, module=module, process="process"),
                     manifest=manifest, setup=_setup_function(fns, spec, label, lib),
                     process=kernel, digest=digest)


def _module_name(plugin, path):
    from ._loader import module_name

    return module_name(plugin, path)


def _kernel():
    """The compiled ``_native_kernel.process`` (or the plain one with jit off)."""
    if _numba.jit_disabled():
        return _native_kernel.process
    with _LOCK:
        if not _KERNEL:
            with _numba.cache_dir(_numba.cache_root() / "numba" / "_native"):
                _KERNEL.append(_numba.jit(_native_kernel.process))
        return _KERNEL[0]


def _symbols(lib, prefix: str, where: str) -> dict:
    """The stage's entry points as ctypes functions (``process_f32`` may be None)."""
    dbl, i64, vp = ctypes.c_double, ctypes.c_int64, ctypes.c_void_p
    signatures = {
        "setup": (ctypes.c_int32, [ctypes.POINTER(dbl), i64, dbl, i64, ctypes.POINTER(vp)]),
        "process_f64": (ctypes.c_int32, [vp, vp, i64, i64]),
        "process_f32": (ctypes.c_int32, [vp, vp, i64, i64]),
        "free": (None, [vp]),
    }
    fns = {}
    for name, (restype, argtypes) in signatures.items():
        try:
            fn = getattr(lib, f"{prefix}_{name}")
        except AttributeError:
            if name == "process_f32":
                fns[name] = None
                continue
            raise PluginLoadError(f"{where}: the library does not export {prefix}_{name} "
                                  f"(see eegkit_plugin.h: a stage '<plugin>.{prefix}' exports "
                                  f"{prefix}_setup, {prefix}_process_f64 and {prefix}_free)") from None
        fn.restype, fn.argtypes = restype, argtypes
        fns[name] = fn
    try:
        last = lib.eegkit_last_error
        last.restype, last.argtypes = ctypes.c_char_p, [vp]
        fns["last_error"] = last
    except AttributeError:
        fns["last_error"] = None
    return fns


def flatten_params(specs: dict, params: dict) -> np.ndarray:
    """Validated parameters as the doubles the ABI hands to ``setup``, in manifest order:
    a number is one double, a list its length then its items, a str its index in
    ``choices`` (-1 without choices)."""
    out = []
    for name, spec in specs.items():
        value = params[name]
        items = value if isinstance(value, (list, tuple)) else None
        if items is not None:
            out.append(float(len(items)))
        for v in (items if items is not None else [value]):
            if isinstance(v, str):
                out.append(float(spec.choices.index(v)) if spec.choices and v in spec.choices
                           else -1.0)
            else:
                out.append(float(v))
    return np.array(out, dtype=np.float64)


def _address(fn) -> int:
    """Address of a ctypes function (0 for None)."""
    if fn is None:
        return 0
    return ctypes.cast(fn, ctypes.c_void_p).value or 0


def _setup_function(fns, spec, label, lib):
    """The stage's ``setup(info, **params)``: the library's setup, then a handle array."""
    free = fns["free"]

    def setup(info, **params):
        values = flatten_params(spec.params, params)
        state = ctypes.c_void_p()
        ptr = values.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        rc = fns["setup"](ptr, values.size, float(info.sfreq), int(info.n_channels),
                          ctypes.byref(state))
        if rc != 0:
            text = _native_kernel.error_text(_address(fns["last_error"]), 0)
            raise StageError(f"{label}: {spec.symbol}_setup returned {rc}"
                             + (f": {text}" if text else " (the library gave no error text)"))
        if not state.value:
            raise StageError(f"{label}: {spec.symbol}_setup returned 0 but no state")
        dtype = np.dtype(info.dtype)
        fn = fns["process_f64"] if dtype == np.float64 else fns["process_f32"]
        if fn is None:
            free(state)
            raise StageError(f"{label}: the stream is {dtype} but the library exports no "
                             f"{spec.symbol}_process_f32; export it, or use float64")
        handle = np.zeros(4, dtype=np.uint64)
        handle[:3] = (_address(fn), state.value, _address(fns["last_error"]))
        handle[3] = handle.ctypes.data
        handle.flags.writeable = False  # nothing may copy another state's pointer into it
        _native_kernel.LABELS[state.value] = label
        weakref.finalize(handle, _free, free, state.value, lib)
        return (handle,)

    return setup


def _free(free, state, lib):
    """Free a native state once its handle is gone (``lib`` kept loaded until then)."""
    _native_kernel.LABELS.pop(state, None)
    free(state)
