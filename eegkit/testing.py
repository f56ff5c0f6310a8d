"""Helpers for testing plugins: the chunk test, and loading a stage module as the host does.

Every stateful stage should pass the chunk test: the whole-array result equals the
result of the same data pushed in chunks of 1, 7, 32 and irregular sizes
(:data:`CHUNK_SIZES`), and both equal a scipy/MNE reference.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from . import _numba

CHUNK_SIZES = (1, 7, 32, (5, 1, 64, 13, 2, 100, 31, 3))


def chunks(x, sizes):
    """Yield C-contiguous column blocks of ``x``; ``sizes`` is an int or a cycled list."""
    sizes = [sizes] if isinstance(sizes, int) else list(sizes)
    start, i = 0, 0
    while start < x.shape[1]:
        block = np.ascontiguousarray(x[:, start:start + sizes[i % len(sizes)]])
        yield block
        start += block.shape[1]
        i += 1


def run_chunks(kernel, x, state, sizes) -> np.ndarray:
    """Call ``kernel(block, *state)`` on chunks of ``x``; concatenate what it produced
    (the block itself for in-place kernels, else the returned array)."""
    out = []
    for block in chunks(x, sizes):
        result = kernel(block, *state)
        out.append(block if result is None else result)
    return np.concatenate(out, axis=1)


def stream(pipeline, info, x, sizes, outputs=None) -> dict:
    """``pipeline.open(info)`` then ``push`` in chunks; each output concatenated."""
    pipeline.open(info)
    parts = {}
    for block in chunks(x, sizes):
        for id, out in pipeline.push(block, outputs=outputs).items():
            parts.setdefault(id, []).append(out)
    return {id: np.concatenate(p, axis=1) for id, p in parts.items()}


def pull(source, n: int, timeout: float = 5.0, poll: float = 0.005):
    """Read a live source until ``n`` samples came; return ``(data, timestamps)``.

    Raises AssertionError when fewer arrived within ``timeout`` seconds.
    """
    import time

    parts, stamps, got = [], [], 0
    deadline = time.monotonic() + timeout
    while got < n:
        assert time.monotonic() < deadline, f"only {got} of {n} samples within {timeout} s"
        block = source.read(n - got)
        if block.shape[1]:
            parts.append(block)
            stamps.append(source.last_timestamps)
            got += block.shape[1]
        else:
            time.sleep(poll)
    return np.concatenate(parts, axis=1), np.concatenate(stamps)


def load_module(path, name: str):
    """Import a plugin file under a stable module name (numba's cache re-imports by name)."""
    spec = importlib.util.spec_from_file_location(name, Path(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def compile_kernel(path, function: str, name: str, cache_dir=None):
    """Load ``path`` (see :func:`load_module`) and compile ``function`` as the host does.

    Returns ``(module, kernel)``; ``kernel`` is plain Python when ``EEGKIT_DISABLE_JIT`` is set.
    The machine code is cached per module ``name`` (under ``cache_dir``, default eegkit's
    cache folder): numba's cache entries remember the module name they were made under.
    """
    root = Path(cache_dir) if cache_dir else _numba.cache_root() / "testing"
    with _numba.cache_dir(root / name):
        module = load_module(path, name)
        kernel = _numba.jit(getattr(module, function))
    return module, kernel


__all__ = ["CHUNK_SIZES", "chunks", "run_chunks", "stream", "pull", "load_module",
           "compile_kernel"]
