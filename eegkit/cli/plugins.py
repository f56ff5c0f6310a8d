"""``eegkit plugins list|check|build``: what discovery found (without importing plugin
code), a full check of plugins, and their kernels precompiled into the numba cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


from ..runtime._plugin_check import (TESTS_TIMEOUT, build_plugin, check_plugin,
                                     subprocess_env)


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
        code = ("import json; from eegkit.runtime._plugin_check import load_probe; "
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
