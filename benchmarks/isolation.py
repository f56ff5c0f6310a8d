"""Isolation overhead: per-chunk cost of running a stage in a child process."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from eegkit import Pipeline, PluginManager, StageError, StreamInfo

_PROBE_TOML = """[plugin]
name = "isolation_probe"
version = "1.0.0"
api = "1.0"
description = "A no-op in-place stage, to measure the cost of process isolation."

[[stage]]
type = "isolation_probe.touch"
module = "stage.py"
"""
_PROBE_PY = """def process(x):
    x[0, 0] += 0.0
"""


def overhead(n_channels: int = 64, chunk: int = 32, n: int = 2000, dtype: str = "float64") -> dict:
    """Per-chunk cost of running a stage in a child process.

    Times ``Stage.run`` of a no-op in-place kernel, in this process and isolated,
    over ``n`` chunks of ``(n_channels, chunk)`` samples.

    Returns
    -------
    dict
        ``inprocess_median_us``, ``inprocess_p99_us``, ``isolated_median_us``,
        ``isolated_p99_us``, ``overhead_median_us`` (isolated minus in-process),
        ``child_start_s`` (start, import and compile of the child), and the inputs.
    """
    root = Path(tempfile.gettempdir()) / f"eegkit-isolation-probe-{os.getuid()}"
    folder = root / "isolation_probe"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("plugin.toml", _PROBE_TOML), ("stage.py", _PROBE_PY)):
        if not (folder / name).is_file() or (folder / name).read_text() != text:
            (folder / name).write_text(text)
    manager = PluginManager(paths=[root], entry_points=False)
    info = StreamInfo(250.0, [f"ch{i}" for i in range(n_channels)], dtype=dtype)
    x = np.random.default_rng(0).standard_normal((n_channels, chunk)).astype(dtype)
    result = {"n_channels": n_channels, "chunk": chunk, "n": n, "dtype": dtype}
    for mode in ("none", "process"):
        pipe = Pipeline(plugins=manager)
        stage = pipe.add("isolation_probe.touch", id="probe", isolation=mode)
        t0 = time.perf_counter()
        pipe.open(info)
        start = time.perf_counter() - t0
        if stage.status != "ok":
            raise StageError(f"overhead(): the probe stage failed: {stage.error}")
        times = np.empty(n)
        block = x.copy()
        for _ in range(min(200, n)):
            stage.run(block)
        for i in range(n):
            t = time.perf_counter_ns()
            stage.run(block)
            times[i] = time.perf_counter_ns() - t
        key = "inprocess" if mode == "none" else "isolated"
        result[f"{key}_median_us"] = float(np.median(times) / 1e3)
        result[f"{key}_p99_us"] = float(np.percentile(times, 99) / 1e3)
        if mode == "process":
            result["child_start_s"] = start
            stage.code.close()
    result["overhead_median_us"] = result["isolated_median_us"] - result["inprocess_median_us"]
    result["overhead_p99_us"] = result["isolated_p99_us"] - result["inprocess_p99_us"]
    return result
