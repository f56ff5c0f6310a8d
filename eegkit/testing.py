"""Helpers for testing plugins: the chunk test, and loading a stage module as the host does.

Every stateful stage should pass the chunk test: the whole-array result equals the
result of the same data pushed in chunks of 1, 7, 32 and irregular sizes
(:data:`CHUNK_SIZES`), and both equal a scipy/MNE reference.

Plugins for a test are written inline with :class:`TemporaryPlugin` (or the
``tmp_plugin`` pytest fixture: ``from eegkit.testing import tmp_plugin`` in a
``conftest.py``): a manifest and the stage source as strings, registered on one
:class:`~eegkit.plugin.PluginManager`; no plugin folder or environment variable of
the user's changes.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import _numba
from .plugin._manifest import tomllib
from .plugin._toml import toml_document

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
    (the block itself for in-place kernels, else a copy of the returned array, which
    a kernel may write into a buffer of its state again on the next call)."""
    out = []
    for block in chunks(x, sizes):
        result = kernel(block, *state)
        out.append(block if result is None else result.copy())
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


class TemporaryPlugin:
    """A plugin defined from strings, for tests and examples.

    The files are written to a private temporary folder (numba compiles from files);
    :meth:`register` makes the plugin visible to one manager only, searched before
    its other folders. Use it as a context manager, or call :meth:`close`.

    Parameters
    ----------
    manifest : dict or str
        The ``plugin.toml`` content, as TOML text or as the dict it parses to.
        In a dict, ``[plugin] version`` and ``api`` default to ``"0.1.0"`` and the
        host's plugin API, and a stage without ``module`` uses ``"stage.py"``.
    source : str, optional
        The text of ``stage.py``.
    files : dict, optional
        More files, ``{relative path: text}`` (helpers, ``ui/bundle.js``).

    Examples
    --------
    >>> with TemporaryPlugin({"plugin": {"name": "gain"},
    ...                       "stage": [{"type": "gain.double"}]},
    ...                      "def process(x):\\n    x *= 2.0\\n") as plugin:
    ...     manager = plugin.register()
    ...     "gain.double" in manager.stage_types()
    True
    """

    def __init__(self, manifest, source: str | None = None, files: dict | None = None):
        if isinstance(manifest, str):
            text = manifest
            name = tomllib.loads(text).get("plugin", {}).get("name")
        else:
            manifest = _with_defaults(manifest, source is not None)
            text = toml_document(manifest)
            name = manifest["plugin"].get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"TemporaryPlugin: the manifest needs [plugin] name, got {name!r}")
        self.name = name
        self.root = Path(tempfile.mkdtemp(prefix="eegkit-plugin-"))
        self.path = self.root / name
        contents = {"plugin.toml": text, **({"stage.py": source} if source is not None else {}),
                    **(files or {})}
        for rel, body in contents.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body, encoding="utf-8")
        self._managers = []

    def register(self, manager=None):
        """Make the plugin visible to ``manager`` (default: a new manager that also
        sees the bundled plugins, and nothing from the environment); return it."""
        from .plugin import PluginManager, package_dir

        if manager is None:
            manager = PluginManager(paths=[package_dir("plugins")], entry_points=False)
        manager.add_path(self.root, origin="temporary")
        self._managers.append(manager)
        return manager

    def close(self) -> None:
        """Unregister from every manager and delete the files."""
        for manager in self._managers:
            manager.remove_path(self.root)
        self._managers = []
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _with_defaults(manifest: dict, has_source: bool) -> dict:
    """A copy of a manifest dict with the defaults TemporaryPlugin documents."""
    from .plugin import HOST_API

    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in manifest.items()}
    plugin = out.setdefault("plugin", {})
    plugin.setdefault("version", "0.1.0")
    plugin.setdefault("api", f"{HOST_API[0]}.{HOST_API[1]}")
    if has_source:
        out["stage"] = [{"module": "stage.py", **st} for st in out.get("stage", [])]
    return out


try:
    import pytest
except ImportError:  # eegkit.testing works without pytest; only the fixture needs it
    pytest = None

if pytest is not None:
    @pytest.fixture
    def tmp_plugin():
        """Factory fixture: ``tmp_plugin(manifest, source=None, files=None, manager=None)``
        returns the manager the new :class:`TemporaryPlugin` is registered on; every
        plugin made is closed when the test ends."""
        made = []

        def make(manifest, source=None, files=None, manager=None):
            plugin = TemporaryPlugin(manifest, source, files)
            made.append(plugin)
            return plugin.register(manager)

        yield make
        for plugin in made:
            plugin.close()


__all__ = ["CHUNK_SIZES", "chunks", "run_chunks", "stream", "pull", "load_module",
           "compile_kernel", "TemporaryPlugin", "tmp_plugin"]
