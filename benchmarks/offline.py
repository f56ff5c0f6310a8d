"""Offline benchmark: band-pass + notch + CAR over a whole recording held in memory.

For each duration and dtype the recording is generated once (in 60 s blocks), then
every implementation turns it into a new filtered array of the same shape, in
interleaved rounds. A plain copy of the array is the floor. Outputs are checked
against scipy's on a sample of columns (the last 2 s of every minute and the very
end), so no two full-size outputs are ever held at once.
"""

from __future__ import annotations

import gc
import resource
import sys
import time

import numpy as np

from . import numba_ref, scipy_ref
from . import workloads as wl
from .streaming import TOLERANCE

SAMPLE_EVERY = 60_000   # check columns: the last SAMPLE_LEN of every minute
SAMPLE_LEN = 2_000


class EegkitOffline:
    """``Pipeline.process(x, outputs=["car"])`` on one pipeline built beforehand.

    As for the baselines, compilation is kept out of the timing: :meth:`warm_up`
    runs ``process`` once on one second of data of each dtype (the first call of a
    pipeline builds its plan and may compile a fused kernel).
    """

    def __init__(self):
        import eegkit

        self.pipeline = eegkit.Pipeline()
        wl.add_stages(self.pipeline, None)

    def warm_up(self, n_channels, sfreq, dtypes) -> float:
        """Seconds of the first ``process`` call per dtype (compile, plan)."""
        t0 = time.perf_counter()
        for dtype in dtypes:
            self(wl.EegGenerator(n_channels, sfreq).make(int(sfreq), dtype), sfreq)
        return time.perf_counter() - t0

    def __call__(self, x, sfreq):
        names = wl.channel_names(x.shape[0])
        return self.pipeline.process(x, sfreq=sfreq, ch_names=names, outputs=["car"])["car"]


IMPLS = {
    "memory copy (floor)": lambda x, sfreq: x.copy(),
    "scipy": scipy_ref.offline,
    "numba per-stage (1 thread)": numba_ref.offline_stages,
    "numba fused (parallel)": numba_ref.offline_fused_parallel,
}


def sample_columns(n_samples):
    """Column indices compared between implementations."""
    idx = [np.arange(max(0, s - SAMPLE_LEN), s)
           for s in range(SAMPLE_EVERY, n_samples + 1, SAMPLE_EVERY)]
    idx.append(np.arange(max(0, n_samples - SAMPLE_LEN), n_samples))
    return np.unique(np.concatenate(idx))


def run_duration(x, sfreq, repeats, impls, seed=0) -> dict:
    """Time every implementation on the recording ``x`` (``repeats`` interleaved rounds).

    Returns
    -------
    dict
        ``impls``: name → seconds (best and median of the rounds), × real time,
        ratios; ``checks``: name → agreement with scipy on the sampled columns.
    """
    seconds = x.shape[1] / sfreq
    cols = sample_columns(x.shape[1])
    times = {name: [] for name in impls}
    samples = {}
    rng = np.random.default_rng(seed)
    names = list(impls)
    for _ in range(repeats):
        for i in rng.permutation(len(names)):
            name = names[i]
            gc.collect()
            t0 = time.perf_counter()
            out = impls[name](x, sfreq)
            times[name].append(time.perf_counter() - t0)
            if name not in samples:
                samples[name] = np.asarray(out[:, cols], dtype=np.float64)
            del out
    res = {}
    for name, t in times.items():
        best = float(min(t))
        res[name] = {"seconds": best, "median_s": float(np.median(t)), "runs": [float(v) for v in t],
                     "x_realtime": seconds / best}
    for name in res:
        res[name]["scipy / this"] = res["scipy"]["seconds"] / res[name]["seconds"]
        res[name]["this / eegkit"] = res[name]["seconds"] / res["eegkit"]["seconds"]
    return {"seconds_of_data": seconds, "dtype": x.dtype.name, "n_channels": x.shape[0],
            "gigabytes": x.nbytes / 1e9, "repeats": repeats, "impls": res,
            "checks": _checks(samples, x, cols, x.dtype.name)}


def _checks(samples, x, cols, dtype):
    """Every output against scipy's on the sampled columns; the floor against the input."""
    tol = TOLERANCE[dtype]
    ref = samples["scipy"]
    scale = float(np.max(np.abs(ref)))
    out = {}
    for name, got in samples.items():
        if name == "scipy":
            continue
        want = np.asarray(x[:, cols], dtype=np.float64) if "copy" in name else ref
        err = float(np.max(np.abs(got - want)) / max(scale, 1e-300))
        try:
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * float(np.max(np.abs(want))))
            msg = None
        except AssertionError as exc:
            msg = "differs from scipy: " + " ".join(str(exc).split())[:300]
        out[name] = {"ok": msg is None, "max_rel_err": err, "rtol": tol,
                     "n_columns": int(cols.size), "message": msg}
    return out


def run(durations, sfreq, n_channels, repeats, dtypes=("float64", "float32"), log=print) -> list:
    """Every duration × dtype (float64 first: float32 is cast from it, then it is freed)."""
    results = []
    gen = wl.EegGenerator(n_channels, sfreq)
    impls = dict(IMPLS, eegkit=EegkitOffline())
    first_call = impls["eegkit"].warm_up(n_channels, sfreq, dtypes)
    for seconds in durations:
        n = int(round(seconds * sfreq))
        t0 = time.perf_counter()
        x = gen.make(n, "float64")
        log(f"offline: generated {seconds:g} s x {n_channels} ch ({x.nbytes / 1e9:.2f} GB) "
            f"in {time.perf_counter() - t0:.1f} s")
        for dtype in dtypes:
            if x.dtype != dtype:
                x = x.astype(dtype)  # rebinding frees the float64 recording
            r = run_duration(x, sfreq, repeats[seconds] if isinstance(repeats, dict) else repeats,
                             impls)
            r["peak_rss_gb"] = peak_rss_gb()
            r["eegkit_first_calls_s"] = first_call
            results.append(r)
            best = {k: round(v["seconds"], 3) for k, v in r["impls"].items()}
            log(f"offline: {seconds:g} s {dtype}: {best}")
        del x
        gc.collect()
    return results


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (GB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1e9 if sys.platform == "darwin" else 1e6)
