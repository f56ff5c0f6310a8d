"""Find plugins: folders on the plugin paths and the ``eegkit.plugins`` entry points.

Discovery reads manifests only; no plugin code is imported. One broken plugin is
reported in its record and never stops the others.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import ApiVersionError, ManifestError
from .._paths import NOT_CODE_DIRS, package_dir
from ._manifest import MANIFEST, Manifest, check_api, read_manifest

ENTRY_POINT_GROUP = "eegkit.plugins"
TRUST_ENV = "EEGKIT_TRUST_LOCAL_PLUGINS"
# plugins the user installed on purpose; one in the working folder may not replace them
TRUSTED_ORIGINS = ("bundled", "entry-point")


@dataclass
class PluginRecord:
    """What discovery found at one place: a manifest, or the error that stopped it.

    ``status`` is ``ok``, ``warning`` (loaded, see ``message``: a newer minor plugin
    API, or files any user may write), ``rejected`` (plugin-API mismatch, or a plugin
    in the working folder's ``plugins/`` that would replace a bundled or installed one:
    ``shadows`` names it), ``error`` (bad manifest, import or compile error) or
    ``shadowed`` (a plugin of the same name was found earlier on the path).
    """

    name: str
    path: Path
    origin: str
    manifest: Manifest | None = None
    status: str = "ok"
    message: str = ""
    stages: list = field(default_factory=list)
    shadows: Path | None = None  # the trusted plugin this untrusted one would have replaced

    @property
    def usable(self) -> bool:
        """True when its stages may be used."""
        return self.status in ("ok", "warning")

    @property
    def active(self) -> bool:
        """True for the one record of its name that provides its stage types."""
        return self.status != "shadowed" and self.shadows is None

    def to_dict(self) -> dict:
        """Plain dict for ``eegkit plugins list --json``."""
        m = self.manifest
        return {"name": self.name, "path": str(self.path), "origin": self.origin,
                "status": self.status, "message": self.message,
                "version": m.version if m else None, "api": m.api if m else None,
                "description": m.description if m else "",
                "ui_bundle": str(m.ui_bundle) if m and m.ui_bundle else None,
                "stages": [s.to_dict() for s in m.stages] if m else [],
                "shadows": str(self.shadows) if self.shadows else None}


def default_paths() -> list:
    """Plugin folders searched, in priority order, as ``(path, origin)``."""
    paths = []
    for entry in os.environ.get("EEGKIT_PLUGINS_PATH", "").split(os.pathsep):
        if entry.strip():
            paths.append((Path(entry).expanduser(), "EEGKIT_PLUGINS_PATH"))
    paths.append((Path.cwd() / "plugins", "project"))
    bundled = package_dir("plugins")
    if bundled is not None:
        paths.append((bundled, "bundled"))
    return paths


def trust_local() -> bool:
    """True when ``EEGKIT_TRUST_LOCAL_PLUGINS`` lets ``./plugins`` replace trusted plugins."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def discover(paths=None, entry_points: bool = True, first=()) -> list:
    """Find every plugin.

    A plugin in the working folder's ``plugins/`` whose name is also a bundled or
    installed plugin is ``rejected`` (running eegkit inside a downloaded folder must
    not replace trusted code), unless ``EEGKIT_TRUST_LOCAL_PLUGINS=1``
    (``eegkit run --trust-local``).

    Parameters
    ----------
    paths : list of path-like, optional
        Folders whose sub-folders are plugins. Default: ``EEGKIT_PLUGINS_PATH``,
        ``./plugins``, then the bundled plugins.
    entry_points : bool
        Also look at the ``eegkit.plugins`` entry-point group.
    first : sequence of (path, origin)
        Folders searched before all others (plugins added to a manager at run time).

    Returns
    -------
    list of PluginRecord
        One per plugin folder found, in priority order; never raises for a bad plugin.
    """
    places = [(Path(p), origin) for p, origin in first]
    places += default_paths() if paths is None else [(Path(p), "path") for p in paths]
    records, seen_dirs, by_name = [], set(), {}
    candidates = []
    for root, origin in places:
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.is_dir() and not folder.name.startswith((".", "_")):
                if (folder / MANIFEST).exists() or any(folder.glob("*.py")):
                    candidates.append((folder, origin, folder.name))
    if entry_points:
        candidates.extend(_entry_point_folders())
    found = []
    for folder, origin, expected in candidates:
        key = folder.resolve() if folder.exists() else folder
        if key in seen_dirs:
            continue
        seen_dirs.add(key)
        found.append(inspect_folder(folder, origin, expected))
    trusted = {r.name: r for r in reversed(found)
               if r.origin in TRUSTED_ORIGINS and r.status != "error"}
    trusting = trust_local()
    for record in found:
        other = trusted.get(record.name)
        if record.origin == "project" and other is not None and not trusting:
            record.status, record.shadows = "rejected", other.path
            record.message = (f"plugin '{record.name}' at {record.path} (in the working folder) "
                              f"would replace the {other.origin} plugin at {other.path}, so it "
                              f"is not used; to run it, trust this folder's plugins: set "
                              f"{TRUST_ENV}=1 or pass --trust-local to eegkit run")
            records.append(record)
            continue
        if record.name in by_name and by_name[record.name].status != "error":
            winner = by_name[record.name]
            record.status = "shadowed"
            record.message = (f"plugin '{record.name}' at {record.path} is shadowed by the one "
                              f"found first at {winner.path}")
        else:
            by_name.setdefault(record.name, record)
        records.append(record)
    return records


