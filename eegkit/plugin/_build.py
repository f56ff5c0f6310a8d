"""Build native plugins: ``Cargo.toml`` -> ``cargo build --release``, ``Makefile`` -> ``make``.

The artefacts (``lib<library>.so`` / ``.dylib`` / ``.dll`` for every ``library`` the
manifest names) are copied into ``bin/<target-triple>/``, where the loader looks.
Each library's ABI version is read in a child process (a broken library cannot take
the build down) and compared with this eegkit's. A failure is reported per plugin,
with the compiler's output; the other plugins still build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ._native import HEADER, check_abi, library_names, target_triple

BUILD_TIMEOUT = 600.0
OUTPUT_LINES = 40  # of the compiler's output kept in a failure report
# where each tool leaves its artefacts, relative to the plugin folder
SEARCH = {"cargo": ("target/release",), "make": ("build", ".")}
_ABI_PROBE = ("import ctypes, sys; f = ctypes.CDLL(sys.argv[1]).eegkit_abi_version; "
              "f.restype = ctypes.c_uint32; print(f())")


def build_tool(folder: Path) -> str | None:
    """``"cargo"``, ``"make"`` or None: how a plugin folder is built."""
    if (folder / "Cargo.toml").is_file():
        return "cargo"
    if (folder / "Makefile").is_file():
        return "make"
    return None


def build_native(manifest) -> dict:
    """Build one plugin's native code and install it into ``bin/<target-triple>/``.

    Parameters
    ----------
    manifest : Manifest
        The plugin (its folder holds ``Cargo.toml`` or ``Makefile``).

    Returns
    -------
    dict
        ``name``, ``tool``, ``ok`` (True, False, or None when there is nothing to
        build), ``installed`` (paths), ``warnings``, ``error`` and ``output`` (the
        tool's output, on failure).
    """
    folder = Path(manifest.path)
    tool = build_tool(folder)
    report = {"name": manifest.name, "path": str(folder), "tool": tool, "ok": None,
              "installed": [], "warnings": [], "error": None, "output": ""}
    libraries = sorted({s.library for s in manifest.stages if s.library})
    if tool is None:
        if libraries:
            report.update(ok=False, error=f"stages use library '{libraries[0]}' but the folder "
                          f"has no Cargo.toml or Makefile to build it")
        return report
    env = dict(os.environ, EEGKIT_INCLUDE=str(HEADER.parent))
    if tool == "cargo":
        cmd = ["cargo", "build", "--release", "--offline"]
        env["CARGO_TARGET_DIR"] = str(folder / "target")
    else:
        cmd = ["make", f"EEGKIT_INCLUDE={HEADER.parent}"]
    try:
        out = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True,
                             timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        report.update(ok=False, error=f"'{cmd[0]}' is not installed (not on PATH); it builds "
                      f"{folder / ('Cargo.toml' if tool == 'cargo' else 'Makefile')}")
        return report
    except subprocess.TimeoutExpired:
        report.update(ok=False, error=f"'{' '.join(cmd)}' did not finish within "
                      f"{BUILD_TIMEOUT:g} s")
        return report
    if out.returncode != 0:
        lines = (out.stdout + out.stderr).strip().splitlines()
        report.update(ok=False, error=f"'{' '.join(cmd)}' failed (exit status {out.returncode})",
                      output="\n".join(lines[-OUTPUT_LINES:]))
        return report
    triple = target_triple()
    for library in libraries:
        found = _artefact(folder, tool, library)
        if found is None:
            places = ", ".join(f"{d}/{library_names(library)[0]}" for d in SEARCH[tool])
            report.update(ok=False, error=f"'{' '.join(cmd)}' succeeded but left no "
                          f"{library_names(library)[0]} (looked in {places})")
            return report
        target = folder / "bin" / triple / found.name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".tmp")
        shutil.copyfile(found, tmp)
        os.replace(tmp, target)  # a running process keeps its mapped copy
        report["installed"].append(str(target.relative_to(folder)))
        problem = _abi_problem(target, library)
        if problem:
            report["warnings"].append(problem)
    report["ok"] = True
    return report


def _artefact(folder: Path, tool: str, library: str) -> Path | None:
    for sub in SEARCH[tool]:
        for name in library_names(library):
            path = folder / sub / name
            if path.is_file():
                return path
    return None


def _abi_problem(path: Path, library: str) -> str | None:
    """Why ``path``'s ABI version will be a problem at load time, or None."""
    where = f"library '{library}' ({path.name})"
    try:
        out = subprocess.run([sys.executable, "-c", _ABI_PROBE, str(path)], capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
        version = int(json.loads(out.stdout.strip().splitlines()[-1]))
    except Exception:  # noqa: BLE001 - any failure here is the report
        return (f"{where}: could not read eegkit_abi_version() (does it include "
                f"eegkit_plugin.h and export it?)")
    try:
        warning = check_abi((version >> 16, version & 0xFFFF), where)
    except Exception as exc:  # noqa: BLE001 - a major mismatch: still installed, reported
        return f"{exc} (it will be rejected when loaded)"
    return warning
