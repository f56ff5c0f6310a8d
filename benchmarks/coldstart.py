"""Cold start: each measurement in a fresh Python process.

* ``python -c pass`` and ``python -c "import eegkit"``: wall time of the whole process;
* inside one child (which imports nothing else): ``import eegkit``, discovery
  (``PluginManager()``: plugin folders and entry points), building the workload pipeline (``add`` ×4 + ``open``: module import, numba compile or cache
  load, warm-up, plans), and the first ``push(chunk, copy=False, outputs=[last stage])``
  as a driver calls it;
* time to first processed chunk: from the parent starting the child to the child
  having the first chunk's output — interpreter start-up included;

with the numba cache warm (``EEGKIT_CACHE_DIR`` filled by an earlier child) and
empty (a new temporary ``EEGKIT_CACHE_DIR``). ``eegkit plugins build`` is timed
with an empty cache when the installed CLI has it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import workloads as wl

CHILD = r"""
import json, time
t0 = time.perf_counter()
import eegkit
t_import = time.perf_counter()
import numpy as np
manager = eegkit.PluginManager()
t_discover = time.perf_counter()
p = eegkit.Pipeline(plugins=manager)
for id, (type, params) in {stages!r}.items():
    p.add(type, id=id, **params)
p.open(eegkit.StreamInfo({sfreq!r}, {names!r}))
t_load = time.perf_counter()
out = p.push(np.zeros(({n_channels}, {chunk})), copy=False, outputs=[list({stages!r})[-1]])
t_first = time.perf_counter()
bad = [s["id"] + ": " + str(s["error"]) for s in p.status() if s["status"] != "ok"]
print(json.dumps({{"import_s": t_import - t0, "discovery_s": t_discover - t_import,
                  "stage_load_s": t_load - t_discover, "first_push_s": t_first - t_load,
                  "in_process_to_first_chunk_s": t_first - t0, "wall_end": time.time(),
                  "disabled": bad}}))
"""


def child_env(cache_dir=None) -> dict:
    """Environment of a child: this eegkit first on the path, optionally its cache dir."""
    import eegkit

    env = os.environ.copy()
    root = str(Path(eegkit.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if cache_dir is not None:
        env["EEGKIT_CACHE_DIR"] = str(cache_dir)
    return env


def _wall(args, env, timeout=300):
    """Wall seconds of one child process; raises on failure."""
    t0 = time.perf_counter()
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(f"{' '.join(args[:3])} failed ({res.returncode}): {res.stderr[-800:]}")
    return dt, res


def _pipeline_child(env, n_channels, chunk):
    """Run the pipeline child; its timings plus spawn-to-first-chunk wall time."""
    code = CHILD.format(n_channels=n_channels, chunk=chunk, stages=wl.stage_params(chunk),
                        sfreq=wl.SFREQ, names=wl.channel_names(n_channels))
    start = time.time()
    _, res = _wall([sys.executable, "-c", code], env)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["spawn_to_first_chunk_s"] = out.pop("wall_end") - start
    return out


def _median(rows, key):
    return float(np.median([r[key] for r in rows]))


def run(repeats=3, n_channels=64, chunk=32, build=True) -> dict:
    """Every cold-start measurement (median of ``repeats`` children each)."""
    env = child_env()
    py = sys.executable
    bare = [_wall([py, "-c", "pass"], env)[0] for _ in range(repeats)]
    imp = [_wall([py, "-c", "import eegkit"], env)[0] for _ in range(repeats)]
    result = {"python_bare_s": float(np.median(bare)), "python_import_eegkit_s": float(np.median(imp)),
              "import_eegkit_s": float(np.median(imp) - np.median(bare)), "repeats": repeats}
    # what stage loading spends importing dependencies (numba; scipy.signal for the filters)
    base = float(np.median([_wall([py, "-c", "import numpy"], env)[0] for _ in range(repeats)]))
    for module in ("numba", "scipy.signal"):
        t = [_wall([py, "-c", f"import numpy, {module}"], env)[0] for _ in range(repeats)]
        result[f"import_{module}_s"] = float(np.median(t)) - base
    with tempfile.TemporaryDirectory(prefix="eegkit-bench-cache-") as warm_dir:
        warm_env = child_env(warm_dir)
        first = _pipeline_child(warm_env, n_channels, chunk)  # fills the cache
        warm = [_pipeline_child(warm_env, n_channels, chunk) for _ in range(repeats)]
    cold = []
    for _ in range(max(1, repeats - 1)):
        with tempfile.TemporaryDirectory(prefix="eegkit-bench-cache-") as cold_dir:
            cold.append(_pipeline_child(child_env(cold_dir), n_channels, chunk))
    cold.append(first)
    disabled = sorted({d for r in warm + cold for d in r["disabled"]})
    keys = ("import_s", "discovery_s", "stage_load_s", "first_push_s",
            "in_process_to_first_chunk_s", "spawn_to_first_chunk_s")
    result["warm_cache"] = {k: _median(warm, k) for k in keys}
    result["empty_cache"] = {k: _median(cold, k) for k in keys}
    result["disabled_stages"] = disabled
    result["plugins_build_s"] = _plugins_build(repeats) if build else None
    return result


def _plugins_build(repeats):
    """Seconds of ``eegkit plugins build`` with an empty cache, or None when absent."""
    times = []
    for _ in range(max(1, repeats - 1)):
        with tempfile.TemporaryDirectory(prefix="eegkit-bench-cache-") as d:
            env = child_env(d)
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "eegkit", "plugins", "build"], env=env,
                                 capture_output=True, text=True, timeout=600)
            dt = time.perf_counter() - t0
        if res.returncode == 2 and "invalid choice" in res.stderr:
            return None  # this eegkit has no ``plugins build``
        if res.returncode:
            return {"error": f"exit {res.returncode}: {res.stderr.strip()[-300:]}"}
        times.append(dt)
    return float(np.median(times))