def inspect_folder(folder: Path, origin: str, expected: str | None) -> PluginRecord:
    """Read one plugin folder into a PluginRecord (errors are kept, not raised)."""
    record = PluginRecord(name=expected or folder.name, path=folder, origin=origin)
    try:
        manifest = read_manifest(folder, expected_name=expected)
    except ManifestError as exc:
        record.status, record.message = "error", str(exc)
        return record
    record.manifest = manifest
    record.name = manifest.name
    record.stages = [s.type for s in manifest.stages]
    try:
        warning = check_api(manifest)
    except ApiVersionError as exc:
        record.status, record.message = "rejected", str(exc)
        return record
    unsafe = unsafe_permissions(folder)
    if unsafe:
        shown = " ".join(str(p) for p in unsafe[:5]) + (" ..." if len(unsafe) > 5 else "")
        text = (f"plugin '{manifest.name}' at {folder}: world-writable, so any user of this "
                f"machine can change the code it runs: {shown}; fix with: chmod o-w {shown}")
        warning = f"{warning}; {text}" if warning else text
    if warning:
        record.status, record.message = "warning", warning
    return record


def unsafe_permissions(folder: Path) -> list:
    """The plugin folder, its sub-folders and files that every user may write (POSIX)."""
    if os.name != "posix":
        return []
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in NOT_CODE_DIRS]
        for path in [here] + [os.path.join(here, f) for f in files]:
            try:
                mode = os.stat(path).st_mode
            except OSError:  # a dangling symlink: reading the manifest reports what matters
                continue
            if mode & stat.S_IWOTH:
                found.append(Path(path))
    return found


def _entry_point_folders() -> list:
    """Folders of plugins installed as packages (entry point value = package name).

    Read from entry-point metadata and the distribution's file list, never by
    importing: ``find_spec("pkg.sub")`` would run ``pkg/__init__.py``.
    """
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module = ep.value.split(":")[0].strip()
        folder = _package_folder(module, getattr(ep, "dist", None))
        if folder is None:
            found.append((Path(f"<entry point {ep.name} = {ep.value}>"), "entry-point", ep.name))
        else:
            found.append((folder, "entry-point", ep.name))
    return found


def _package_folder(module: str, dist) -> Path | None:
    """The folder of package ``module``: from ``dist``'s installed files, else the first
    ``sys.path`` entry holding it; None when neither has it."""
    parts = module.split(".")
    if not module or not all(p.isidentifier() for p in parts):
        return None
    for file in (dist.files or ()) if dist is not None else ():
        if tuple(file.parts[:-1]) == tuple(parts) and file.name in (MANIFEST, "__init__.py"):
            folder = Path(dist.locate_file(file)).parent
            if folder.is_dir():
                return folder
    for entry in sys.path:
        folder = Path(entry or ".", *parts)
        if folder.is_dir() and (folder / MANIFEST).exists():
            return folder
    return None
