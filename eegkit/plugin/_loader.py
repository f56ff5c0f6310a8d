"""Import plugin modules under stable names and compile their kernels."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from .. import _numba
from .._errors import PluginLoadError
from .._paths import is_skipped
from ._manifest import Manifest, StageSpec

_LOCK = threading.RLock()
# module name -> (content digest, module); numba's cache re-imports a module by name,
# so each plugin file keeps one stable name for the life of the process.
_MODULES: dict = {}
# (module name, digest, function) -> (module, compiled, parallel): one dispatcher per
# kernel per process, shared by every stage and pipeline using it, so a new Pipeline
# (or a second stage type with the same kernel) neither recompiles nor reloads it
_KERNELS: dict = {}


@runtime_checkable
class Code(Protocol):
    """What the runtime may use on the code of a stage type.

    Satisfied by :class:`StageCode` (in this process) and by
    ``eegkit.runtime._isolate.IsolatedCode`` (in a child process); the runtime uses
    nothing else, so a new kind of code needs exactly these.
    """

    spec: StageSpec
    manifest: Manifest
    digest: str                        # content hash of the plugin's code
    setup: Callable | None             # plain Python; None: the stage has no setup
    process: Callable                  # the kernel, ``process(x, *args)``
    parallel: Callable | None          # a multi-threaded build of ``process``, or None
    isolation: str                     # "none" | "process"
    isolated: bool                     # True: setup, warm-up and state live elsewhere
    in_place: bool | None              # isolated code: what its warm-up found; else None

    def get_state(self):
        """``(current, initial, names)`` of state held by the code; None when the Stage holds it."""

    def set_state(self, items: dict) -> None:
        """Copy ``{position: array}`` into state held by the code."""

    def close(self) -> None:
        """Free what the code holds (a child process); idempotent."""


@dataclass(frozen=True)
class StageCode:
    """The functions of one stage type: ``setup`` (plain Python, may be None) and
    ``process`` (compiled, or plain when jit is off), plus where they came from.
    Implements :class:`Code`; its state lives in the Stage."""

    spec: StageSpec
    manifest: Manifest
    setup: object
    process: object
    digest: str
    parallel: object = None  # a multi-threaded build, for kernels that loop with prange
    isolation: ClassVar[str] = "none"
    isolated: ClassVar[bool] = False
    in_place: ClassVar[bool | None] = None

    def get_state(self):
        """None: in-process state is the Stage's own (``stage.state``)."""

    def set_state(self, items: dict) -> None:
        """Refused: in-process state is the Stage's own (``stage.state``)."""
        raise TypeError("in-process stage code holds no state; set stage.state instead")

    def close(self) -> None:
        """Nothing to free."""


def module_name(plugin: str, path: Path) -> str:
    """Stable ``sys.modules`` name of a plugin file."""
    rel = path.resolve().relative_to(path.resolve().parent).with_suffix("")
    return f"eegkit_plugin_{plugin}__{'__'.join(rel.parts)}"


def plugin_sources(manifest: Manifest) -> dict:
    """Every ``.py`` file of a plugin outside ``tests/``: ``{relative posix path: bytes}``."""
    root = manifest.path
    files = {}
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if is_skipped(rel.parts[:-1]) or not p.is_file():
            continue
        files[rel.as_posix()] = p.read_bytes()
    return files


def sources_digest(files: dict) -> str:
    """Content hash of a plugin's code files (path independent)."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{len(files[rel])}\0".encode())
        h.update(files[rel])
    return h.hexdigest()[:16]


def plugin_digest(manifest: Manifest) -> str:
    """Content hash of all of a plugin's code: a change to any helper file counts."""
    return sources_digest(plugin_sources(manifest))


