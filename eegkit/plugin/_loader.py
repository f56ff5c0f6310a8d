"""Import plugin modules under stable names and compile their kernels."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from .. import _numba
from .._errors import PluginLoadError
from ._manifest import Manifest, StageSpec

_LOCK = threading.RLock()
# module name -> (content digest, module); numba's cache re-imports a module by name,
# so each plugin file keeps one stable name for the life of the process.
_MODULES: dict = {}


@dataclass(frozen=True)
class StageCode:
    """The functions of one stage type: ``setup`` (plain Python, may be None) and
    ``process`` (compiled, or plain when jit is off), plus where they came from."""

    spec: StageSpec
    manifest: Manifest
    setup: object
    process: object
    digest: str


def module_name(plugin: str, path: Path) -> str:
    """Stable ``sys.modules`` name of a plugin file."""
    rel = path.resolve().relative_to(path.resolve().parent).with_suffix("")
    return f"eegkit_plugin_{plugin}__{'__'.join(rel.parts)}"


def file_digest(path: Path) -> str:
    """Content hash of a plugin file (edits that keep mtime and size still count)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_module(manifest: Manifest, path: Path, reload: bool = False):
    """Import ``path`` as the plugin's module; reuse it while its content is unchanged."""
    name = module_name(manifest.name, path)
    with _LOCK:
        try:
            digest = file_digest(path)
        except OSError as exc:
            raise PluginLoadError(f"plugin '{manifest.name}': cannot read {path}: {exc}") from None
        cached = _MODULES.get(name)
        if cached and cached[0] == digest and not reload:
            return cached[1], digest
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        old = sys.modules.get(name)
        sys.modules[name] = module
        try:
            with _numba.cache_dir(cache_dir(manifest)):
                spec.loader.exec_module(module)
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


def cache_dir(manifest: Manifest) -> Path:
    """numba cache folder of one plugin (kept out of the plugin folder, which may be read-only)."""
    tag = hashlib.sha256(str(manifest.path.resolve()).encode()).hexdigest()[:8]
    return _numba.cache_root() / "numba" / f"{manifest.name}-{tag}"


def load_stage_code(manifest: Manifest, spec: StageSpec, reload: bool = False) -> StageCode:
    """Import a stage's module and wrap its ``process`` with numba.

    Raises
    ------
    PluginLoadError
        Import failed, ``process`` is missing or not a function.
    """
    module, digest = load_module(manifest, spec.module, reload=reload)
    where = f"plugin '{manifest.name}' stage '{spec.type}' ({spec.module.name})"
    process = getattr(module, spec.process, None)
    if process is None or not callable(process):
        raise PluginLoadError(f"{where}: no function '{spec.process}' (the stage's process "
                              f"kernel) in the module")
    setup = getattr(module, spec.setup, None)
    if setup is not None and not callable(setup):
        raise PluginLoadError(f"{where}: '{spec.setup}' must be a function")
    if _numba.is_compiled(process):
        process = process.py_func  # the host decides jit options
    try:
        with _numba.cache_dir(cache_dir(manifest)):
            compiled = _numba.jit(process)
    except Exception as exc:
        raise PluginLoadError(f"{where}: numba rejected '{spec.process}': {exc}") from exc
    return StageCode(spec=spec, manifest=manifest, setup=setup, process=compiled, digest=digest)
