"""``eegkit plugins list|check|build``: what discovery found (without importing plugin
code), a full check of plugins, and their kernels precompiled into the numba cache."""

from __future__ import annotations

import json
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


def add_parser(sub):
    p = sub.add_parser("plugins", help="list, check and build plugins")
    psub = p.add_subparsers(dest="plugins_command", metavar="ACTION")
    lst = psub.add_parser("list", help="every discovered plugin with its status and stages")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.add_argument("--verbose", "-v", action="store_true", help="show parameters")
    lst.set_defaults(func=list_main)
    chk = psub.add_parser("check", help="validate, import, compile, smoke-test and test plugins",
                          description="For each plugin (default: every one found): validate the "
                          "manifest and API version, import and compile each stage, run a smoke "
                          "recording through it whole and in chunks (the results must agree), "
                          "and run the plugin's own tests/ with pytest. Exit status 1 if any fails.")
    chk.add_argument("names", nargs="*", metavar="NAME", help="plugins to check")
    chk.add_argument("--no-tests", action="store_true", help="skip the plugins' own tests")
    chk.add_argument("--json", action="store_true", help="machine-readable report")
    chk.set_defaults(func=check_main)
    bld = psub.add_parser("build", help="build native plugins; precompile kernels into the cache",
                          description="Build native plugins first (Cargo.toml: cargo build "
                          "--release --offline; Makefile: make) and install their libraries "
                          "into bin/<target-triple>/. Then compile every stage's kernel "
                          "(float64 and float32, default parameters) into the numba cache, "
                          "load them in a fresh process and report compile and cached-load "
                          "times.")
    bld.add_argument("names", nargs="*", metavar="NAME", help="plugins to build")
    bld.add_argument("--force", action="store_true",
                     help="empty the plugins' caches first, so compile times are measured")
    bld.add_argument("--json", action="store_true", help="machine-readable report")
    bld.set_defaults(func=build_main)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def list_main(args) -> int:
    from ..plugin import list_plugins

    records = list_plugins()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    if not records:
        print("no plugins found")
        return 0
    for r in records:
        m = r.manifest
        head = f"{r.name} {m.version if m else '?'} (api {m.api if m else '?'}) [{r.status}]"
        print(f"{head}  {r.path}")
        if r.message:
            print(f"    {r.message}")
        for spec in (m.stages if m else ()):
            print(f"    {spec.type}: {spec.description}")
            if args.verbose:
                for name, ps in spec.params.items():
                    unit = f" {ps.unit}" if ps.unit else ""
                    print(f"        {name}: {ps.type} = {ps.default!r}{unit}")
    return 0


# -- check ---------------------------------------------------------------------------------
def _selected(manager, names):
    """Records to work on, and a failure report for every name not found."""
    usable = [r for r in manager.records if r.status != "shadowed"]
    if not names:
        return usable, []
    missing, chosen = [], []
    for name in names:
        rec = manager.record(name)
        if rec is None:
            known = ", ".join(sorted(r.name for r in usable)) or "none"
            missing.append({"name": name, "path": None, "version": None, "ok": False,
                            "steps": [["find", False, f"no plugin named '{name}' on the plugin "
                                       f"paths; found: {known}"]]})
        else:
            chosen.append(rec)
    return chosen, missing


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
    from ..notebook._pipeline import Pipeline
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


