"""Where eegkit's own files are, and the environment that child Python processes get.

Leaf module: bundled folders (``plugins``, ``widgets``) are found inside an installed
wheel (``eegkit/_bundled/<name>``) or beside the package in a source checkout; child
processes (isolated stages, Dask workers, ``plugins check``) import this same eegkit.
Every walk of a plugin folder (permission check, code digest, hot-reload watch, batch
shipping, copies) skips the folders named here.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent  # the folder that holds the ``eegkit`` package

# Folders in a plugin folder that are never its code: caches (byte code, JS packages),
# notebook autosaves, version control. Permission checks skip only these: a plugin's
# tests/ run under ``eegkit plugins check``, so who may write them matters.
NOT_CODE_DIRS = frozenset({"__pycache__", "node_modules", ".ipynb_checkpoints", ".git"})
# What a stage loads: no tests/, and no hidden folder (see ``is_skipped``). The code
# digest, the hot-reload watcher, batch shipping and copies of a plugin use this set.
STAGE_SKIP_DIRS = NOT_CODE_DIRS | {"tests"}


def is_skipped(parts, skip=STAGE_SKIP_DIRS) -> bool:
    """True if a relative path's ``parts`` pass through a folder in ``skip`` or a hidden one."""
    return any(part in skip or part.startswith(".") for part in parts)


def package_dir(name: str) -> Path | None:
    """Folder of bundled files (``plugins`` or ``widgets``): inside the installed
    package, or beside the package in a source checkout."""
    for candidate in (PACKAGE / "_bundled" / name, ROOT / name):
        if candidate.is_dir():
            return candidate
    return None


def child_env(extra_paths=(), base=None) -> dict:
    """A copy of ``base`` (default ``os.environ``) whose PYTHONPATH starts with the
    folder holding this eegkit, then ``extra_paths``, then what was there (no repeats)."""
    env = dict(os.environ if base is None else base)
    parts = [str(ROOT), *map(str, extra_paths)]
    parts += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    return env
