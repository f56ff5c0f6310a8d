"""Streaming benchmark: per-chunk latency of eegkit and the baselines, interleaved.

All implementations see the same chunks, in rounds: each round visits every
implementation in a shuffled order and gives it the next ``ROUND`` chunks, so slow
phases of a noisy machine fall on all of them alike. Every chunk is timed on its
own (``perf_counter_ns`` around one call); the band power each implementation
returns is kept (outside the timed call) and checked against scipy at the end.
Beside wall time, the thread's CPU time around each call is kept: on a shared
machine a chunk preempted by another process is slow in wall time only, while
eegkit's own jitter (garbage collection, allocation) shows in both.
"""

from __future__ import annotations

import functools
import gc
import inspect
import time

import numpy as np

from . import numba_ref, scipy_ref
from . import workloads as wl

ROUND = 64          # chunks per implementation per turn
STREAM = 65536      # samples of input cycled through (a multiple of every chunk size)
# agreement with scipy: float64 to rounding; float32 stores each stage's output in float32
TOLERANCE = {"float64": 1e-8, "float32": 2e-3}


class BenchError(RuntimeError):
    """The benchmark cannot measure what it claims (a stage is disabled, a check failed)."""


class EegkitStream:
    """eegkit through its public API: ``Pipeline(...).add(...)``, ``push(chunk, copy=False)``."""

    def __init__(self, n_channels, sfreq, dtype, chunk, name="eegkit", options=None,
                 push_options=None):
        import eegkit

        self.name = name
        self.pipeline = eegkit.Pipeline(**(options or {}))
        wl.add_stages(self.pipeline, chunk)
        self.pipeline.open(eegkit.StreamInfo(sfreq, wl.channel_names(n_channels), dtype=dtype))
        check_enabled(self.pipeline)
        self.step = functools.partial(self.pipeline.push, copy=False, **(push_options or {}))
        self._last = None

    def band(self, result):
        """Band-power vector of a push result, or None."""
        self._last = result
        alpha = result["alpha"]
        return alpha[:, -1] if alpha.shape[1] else None

    def car_output(self):
        """The last chunk after CAR (None when this variant does not return it)."""
        return self._last.get("car") if self._last is not None else None

    def plan(self):
        """How the pipeline runs a chunk for this variant's outputs, when it can say."""
        outputs = self.step.keywords.get("outputs")
        try:
            return self.pipeline.plan(outputs).describe()
        except Exception:  # noqa: BLE001 - informative only, absent from older cores
            return None


def check_enabled(pipeline) -> None:
    """Raise when a stage is disabled: its timing would be a pass-through, not the work."""
    bad = [s for s in pipeline.status() if s["status"] != "ok"]
    if bad:
        raise BenchError("eegkit stage(s) disabled, nothing honest to time: " +
                         "; ".join(f"{s['id']}: {s['error']}" for s in bad))


class _Baseline:
    """Adapter giving a baseline the ``step``/``band``/``car_output`` interface."""

    def __init__(self, impl):
        self.impl, self.name = impl, impl.name
        self.step = impl.step
        self.car_output = impl.car_output

    @staticmethod
    def band(result):
        return None if result is None else result.copy()


def eegkit_variants() -> list:
    """``(name, Pipeline options, push options)`` of the eegkit configurations timed.

    ``eegkit``: every stage its own compiled call (``fuse=False``), asked for the band
    power (``push(..., outputs=["alpha"])``) like the hand-written per-stage numba,
    which keeps no intermediate result either (so stages after the first work in
    place). ``eegkit, every output``: the same, returning every stage's output (each
    stage copies its input). ``eegkit fused``: the default pipeline asked for the band
    power, so it fuses the stages in between, as compared with the hand-fused numba.
    Options the installed Pipeline does not offer are left out (and the fused
    variant is skipped when neither exists).
    """
    import eegkit

    takes = inspect.signature(eegkit.Pipeline).parameters
    push_takes = inspect.signature(eegkit.Pipeline.push).parameters
    only_alpha = {"outputs": ["alpha"]} if "outputs" in push_takes else {}
    variants = [("eegkit", {"fuse": False} if "fuse" in takes else {}, only_alpha),
                ("eegkit, every output", {"fuse": False} if "fuse" in takes else {}, {})]
    if "fuse" in takes or "outputs" in push_takes:
        variants.append(("eegkit fused", {"fuse": True} if "fuse" in takes else {},
                         {"outputs": ["alpha"]} if "outputs" in push_takes else {}))
    return variants


