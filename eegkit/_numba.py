"""Every numba decision lives here: jit options, cache location, the off switch.

``EEGKIT_DISABLE_JIT=1`` makes :func:`jit` return the plain Python function.

Plugin files are cached by content, not by path: numba's own locator files its cache
under a hash of the source file's folder, so a plugin copied elsewhere (a test's
temporary folder, a cluster worker's scratch copy) would compile again. Files
registered with :func:`key_by_content` get a locator that uses the folder eegkit
chose (named by the code's digest) and the digest as the freshness stamp.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

JIT_OPTIONS = {"nogil": True, "cache": True}  # njit is nopython already
# (source file name (a code object's co_filename), module name) -> (cache folder, stamp)
_BY_CONTENT: dict = {}
_LOCATOR_LOCK = threading.Lock()
_LOCATOR = None


def jit_disabled() -> bool:
    """True when ``EEGKIT_DISABLE_JIT`` is set to a true value."""
    return os.environ.get("EEGKIT_DISABLE_JIT", "").strip().lower() in ("1", "true", "yes", "on")


def cache_root() -> Path:
    """Root folder of eegkit's numba caches (``EEGKIT_CACHE_DIR`` or ~/.cache/eegkit)."""
    root = os.environ.get("EEGKIT_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "eegkit"


@contextlib.contextmanager
def cache_dir(path: Path | None):
    """Point numba's on-disk cache at ``path`` while dispatchers are created."""
    if path is None or jit_disabled():
        yield
        return
    import numba

    old = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = str(path)
    try:
        yield
    finally:
        numba.config.CACHE_DIR = old


def jit(fn, cache: bool = True, parallel: bool = False, fastmath=False):
    """Compile ``fn`` lazily with eegkit's options, or return it as is when jit is off.

    Parameters
    ----------
    fn : callable
        A function written in the numba-supported subset of Python/NumPy.
    cache : bool
        Cache the machine code on disk (keyed on the function's source file).
    parallel : bool
        Run ``prange`` loops on several threads (numba's ``parallel=True``).
    fastmath : bool or set of str
        numba's ``fastmath`` flags (eegkit's own helpers only; plugin kernels keep
        exact IEEE arithmetic so they match scipy).

    Returns
    -------
    callable
        A numba dispatcher, or ``fn`` itself when ``EEGKIT_DISABLE_JIT`` is set.
    """
    if jit_disabled():
        return fn
    import numba

    options = {**JIT_OPTIONS, "cache": cache}
    if parallel:
        options["parallel"] = True
    if fastmath:
        options["fastmath"] = fastmath
    return numba.njit(**options)(fn)


def uses_prange(fn) -> bool:
    """True when ``fn`` loops with ``prange`` (it then gets a parallel build too)."""
    code = getattr(fn, "__code__", None)
    return code is not None and "prange" in code.co_names


def prange_object():
    """``numba.prange`` when jit is on, else ``range`` (exported as ``eegkit.prange``)."""
    if jit_disabled():
        return range
    import numba

    return numba.prange


def is_compiled(fn) -> bool:
    """True when ``fn`` is a numba dispatcher."""
    return hasattr(fn, "py_func") and hasattr(fn, "signatures")


def cache_counts(fn) -> tuple:
    """``(hits, misses)`` of numba's on-disk cache for a compiled ``fn``; ``(0, 0)`` when plain."""
    if not is_compiled(fn):
        return 0, 0
    return sum(fn.stats.cache_hits.values()), sum(fn.stats.cache_misses.values())


_NATIVE_CALL = []


def native_call():
    """``call(fn, state, data, n_channels, n_samples) -> int32``: call the C function at
    address ``fn`` (``int32_t f(void *, void *, int64_t, int64_t)``).

    Compiled code calls it directly (an LLVM call through the pointer, no Python and
    nothing that pins an address into the machine code, so the caller stays cacheable);
    with jit off it is a ctypes call.
    """
    if not _NATIVE_CALL:
        _NATIVE_CALL.append(_native_call_py if jit_disabled() else _native_call_intrinsic())
    return _NATIVE_CALL[0]


def _native_call_py(fn, state, data, n_channels, n_samples):
    """``native_call`` through ctypes."""
    import ctypes

    proto = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_int64, ctypes.c_int64)
    return proto(int(fn))(int(state), int(data), int(n_channels), int(n_samples))


def _native_call_intrinsic():
    """``native_call`` as a numba intrinsic."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def call(typingctx, fn, state, data, n_channels, n_samples):
        sig = types.int32(types.uint64, types.uint64, types.uint64, types.int64, types.int64)

        def codegen(context, builder, signature, args):
            i64 = ir.IntType(64)
            fnty = ir.FunctionType(ir.IntType(32), [i64, i64, i64, i64])
            ptr = builder.inttoptr(args[0], fnty.as_pointer())
            return builder.call(ptr, list(args[1:]))

        return sig, codegen

    return call


def key_by_content(py_file: str, module: str, folder: Path, stamp: str) -> None:
    """Cache the kernels that module ``module`` defines in ``py_file`` in ``folder``,
    fresh while ``stamp`` matches.

    ``stamp`` is the hash of the code that was executed (not re-read from disk), so
    the entry stays valid when a temporary copy of the file is deleted. The module name
    is part of the key: a cache entry re-imports the module it was made under, so the
    same file loaded under another name (``eegkit.testing``) must not share entries.
    """
    if jit_disabled() or not _install_locator():
        return
    _BY_CONTENT[(str(py_file), module)] = (str(folder), stamp)


def _install_locator() -> bool:
    """Put eegkit's content locator first in numba's list (once); False if numba changed."""
    global _LOCATOR
    with _LOCATOR_LOCK:
        if _LOCATOR is not None:
            return True
        try:
            from numba.core import caching
            impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
            base = caching._CacheLocator
        except (ImportError, AttributeError):
            return False  # an unknown numba: its own (path-keyed) locators still work

        class ContentLocator(base):
            """Locator for registered plugin files: eegkit's folder, the content stamp."""

            def __init__(self, py_func, py_file, folder, stamp):
                self._py_file, self._lineno = py_file, py_func.__code__.co_firstlineno
                self._folder, self._stamp = folder, stamp

            def get_cache_path(self):
                return self._folder

            def get_source_stamp(self):
                return self._stamp

            def get_disambiguator(self):
                return str(self._lineno)

            @classmethod
            def from_function(cls, py_func, py_file):
                entry = _BY_CONTENT.get((py_file, py_func.__module__))
                if entry is None:
                    return None
                self = cls(py_func, py_file, *entry)
                try:
                    self.ensure_cache_path()
                except OSError:
                    return None  # read-only cache: numba's other locators decide
                return self

        impl._locator_classes = [ContentLocator, *impl._locator_classes]
        _LOCATOR = ContentLocator
        return True