def check_main(args) -> int:
    import logging

    from ..plugin import PluginManager

    manager = PluginManager()
    records, reports = _selected(manager, args.names)
    logging.getLogger("eegkit").setLevel(logging.CRITICAL)  # failures are in the report
    for rec in records:
        if not args.json:
            print(f"checking plugin '{rec.name}' at {rec.path}", flush=True)
        report = check_plugin(manager, rec, run_tests=not args.no_tests)
        reports.append(report)
        if not args.json:
            _print_report(report)
    failed = [r["name"] for r in reports if not r["ok"]]
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        if not reports:
            print("no plugins found")
        for r in reports:
            if r["path"] is None:
                _print_report(r)
        print(f"{len(reports)} plugin(s) checked: {len(reports) - len(failed)} ok"
              + (f", failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _print_report(report):
    marks = {True: "ok  ", False: "FAIL", None: "skip"}
    for what, ok, detail in report["steps"]:
        first, *rest = str(detail).splitlines() or [""]
        print(f"  {marks[ok]} {what}: {first}")
        for line in rest:
            print(f"         {line}")
    for warning in report.get("warnings", ()):
        print(f"  warn {warning}")
    print(f"{report['name']}: {'OK' if report['ok'] else 'FAILED'}")


# -- build ---------------------------------------------------------------------------------
def _print_native(native):
    """One plugin's native build: what was installed, or the compiler's output."""
    if native is None:
        return
    if native["ok"]:
        print(f"{native['name']}: {native['tool']} ok -> {', '.join(native['installed']) or 'nothing to install'}")
    else:
        print(f"{native['name']}: native build FAILED ({native['tool']}): {native['error']}")
        for line in native["output"].splitlines():
            print(f"    | {line}")
    for warning in native["warnings"]:
        print(f"{native['name']}: warning: {warning}")


def build_plugin(manager, rec, force: bool = False) -> dict:
    """Compile every stage of one plugin into the numba cache (float64 and float32)."""
    import shutil

    from ..runtime._stage import Stage
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

    from ..runtime._stage import Stage
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


def build_main(args) -> int:
    from ..plugin import PluginManager

    from ..plugin._build import build_native, build_tool

    manager = PluginManager()
    records, missing = _selected(manager, args.names)
    natives = {rec.name: build_native(rec.manifest) for rec in records
               if rec.usable and build_tool(Path(rec.path))}
    reports = []
    for rec in records:
        native = natives.get(rec.name)
        if native is not None and native["ok"] is False:
            reports.append({"name": rec.name, "ok": False, "stages": [], "native": native,
                            "message": f"native build failed: {native['error']}"})
            continue
        reports.append(build_plugin(manager, rec, force=args.force))
        if native is not None:
            reports[-1]["native"] = native
    names = [r["name"] for r in reports if r["ok"]]
    probe = None
    if names:
        code = ("import json; from eegkit.cli.plugins import load_probe; "
                f"print(json.dumps(load_probe({names!r})))")
        out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(),
                             capture_output=True, text=True, timeout=TESTS_TIMEOUT)
        probe = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else \
            {"error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
    failed = [m["name"] for m in missing] + [r["name"] for r in reports if not r["ok"]]
    if args.json:
        print(json.dumps({"plugins": reports, "fresh_process": probe,
                          "missing": missing}, indent=2))
        return 1 if failed else 0
    for m in missing:
        _print_report(m)
    for r in reports:
        _print_native(r.get("native"))
        print(f"{r['name']}: {'built' if r['ok'] else 'NOT built: ' + r['message']}"
              + (f" -> {r['cache']}" if r.get("cache") else ""))
        for entry in r["stages"]:
            parts = []
            for dtype, d in entry["dtypes"].items():
                if "skipped" in d:
                    parts.append(f"{dtype} skipped ({d['skipped']})")
                else:
                    how = "loaded from cache" if d["from_cache"] else "compiled"
                    parts.append(f"{dtype} {how} in {d['seconds']:.2f} s")
            detail = "; ".join(parts) or entry.get("note") or entry.get("error", "")
            print(f"    {entry['type']}: {detail}")
            if probe and entry["type"] in probe.get("stages", {}):
                p = probe["stages"][entry["type"]]
                src = "from the cache" if p["misses"] == 0 and p["hits"] else \
                    f"{p['misses']} compiled"
                print(f"        fresh process: ready in {p['seconds']:.3f} s ({src})")
    if probe and "import_numba_s" in probe:
        print(f"fresh process: import numba {probe['import_numba_s']:.2f} s (paid once per process)")
    elif probe:
        print(f"fresh process probe failed: {probe.get('error')}")
    return 1 if failed else 0