def make_chunks(data, chunk):
    """Contiguous chunks cycling through ``data`` (each turn times a fresh copy of one)."""
    return [np.ascontiguousarray(data[:, i:i + chunk]) for i in range(0, data.shape[1], chunk)]


def build(n_channels, sfreq, dtype, chunk):
    """Every implementation, freshly opened."""
    impls = [_Baseline(scipy_ref.ScipyStream(n_channels, sfreq, dtype, chunk)),
             _Baseline(scipy_ref.ScipyPeriodogram(n_channels, sfreq, dtype, chunk)),
             _Baseline(numba_ref.NumbaStages(n_channels, sfreq, dtype, chunk)),
             _Baseline(numba_ref.NumbaFused(n_channels, sfreq, dtype, chunk))]
    for name, options, push_options in eegkit_variants():
        impls.append(EegkitStream(n_channels, sfreq, dtype, chunk, name, options, push_options))
    return impls


def run_config(data, sfreq, chunk, n_chunks, seed=0, extra=()) -> dict:
    """Time every implementation on ``n_chunks`` chunks of ``chunk`` samples.

    ``extra``: more objects with ``name``, ``step(chunk)`` (returning the band-power
    vector or None) and ``car_output()``, timed and checked like the baselines.

    Returns
    -------
    dict
        ``impls``: name → latency statistics; ``ratios``; ``checks``: name → agreement
        with scipy; ``eegkit_stats``: ``Pipeline.stats()`` after the run.
    """
    if wl.WINDOW % chunk:
        raise BenchError(f"chunk {chunk} must divide the window ({wl.WINDOW}) so every chunk "
                         f"completes exactly one window")
    n_channels, dtype = data.shape[0], data.dtype.name
    chunks = make_chunks(data[:, :STREAM - STREAM % chunk], chunk)
    impls = build(n_channels, sfreq, dtype, chunk) + [_Baseline(e) for e in extra]
    n_warm = max(2 * wl.WINDOW // chunk, ROUND)
    total = n_warm + n_chunks
    bands = {im.name: np.full((total, n_channels), np.nan) for im in impls}
    times = {im.name: np.zeros(total, dtype=np.int64) for im in impls}
    cpu = {im.name: np.zeros(total, dtype=np.int64) for im in impls}
    rng = np.random.default_rng(seed)
    gc.collect()
    for start in range(0, total, ROUND):
        stop = min(start + ROUND, total)
        for i in rng.permutation(len(impls)):
            name = impls[i].name
            _turn(impls[i], chunks, start, stop, times[name], cpu[name], bands[name])
    period_us = chunk / sfreq * 1e6
    stats = {name: latency(t[n_warm:], period_us, cpu[name][n_warm:]) for name, t in times.items()}
    eegkit_impl = next(im for im in impls if im.name == "eegkit")
    plans = {im.name: im.plan() for im in impls if isinstance(im, EegkitStream)}
    return {"chunk": chunk, "dtype": dtype, "n_channels": n_channels, "n_chunks": n_chunks,
            "n_warmup": n_warm, "impls": stats, "ratios": ratios(stats),
            "checks": checks(impls, bands, dtype), "eegkit_plans": plans,
            "eegkit_stats": eegkit_impl.pipeline.stats()}


def _turn(impl, chunks, start, stop, times, cpu, bands):
    """Chunks ``start..stop`` through one implementation, each timed alone: wall time,
    and this thread's CPU time around it (which a preempted chunk does not inflate)."""
    step, band, n = impl.step, impl.band, len(chunks)
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for k in range(start, stop):
        x = chunks[k % n].copy()  # a fresh array per chunk, as an acquisition driver hands over
        c0 = cpu_clock()
        t0 = clock()
        result = step(x)
        t1 = clock()
        cpu[k] = cpu_clock() - c0
        times[k] = t1 - t0
        b = band(result)
        if b is not None:
            bands[k] = b


def latency(ns, period_us, cpu_ns) -> dict:
    """Wall time median, p90, p99, mean (µs), p99/median, share of chunks slower than
    3 × median (%), times faster than real time;
    and the thread CPU time's median and p99 (it includes the CPU clock's own cost)."""
    us = ns / 1e3
    med = float(np.median(us))
    p99 = float(np.percentile(us, 99))
    cpu_med = float(np.median(cpu_ns)) / 1e3
    cpu_p99 = float(np.percentile(cpu_ns, 99)) / 1e3
    return {"median_us": med, "p90_us": float(np.percentile(us, 90)), "p99_us": p99,
            "slow_pct": float(np.mean(us > 3 * med) * 100),
            "mean_us": float(us.mean()), "cpu_median_us": cpu_med, "cpu_p99_us": cpu_p99,
            "cpu_p99_over_median": cpu_p99 / cpu_med,
            "max_us": float(us.max()), "p99_over_median": p99 / med,
            "x_realtime": period_us / med}


def ratios(stats) -> dict:
    """The ratios the issue's targets are stated in (median latency)."""
    med = {k: v["median_us"] for k, v in stats.items()}
    out = {"eegkit / numba per-stage": med["eegkit"] / med["numba per-stage"],
           "eegkit / numba fused": med["eegkit"] / med["numba fused"],
           "scipy / eegkit": med["scipy"] / med["eegkit"],
           "scipy periodogram / eegkit": med["scipy periodogram"] / med["eegkit"]}
    if "eegkit fused" in med:
        out["eegkit fused / numba fused"] = med["eegkit fused"] / med["numba fused"]
        out["scipy / eegkit fused"] = med["scipy"] / med["eegkit fused"]
    return out


def checks(impls, bands, dtype) -> dict:
    """Each implementation's band powers and last CAR chunk against scipy's."""
    tol = TOLERANCE[dtype]
    ref_bands = bands["scipy"]
    ref_car = next(im for im in impls if im.name == "scipy").car_output()
    ok = ~np.isnan(ref_bands)
    out = {}
    for im in impls:
        if im.name == "scipy":
            continue
        got = bands[im.name]
        msg = None
        if not np.array_equal(np.isnan(got), np.isnan(ref_bands)):
            msg = "band power emitted on different chunks than scipy"
        elif np.all(np.isnan(ref_bands)):
            msg = "no band power was emitted: nothing to compare"
        else:
            car = im.car_output()
            msg = (_compare(got[ok], ref_bands[ok], tol, "band power")
                   or (None if car is None else _compare(car, ref_car, tol, "last CAR chunk")))
        err = (np.max(np.abs(np.nan_to_num(got[ok]) - ref_bands[ok])) / np.max(np.abs(ref_bands[ok]))
               if ok.any() else float("nan"))
        out[im.name] = {"ok": msg is None, "max_rel_err": float(err), "rtol": tol,
                        "n_windows": int(ok.all(axis=1).sum()),
                        "checked": "band power" + ("" if im.car_output() is None else " + last CAR chunk"),
                        "message": msg}
    return out


def _compare(got, ref, tol, what):
    """None when ``got`` ≈ ``ref`` (relative to the largest magnitude), else a message."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    try:
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * float(np.max(np.abs(ref))))
    except AssertionError as exc:
        return f"{what} differs from scipy: " + " ".join(str(exc).split())[:300]
    return None
