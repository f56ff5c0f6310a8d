"""Run the benchmark suite: parse options, set threads, measure, write and print the report."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

SECTIONS = ("streaming", "offline", "coldstart", "hooks")
# BLAS and OpenMP pools pinned to one thread: the workload calls no BLAS (sosfilt, mean and
# rfft are single-threaded), and a stray multi-threaded call must not compete with numba's pool
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CHILD_FLAG = "EEGKIT_BENCH_CHILD"
HERE = Path(__file__).resolve().parent  # benchmarks/, beside the eegkit package


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``eegkit bench`` and ``python -m benchmarks``."""
    p.add_argument("--quick", action="store_true",
                   help="short smoke run (under ~2 minutes): fewer chunks, 10 s and 60 s offline")
    p.add_argument("--out", default=None,
                   help="folder for <name>.json and <name>.md (default: benchmarks/results)")
    p.add_argument("--name", default=None, help="file stem (default: latest, or latest-quick)")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections to run (default: {','.join(SECTIONS)})")
    p.add_argument("--channels", type=int, default=64, help="channels (default 64)")
    p.add_argument("--chunks", default="8,32,128", help="streaming chunk sizes (divisors of 256)")
    p.add_argument("--stream-chunks", type=int, default=None,
                   help="timed chunks per implementation at chunk 32 (others scaled); "
                   "default 10000, quick 1000")
    p.add_argument("--offline-seconds", default=None,
                   help="offline durations in seconds (default 600,3600; quick 10,60)")
    p.add_argument("--dtypes", default="float64,float32", help="sample types")
    p.add_argument("--repeats", type=int, default=None,
                   help="offline rounds and cold-start children per measurement (default 3, quick 1)")


def launch(args: argparse.Namespace) -> int:
    """Run the suite in a child process whose thread settings are fixed before numpy loads."""
    from .coldstart import child_env

    env = child_env()
    for name in THREAD_ENV:
        env.setdefault(name, "1")
    env.setdefault("NUMBA_NUM_THREADS", str(usable_cpus()))
    env[CHILD_FLAG] = "1"
    env.pop("EEGKIT_DISABLE_JIT", None)  # timing pure-Python kernels would say nothing
    # run.py by path, not ``-m benchmarks``: a ``benchmarks`` folder in the caller's
    # working directory must not shadow this one
    argv = [sys.executable, str(HERE / "run.py")] + to_argv(args)
    return subprocess.call(argv, env=env)


def to_argv(args) -> list:
    """The options back as command-line arguments."""
    argv = []
    for key, value in vars(args).items():
        if key in ("func", "command") or value in (None, False):
            continue
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return argv


def main(argv=None) -> int:
    """Entry point of ``eegkit bench``, ``python -m benchmarks`` and of the child they start."""
    p = argparse.ArgumentParser(prog="eegkit bench")
    add_arguments(p)
    args = p.parse_args(argv)
    if os.environ.get(CHILD_FLAG) != "1":
        return launch(args)
    config = make_config(args)
    results = run(config)
    paths = write(results, config)
    from .report import failed_checks, markdown

    print(markdown(results))
    print(f"written: {paths[0]} and {paths[1]}")
    bad = failed_checks(results)
    if bad:
        print("eegkit bench: numeric cross-checks FAILED:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    return 0


def make_config(args) -> dict:
    """Every size and count of the run, from the options."""
    quick = bool(args.quick)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"eegkit bench: unknown section(s) {unknown}; choose from {SECTIONS}")
    seconds = ([float(s) for s in args.offline_seconds.split(",")] if args.offline_seconds
               else [10.0, 60.0] if quick else [600.0, 3600.0])
    repeats = args.repeats or (1 if quick else 3)
    return {"mode": "quick" if quick else "full", "quick": quick, "sections": only,
            "n_channels": args.channels, "chunks": [int(c) for c in args.chunks.split(",")],
            "stream_chunks": args.stream_chunks or (1000 if quick else 10000),
            "offline_seconds": seconds, "dtypes": [d.strip() for d in args.dtypes.split(",")],
            "repeats": repeats,
            # the hour gets fewer rounds: it is long enough to average noise within one
            "offline_repeats": {s: (repeats if s < 1800 else max(1, repeats - 1)) for s in seconds},
            "out": args.out, "name": args.name or ("latest-quick" if quick else "latest")}


