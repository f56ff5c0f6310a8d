"""Every numba decision lives here: jit options, cache location, the off switch.

``EEGKIT_DISABLE_JIT=1`` makes :func:`jit` return the plain Python function.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

JIT_OPTIONS = {"nogil": True, "cache": True}  # njit is nopython already


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