def load_module(manifest: Manifest, path: Path, reload: bool = False):
    """Import ``path`` as the plugin's module; reuse it while the plugin's code is unchanged.

    The module is executed from the very bytes that were hashed, and numba caches
    its kernels in a folder named by that hash, so machine code cached on disk can
    never belong to another version of the code (numba itself keys its cache on the
    file's mtime and size, and misses same-size edits and changed helper files).
    """
    name = module_name(manifest.name, path)
    with _LOCK:
        try:
            files = plugin_sources(manifest)
            rel = path.resolve().relative_to(manifest.path.resolve()).as_posix()
            source = files[rel] if rel in files else path.read_bytes()
        except (OSError, ValueError) as exc:
            raise PluginLoadError(f"plugin '{manifest.name}': cannot read {path}: {exc}") from None
        files[rel] = source
        digest = sources_digest(files)
        cached = _MODULES.get(name)
        if cached and cached[0] == digest and not reload:
            return cached[1], digest
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        old = sys.modules.get(name)
        sys.modules[name] = module
        try:
            code = compile(source, str(path), "exec", dont_inherit=True)
            # numba files the cache under a hash of the file's folder: key it by content
            # instead, so a copy of the plugin elsewhere reuses the machine code
            _numba.key_by_content(str(path), name,
                                  cache_dir(manifest, digest).joinpath(*rel.split("/")[:-1]),
                                  hashlib.sha256(source).hexdigest()[:16])
            with _numba.cache_dir(cache_dir(manifest, digest)):
                exec(code, module.__dict__)
        except BaseException as exc:
            if old is not None:
                sys.modules[name] = old
            else:
                sys.modules.pop(name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise PluginLoadError(f"plugin '{manifest.name}': importing {path} failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
        _MODULES[name] = (digest, module)
        return module, digest


def cache_dir(manifest: Manifest, digest: str | None = None) -> Path:
    """numba cache folder of one plugin (kept out of the plugin folder, which may be
    read-only); one sub-folder per version of the plugin's code (``digest``).

    Named by plugin name and content only: copies of a plugin in other folders share
    the machine code of identical code (the module name, which numba's cache
    re-imports by, depends on the plugin name and file name only, too).
    """
    root = _numba.cache_root() / "numba" / manifest.name
    return root if digest is None else root / digest


def load_stage_code(manifest: Manifest, spec: StageSpec, reload: bool = False) -> StageCode:
    """Import a stage's module and wrap its ``process`` with numba (a library or wasm
    stage: load it, see ``_native`` and ``_wasm``).

    Raises
    ------
    PluginLoadError
        Import failed, ``process`` is missing or not a function.
    """
    if spec.kind == "native":
        from ._native import load_native_code

        return load_native_code(manifest, spec)
    if spec.kind == "wasm":
        from ._wasm import load_wasm_code

        return load_wasm_code(manifest, spec)
    module, digest = load_module(manifest, spec.module, reload=reload)
    where = f"plugin '{manifest.name}' stage '{spec.type}' ({spec.module.name})"
    process = getattr(module, spec.process, None)
    if process is None or not callable(process):
        raise PluginLoadError(f"{where}: no function '{spec.process}' (the stage's process "
                              f"kernel) in the module")
    setup = getattr(module, spec.setup, None)
    if setup is not None and not callable(setup):
        raise PluginLoadError(f"{where}: '{spec.setup}' must be a function")
    compiled, parallel = _kernels(module, digest, spec.process, process, manifest, where)
    return StageCode(spec=spec, manifest=manifest, setup=setup, process=compiled, digest=digest,
                     parallel=parallel)


def _kernels(module, digest, name, process, manifest, where) -> tuple:
    """``(compiled, parallel)`` dispatchers of one kernel, made once per module version."""
    key = (module.__name__, digest, name, _numba.jit_disabled())
    with _LOCK:
        cached = _KERNELS.get(key)
        if cached is not None and cached[0] is module:
            return cached[1:]
        if _numba.is_compiled(process):
            process = process.py_func  # the host decides jit options
        try:
            with _numba.cache_dir(cache_dir(manifest, digest)):  # CACHE_DIR is global
                compiled = _numba.jit(process)
                parallel = (_numba.jit(process, parallel=True)
                            if _numba.uses_prange(process) and _numba.is_compiled(compiled)
                            else None)
        except Exception as exc:
            raise PluginLoadError(f"{where}: numba rejected '{name}': {exc}") from exc
        _KERNELS[key] = (module, compiled, parallel)
        return compiled, parallel