def run(config) -> dict:
    """Every section of ``config``; returns the results document."""
    from . import coldstart, hooks, numba_ref, offline, overhead, streaming
    from . import workloads as wl
    from .report import targets

    started = time.perf_counter()
    results = {"started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "config": {k: v for k, v in config.items() if k != "offline_repeats"}}
    results["config"]["round"] = streaming.ROUND
    load_start = _load()
    log = _log
    n_ch = config["n_channels"]
    if {"streaming", "offline"} & set(config["sections"]):
        t0 = time.perf_counter()
        numba_ref.warm_up(config["dtypes"])
        log(f"hand-written numba kernels ready in {time.perf_counter() - t0:.1f} s")
    if "streaming" in config["sections"]:
        results["streaming"], results["overhead"] = [], []
        for dtype in config["dtypes"]:
            data = wl.EegGenerator(n_ch).make(streaming.STREAM, dtype)
            for chunk in config["chunks"]:
                # same wall time per chunk size, roughly: more small chunks, fewer big ones
                n = max(200, int(config["stream_chunks"] * (32 / chunk) ** 0.5))
                r = streaming.run_config(data, wl.SFREQ, chunk, n)
                results["streaming"].append(r)
                log(f"streaming {dtype} chunk {chunk}: " + ", ".join(
                    f"{k} {v['median_us']:.1f} µs" for k, v in r["impls"].items()))
                if dtype == "float64":
                    results["overhead"].append(overhead.profile(data, wl.SFREQ, chunk, n // 2))
    if "offline" in config["sections"]:
        results["offline"] = offline.run(config["offline_seconds"], wl.SFREQ, n_ch,
                                         config["offline_repeats"], config["dtypes"], log=log)
    if "coldstart" in config["sections"]:
        log("cold start: fresh processes ...")
        results["coldstart"] = coldstart.run(config["repeats"], n_ch)
    if "hooks" in config["sections"]:
        log("hooks: widget, isolation, reload, batch, LSL latency, fusion ...")
        results["hooks"] = hooks.run(config["quick"], n_ch)
    results["machine"] = machine_info(load_start, _load())
    results["elapsed_s"] = time.perf_counter() - started
    results["targets"] = targets(results)
    return results


def write(results, config):
    """Write ``<name>.json`` and ``<name>.md``; return their paths."""
    from .report import markdown

    out = Path(config["out"]) if config["out"] else default_out()
    out.mkdir(parents=True, exist_ok=True)
    stem = config["name"]
    jpath, mpath = out / f"{stem}.json", out / f"{stem}.md"
    jpath.write_text(json.dumps(results, indent=1, default=_jsonable) + "\n", encoding="utf-8")
    mpath.write_text(markdown(results), encoding="utf-8")
    return jpath, mpath


def default_out() -> Path:
    """``benchmarks/results``."""
    return HERE / "results"


def usable_cpus() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info(load_start, load_end) -> dict:
    """CPU, memory, library versions, thread settings (no host names)."""
    import numba
    import numpy
    import scipy

    import eegkit

    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised"
    return {"cpu": _cpu_model(), "cpus": usable_cpus(), "memory_gb": _memory_gb(),
            "system": f"{platform.system()} {platform.machine()}",
            "python": platform.python_version(), "numpy": numpy.__version__,
            "scipy": scipy.__version__, "numba": numba.__version__,
            "numba_threads": numba.get_num_threads(), "numba_threading_layer": layer,
            "blas": _blas(), "blas_threads": ", ".join(f"{k}={os.environ.get(k, 'unset')}"
                                                       for k in THREAD_ENV),
            "eegkit": f"{eegkit.__version__}{_commit()}", "load_start": load_start,
            "load_end": load_end,
            "threads_note": ("Threads: BLAS/OpenMP pinned to 1 (the workload calls no BLAS); numba "
                             "uses every usable core, which only the parallel baseline (and any "
                             "parallel eegkit kernel) employs; streaming runs on one thread.")}


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return float("nan")


def _blas():
    try:
        import numpy

        deps = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{deps.get('name')} {deps.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - informative only
        return "unknown"


def _commit():
    """`` (commit abc1234[+changes])`` in a git checkout, else ''."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent, capture_output=True,
                              text=True, timeout=10)
        if head.returncode:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE.parent,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f" (commit {head.stdout.strip()}{'+changes' if dirty else ''})"
    except (OSError, subprocess.SubprocessError):
        return ""


def _load():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _jsonable(v):
    try:
        return v.item()
    except AttributeError:
        return str(v)
