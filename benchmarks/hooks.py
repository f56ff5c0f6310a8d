"""Measurements of other parts of eegkit: widget frames, isolation, hot reload, batch,
LSL end-to-end latency, fusion of K chained stages.

Each lives in its own module here (``widget``, ``isolation``, ``reload``, ``batch``,
``lsl_latency``, ``fusion``) and
returns a JSON-able dict. Each runs in its own child process (with a time limit), so a
measurement that starts workers, sockets or threads cannot disturb the rest of the
benchmark, and this process never imports what it measures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from .coldstart import child_env

ROOT = str(Path(__file__).resolve().parent.parent)

# label → (module, function)
HOOKS = {
    "widget frame cost": ("benchmarks.widget", "frame_cost"),
    "isolation overhead": ("benchmarks.isolation", "overhead"),
    "hot-reload latency": ("benchmarks.reload", "latency"),
    "batch throughput": ("benchmarks.batch", "throughput"),
    "LSL end-to-end latency (quickstart chain, loopback)": ("benchmarks.lsl_latency", "latency"),
    "fusion of K chained band-passes": ("benchmarks.fusion", "scaling"),
}

CHILD = r"""
import importlib, json, sys
root, module, function, kwargs = json.loads(sys.argv[1])
sys.path.insert(0, root)  # before the working directory, which may hold another benchmarks/
value = getattr(importlib.import_module(module), function)(**kwargs)
print(json.dumps({"status": "ok", "function": f"{module}.{function}", "kwargs": kwargs,
                  "value": value}, default=str))
"""


def arguments(quick: bool, n_channels: int) -> dict:
    """Label → keyword arguments of each measurement."""
    return {"widget frame cost": {"n_channels": n_channels, "sfreq": 1000.0, "fps": 30.0,
                                  "view": "scope", "n_frames": 60 if quick else 300},
            "isolation overhead": {"n_channels": n_channels, "chunk": 32},
            "hot-reload latency": {"n_channels": n_channels, "sfreq": 1000.0, "chunk": 32,
                                   "repeats": 1 if quick else 3},
            "batch throughput": {"n_channels": n_channels, "sfreq": 1000.0},
            "LSL end-to-end latency (quickstart chain, loopback)": {
                "chunk": 32, "seconds": 5.0 if quick else 20.0},
            "fusion of K chained band-passes": {"ks": [1, 2, 4] if quick else [1, 2, 4, 8]}}


def run(quick=False, n_channels=64, timeout=None, hooks=None) -> dict:
    """Run every measurement of ``HOOKS`` (or of ``hooks``: label → (module, function, kwargs)).

    Returns ``{"status": "ok" | "error", ...}`` by label.
    """
    timeout = timeout or (120 if quick else 600)
    if hooks is None:
        kwargs = arguments(quick, n_channels)
        hooks = {label: (*target, kwargs[label]) for label, target in HOOKS.items()}
    results = {}
    for label, (module, function, kw) in hooks.items():
        arg = json.dumps([ROOT, module, function, kw])
        t0 = time.perf_counter()
        try:
            res = subprocess.run([sys.executable, "-c", CHILD, arg], env=child_env(),
                                 capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            results[label] = {"status": "error", "reason": f"no answer within {timeout} s"}
            continue
        lines = res.stdout.strip().splitlines()
        if res.returncode or not lines:
            err = (res.stderr.strip().splitlines() or ["no output"])[-1]
            results[label] = {"status": "error", "reason": err[:300]}
        else:
            results[label] = json.loads(lines[-1])
        results[label]["seconds"] = time.perf_counter() - t0
    return results
