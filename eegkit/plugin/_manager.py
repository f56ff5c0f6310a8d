"""PluginManager: the discovered plugins, and the stage types they provide."""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

from .._check import did_you_mean
from .._errors import PipelineError
from ._discovery import discover
from ._loader import load_stage_code


log = logging.getLogger("eegkit")


class PluginApiWarning(UserWarning):
    """A plugin targets a newer minor plugin API than this eegkit."""


class PluginManager:
    """Discovered plugins and their stage types.

    Parameters
    ----------
    paths : list of path-like, optional
        Plugin folders to search instead of the defaults (``EEGKIT_PLUGINS_PATH``,
        ``./plugins``, the bundled plugins).
    entry_points : bool
        Also use plugins installed as packages (``eegkit.plugins`` entry points).
    """

    def __init__(self, paths=None, entry_points: bool = True):
        self.paths = paths
        self.entry_points = entry_points
        self._lock = threading.RLock()
        self._warned = set()
        self.records = None
        self._added = []  # (folder, origin) searched first: see add_path
        self._dropped = set()  # folders remove_path took away (their plugins go quietly)
        self.changes = {"added": [], "removed": []}
        self.refresh()

    def refresh(self) -> list:
        """Discover again (new, removed or edited manifests); return the records.

        ``changes`` then names the plugins added and removed since the last
        discovery; a removed plugin is logged (stages already built from it keep
        running the code they loaded).
        """
        with self._lock:
            first = self.records is None
            before = {r.name: r.path for r in self.records or () if r.active}
            self.records = discover(self.paths, self.entry_points, self._added)
            self._types = {}
            for rec in self.records:
                if rec.manifest is not None and rec.active:
                    for spec in rec.manifest.stages:
                        self._types.setdefault(spec.type, (rec, spec))
            after = {r.name for r in self.records if r.active}
            if not first:  # the first discovery adds nothing worth reporting
                self.changes = {"added": sorted(after - set(before)),
                                "removed": sorted(set(before) - after)}
                for name in self.changes["removed"]:
                    if before[name].parent in self._dropped:
                        continue  # taken away on purpose (remove_path)
                    log.warning("eegkit: plugin '%s' was removed (it was at %s); stages already "
                                "built from it keep running the code they loaded", name, before[name])
            return self.records

    def add_path(self, path, origin: str = "added") -> None:
        """Search the plugin folders under ``path`` before every other place, then refresh.

        For plugins that exist only while a program runs (``eegkit.testing.TemporaryPlugin``,
        notebook cell stages); nothing outside this manager changes.
        """
        with self._lock:
            entry = (Path(path), origin)
            if entry not in self._added:
                self._added.insert(0, entry)
            self.refresh()

    def remove_path(self, path) -> None:
        """Stop searching ``path`` (see :meth:`add_path`), then refresh."""
        with self._lock:
            self._added = [(p, o) for p, o in self._added if p != Path(path)]
            self._dropped.add(Path(path))
            self.refresh()

    def record(self, name: str):
        """The record of plugin ``name`` (the first found), or None."""
        return next((r for r in self.records if r.name == name and r.active), None)

    def stage_types(self) -> list:
        """Every usable stage type."""
        return sorted(t for t, (rec, _) in self._types.items() if rec.usable)

    def spec(self, stage_type: str, where: str = "stage"):
        """``(record, StageSpec)`` of a stage type, or a PipelineError saying why not."""
        if not isinstance(stage_type, str):
            raise PipelineError(f"{where}: stage type must be a string, got {stage_type!r}")
        found = self._types.get(stage_type)
        if found is None and isinstance(stage_type, str):
            self.refresh()  # a plugin folder added since the last discovery
            found = self._types.get(stage_type)
        if found is None:
            plugin = stage_type.split(".", 1)[0]
            rec = self.record(plugin)
            if rec is not None and not rec.usable:
                raise PipelineError(f"{where}: stage type '{stage_type}' comes from plugin "
                                    f"'{plugin}', which is {rec.status}: {rec.message}")
            extra = did_you_mean(stage_type, self._types)
            known = ", ".join(self.stage_types()) or "none"
            raise PipelineError(f"{where}: unknown stage type '{stage_type}'.{extra} "
                                f"Known stage types: {known}.")
        rec, spec = found
        if not rec.usable:
            raise PipelineError(f"{where}: stage type '{stage_type}' comes from plugin "
                                f"'{rec.name}', which is {rec.status}: {rec.message}")
        if rec.status == "warning" and rec.name not in self._warned:
            self._warned.add(rec.name)
            warnings.warn(rec.message, PluginApiWarning, stacklevel=3)
        return rec, spec

    def load(self, stage_type: str, where: str = "stage", reload: bool = False):
        """Import and compile the code of a stage type (see ``load_stage_code``)."""
        rec, spec = self.spec(stage_type, where)
        return load_stage_code(rec.manifest, spec, reload=reload)


_DEFAULT = None
_DEFAULT_LOCK = threading.Lock()


def default_manager() -> PluginManager:
    """The process-wide manager used when none is given."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = PluginManager()
        return _DEFAULT


def list_plugins(refresh: bool = True) -> list:
    """Discover plugins and return one record per plugin found.

    Parameters
    ----------
    refresh : bool
        Discover again instead of returning the last result.

    Returns
    -------
    list of PluginRecord
    """
    manager = default_manager()
    return manager.refresh() if refresh else manager.records
