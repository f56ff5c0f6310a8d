"""Measurements other parts of eegkit offer, run when present, else reported "n/a".

A module offering a measurement names it as in ``HOOKS`` and returns a JSON-able
dict (or number); e.g. ``eegkit.live._reload.latency(n_channels=64, chunk=32, quick=False)``.
Each hook runs in its own child process (with a time limit), so a hook that starts
workers, sockets or threads cannot disturb the rest of the benchmark. Keyword
arguments are offered by name and passed only when the function takes them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .coldstart import child_env

# name → (module, candidate function names)
HOOKS = {
    "widget frame cost": ("eegkit.notebook._widget", ("frame_cost",)),
    "isolation overhead": ("eegkit.runtime._isolate", ("overhead",)),
    "hot-reload latency": ("eegkit.live._reload", ("latency", "reload_latency", "measure_latency",
                                               "benchmark", "measure")),
    "batch throughput": ("eegkit.batching._client", ("throughput",)),
}

CHILD = r"""
import importlib, inspect, json, sys
name, candidates, offered = json.loads(sys.argv[1])
try:
    module = importlib.import_module(name)
except ModuleNotFoundError as exc:
    if exc.name == name:
        print(json.dumps({"status": "n/a", "reason": f"no module {name}"})); sys.exit(0)
    raise
fn = next((getattr(module, c) for c in candidates if callable(getattr(module, c, None))), None)
if fn is None:
    print(json.dumps({"status": "n/a", "reason": f"{name} has none of {', '.join(candidates)}"}))
    sys.exit(0)
params = inspect.signature(fn).parameters
kwargs = {k: v for k, v in offered.items() if k in params}
value = fn(**kwargs)
print(json.dumps({"status": "ok", "function": f"{name}.{fn.__name__}", "kwargs": kwargs,
                  "value": value}, default=str))
"""


def offered_kwargs(quick: bool, n_channels: int) -> dict:
    """Arguments a hook may take (by name)."""
    return {"n_channels": n_channels, "sfreq": 1000.0, "chunk": 32, "fps": 30.0, "view": "scope",
            "n_frames": 60 if quick else 300, "quick": quick,
            "n_chunks": 500 if quick else 5000, "repeats": 1 if quick else 3}


def run(quick=False, n_channels=64, timeout=None, hooks=None) -> dict:
    """Every hook (``hooks``: a subset or other entries of the form of ``HOOKS``):
    ``{"status": "ok"|"n/a"|"error", ...}`` by name."""
    timeout = timeout or (120 if quick else 600)
    results = {}
    for label, (module, candidates) in (HOOKS if hooks is None else hooks).items():
        arg = json.dumps([module, list(candidates), offered_kwargs(quick, n_channels)])
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
