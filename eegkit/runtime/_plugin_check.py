"""Plugin checks and builds, as their users will run them (``eegkit plugins check|build``).

``check_plugin`` validates a plugin's manifest and API version, imports and compiles each
stage, streams a smoke recording through it whole and in chunks (the two must agree) and
runs the plugin's own tests with pytest in a subprocess. ``build_plugin`` compiles every
stage's kernel into the numba cache; ``load_probe`` (run in a fresh process) times loading
them back. The command line only parses arguments and prints these reports.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .. import _numba

SMOKE_SECONDS = 4.0
SMOKE_CHUNKS = (7, 32)
TESTS_TIMEOUT = 600.0


def _smoke_input():
    """4 s of 8-channel synthetic EEG and its StreamInfo (deterministic)."""
    from ..sources import make_source

    src = make_source({"type": "synthetic", "params": {"n_channels": 8, "sfreq": 250.0,
                                                        "seed": 0, "duration": SMOKE_SECONDS}})
    return src.read_all(), src.info


def _build_info(dtype="float64"):
    """What kernels are compiled for: 8 EEG channels at 250 Hz (only types matter)."""
    from .._info import StreamInfo

    return StreamInfo(250.0, ["Fz", "Oz", "Cz", "Pz", "C3", "C4", "O1", "O2"], dtype=dtype)


def check_plugin(manager, rec, run_tests: bool = True) -> dict:
    """Check one plugin; returns ``{"name", "path", "version", "ok", "steps", "warnings"}``
    where each step is ``[what, ok (True/False/None = skipped), detail]`` and warnings
    (which do not fail the check) are sentences, e.g. a setup default that differs from
    the manifest's."""
    from ._pipeline import Pipeline
    from ..plugin._params import default_drift

    m = rec.manifest
    report = {"name": rec.name, "path": str(rec.path), "version": m.version if m else None,
              "ok": True, "steps": [], "warnings": []}

    def step(what, ok, detail=""):
        report["steps"].append([what, ok, detail])
        if ok is False:
            report["ok"] = False

    if rec.status in ("error", "rejected"):
        step("manifest", False, rec.message)
        return report
    step("manifest", True, f"api {m.api}" + (f"; warning: {rec.message}" if rec.message else ""))
    data, info = _smoke_input()
    for spec in m.stages:
        t0 = time.perf_counter()
        try:
            pipe = Pipeline(plugins=manager, fuse=False)
            stage = pipe.add(spec.type, id="s")
            whole = pipe.process(data, sfreq=info.sfreq, ch_names=info.ch_names)["s"]
        except Exception as exc:  # noqa: BLE001 - a broken plugin is a report, not a crash
            if spec.kind == "native" and "no build of library" in str(exc):
                step(spec.type, None, f"not built for this platform: {exc}")  # not broken
            else:
                step(spec.type, False, f"import/compile failed: {type(exc).__name__}: {exc}")
            continue
        if not stage.code.isolated and stage.code.setup is not None:  # isolated: never imported here
            report["warnings"] += [f"{spec.type}: {w}"
                                   for w in default_drift(spec.params, stage.code.setup)]
        where = "in a child process" if stage.isolation == "process" else "in process"
        if spec.kind == "native" and stage.isolation != "process":
            step("isolation", None, f"{spec.type} runs native code in this process, where a "
                 f"crash ends the whole pipeline; recommended for libraries you did not write: "
                 f"isolation = \"process\" in its [[stage]]")
        if stage.status != "ok":
            if (stage.error or "").startswith("setup: ParameterError"):
                step(spec.type, None, f"loaded and compiled {where}; smoke skipped, setup needs "
                     f"parameters for a synthetic 8-channel EEG: {stage.error}")
            else:
                step(spec.type, False, f"disabled on the smoke recording: {stage.error}")
            _close(pipe)
            continue
        problems = _compare_chunks(pipe, data, info, whole)
        elapsed = time.perf_counter() - t0
        if problems:
            step(spec.type, False, "; ".join(problems))
        else:
            step(spec.type, True, f"imported, compiled and ran {where} in {elapsed:.2f} s; whole "
                 f"recording = chunks of {', '.join(map(str, SMOKE_CHUNKS))} "
                 f"({whole.shape[0]} x {whole.shape[1]} out)")
        _close(pipe)
    tests = Path(rec.path) / "tests"
    if not run_tests:
        step("tests", None, "skipped (--no-tests)")
    elif tests.is_dir():
        step("tests", *_run_tests(rec, tests))
    else:
        step("tests", None, "no tests/ folder")
    return report


def _compare_chunks(pipe, data, info, whole) -> list:
    """Stream ``data`` through ``pipe`` in chunks; differences from ``whole``."""
    problems = []
    scale = float(np.max(np.abs(whole))) if whole.size else 0.0
    for chunk in SMOKE_CHUNKS:
        pipe.open(info)
        parts = [pipe.push(data[:, i:i + chunk])["s"] for i in range(0, data.shape[1], chunk)]
        got = np.concatenate(parts, axis=1)
        if pipe["s"].status != "ok":
            problems.append(f"disabled while streaming chunks of {chunk}: {pipe['s'].error}")
        elif got.shape != whole.shape:
            problems.append(f"chunks of {chunk} give shape {got.shape}, the whole recording "
                            f"{whole.shape}")
        elif not np.allclose(got, whole, rtol=1e-6, atol=1e-9 * scale, equal_nan=True):
            diff = float(np.nanmax(np.abs(got - whole)))
            problems.append(f"chunks of {chunk} differ from the whole-recording result "
                            f"(max difference {diff:.3g}, largest value {scale:.3g}); state "
                            f"must carry over between chunks")
    return problems


def _close(pipe):
    for stage in pipe.stages:
        stage.code.close()


def subprocess_env(extra_paths=()) -> dict:
    """Environment for child Python processes: this eegkit first on PYTHONPATH."""
    from .._paths import child_env

    return child_env(extra_paths)


def _run_tests(rec, tests: Path):
    """The plugin's own tests, with pytest in a subprocess."""
    from .._numba import cache_root

    env = subprocess_env()
    env["EEGKIT_PLUGINS_PATH"] = os.pathsep.join(
        [str(Path(rec.path).parent)] + [p for p in env.get("EEGKIT_PLUGINS_PATH", "").split(os.pathsep) if p])
    cache = cache_root() / "pytest" / rec.name
    cmd = [sys.executable, "-m", "pytest", "-q", "--no-header", "-p", "no:randomly",
           "-o", f"cache_dir={cache}", str(tests)]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=rec.path, env=env, capture_output=True, text=True,
                             timeout=TESTS_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False, f"pytest did not finish within {TESTS_TIMEOUT:g} s"
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else "no output"
    if out.returncode == 0:
        return True, f"{summary} ({time.perf_counter() - t0:.1f} s)"
    if out.returncode == 5:
        return None, "no tests collected"
    tail = "\n".join(lines[-25:] + out.stderr.splitlines()[-10:])
    return False, f"pytest failed: {summary}\n{tail}"


def build_plugin(manager, rec, force: bool = False) -> dict:
    """Compile every stage of one plugin into the numba cache (float64 and float32)."""
    import shutil

    from ._stage import Stage
    from ..plugin._loader import cache_dir, load_stage_code, plugin_digest

    m = rec.manifest
    report = {"name": rec.name, "ok": rec.usable, "stages": [], "message": rec.message}
    if not rec.usable:
        return report
    folder = cache_dir(m, plugin_digest(m))
    report["cache"] = str(folder)
    if force and folder.exists():
        shutil.rmtree(folder)
    for spec in m.stages:
        entry = {"type": spec.type, "isolation": spec.isolation, "dtypes": {}}
        report["stages"].append(entry)
        if spec.isolation == "process":
            entry["note"] = "isolated: compiled in its child process when the stage is built"
            continue
        try:
            code = load_stage_code(m, spec, reload=True)
        except Exception as exc:  # noqa: BLE001
            entry["error"] = f"{type(exc).__name__}: {exc}"
            report["ok"] = False
            continue
        for dtype in ("float64", "float32"):
            before = _numba.cache_counts(code.process)[0]
            t0 = time.perf_counter()
            stage = Stage(code, id="build", input="source", params={})
            stage.configure(_build_info(dtype))
            seconds = time.perf_counter() - t0
            if stage.status != "ok":
                entry["dtypes"][dtype] = {"skipped": stage.error}
                continue
            hits = _numba.cache_counts(code.process)[0] - before
            entry["dtypes"][dtype] = {"seconds": seconds, "from_cache": hits > 0}
    return report


def load_probe(names) -> dict:
    """In a fresh process: time loading every built kernel from the cache."""
    t0 = time.perf_counter()
    import numba  # noqa: F401 - its import is part of the first kernel's cost, reported apart

    from ._stage import Stage
    from ..plugin import PluginManager
    from ..plugin._loader import load_stage_code

    result = {"import_numba_s": time.perf_counter() - t0, "stages": {}}
    manager = PluginManager()
    info = _build_info()
    for name in names:
        rec = manager.record(name)
        for spec in rec.manifest.stages if rec and rec.usable else ():
            if spec.isolation == "process":
                continue
            t0 = time.perf_counter()
            code = load_stage_code(rec.manifest, spec)
            stage = Stage(code, id="probe", input="source", params={})
            stage.configure(info)
            hits, misses = _numba.cache_counts(code.process)
            result["stages"][spec.type] = {
                "seconds": time.perf_counter() - t0, "ok": stage.status == "ok",
                "hits": hits, "misses": misses}
    return result
