"""Where eegkit's per-chunk time goes, measured by difference.

Each level adds one layer of eegkit around the plugin kernels and is timed alone on
the same chunks (median per chunk over interleaved rounds):

1. ``dispatch``: a compiled no-op taking the same arguments as each stage's kernel —
   the cost of crossing from Python into numba (argument type checks and unboxing);
2. ``kernels``: each stage's compiled ``process`` called directly on a copy of its
   real input (the copy is refreshed outside the timed call); the hand-written
   numba kernel of the same stage is timed alike, for comparison;
3. ``Stage.run``: the same through the guarded, timed ``Stage.run``;
4. ``push``: ``Pipeline.push(chunk, copy=False)`` — plan, input copies, lock, result dict;
5. ``push copy``: ``Pipeline.push(chunk)`` with its default copies of every output.

Only public names of Pipeline and Stage are used (``stages``, ``code.process``,
``state``, ``run``, ``push``), so the breakdown survives changes to the plan.
"""

from __future__ import annotations

import gc
import time

import numpy as np

from . import numba_ref
from . import workloads as wl
from .streaming import EegkitStream, make_chunks

_NOOPS: dict = {}


def noop(n_args):
    """A compiled function of ``n_args`` arguments that does nothing."""
    if n_args not in _NOOPS:
        import numba

        names = ", ".join(f"a{i}" for i in range(n_args))
        scope = {}
        exec(f"def noop({names}):\n    return None\n", scope)
        _NOOPS[n_args] = numba.njit(nogil=True)(scope["noop"])
    return _NOOPS[n_args]


def profile(data, sfreq, chunk, n_chunks, rounds=5) -> dict:
    """Per-chunk cost of each level (µs, median), and the overhead above the kernels.

    Returns
    -------
    dict
        ``levels``: level → µs per chunk; ``per_stage``: stage id → kernel and
        ``Stage.run`` µs; ``overhead``: named differences between levels.
    """
    n_channels, dtype = data.shape[0], data.dtype.name
    chunks = make_chunks(data, chunk)[:max(n_chunks, 2 * wl.WINDOW // chunk)]
    impl = EegkitStream(n_channels, sfreq, dtype, chunk, options=_unfused())
    pipeline = impl.pipeline
    stages = pipeline.stages
    for x in chunks:  # fill ring buffers and filter state as in the real stream
        pipeline.push(x)
    res = pipeline.push(chunks[0])
    inputs = [np.ascontiguousarray(res[s.input] if s.input != "source" else chunks[0])
              for s in stages]
    work = [a.copy() for a in inputs]
    for i, s in enumerate(stages):
        noop(1 + len(s.state))(work[i], *s.state)  # compile outside timing

    def floor():
        return [_timed(lambda: None, inputs[i], work[i]) for i in range(len(stages))]

    def dispatch():
        return [_timed(lambda w=work[i], s=s: noop(1 + len(s.state))(w, *s.state), inputs[i],
                       work[i]) for i, s in enumerate(stages)]

    def kernels():
        return [_timed(lambda w=work[i], s=s: s.code.process(w, *s.state), inputs[i], work[i])
                for i, s in enumerate(stages)]

    hand = _hand_kernels(n_channels, sfreq, dtype, chunk)
    hand_ids = [i for i, s in enumerate(stages) if s.id in hand]
    for i in hand_ids:
        hand[stages[i].id](work[i])  # compile outside timing

    def hand_kernels():
        return [_timed(lambda w=work[i], f=hand[stages[i].id]: f(w), inputs[i], work[i])
                for i in hand_ids]

    def runs():
        return [_timed(lambda w=work[i], s=s: s.run(w), inputs[i], work[i])
                for i, s in enumerate(stages)]

    per = {"floor": [], "dispatch": [], "kernels": [], "hand": [], "Stage.run": [], "push": [],
           "push copy": []}
    gc.collect()
    for _ in range(rounds):
        for _ in range(n_chunks // rounds or 1):
            per["floor"].append(floor())
            per["dispatch"].append(dispatch())
            per["kernels"].append(kernels())
            per["hand"].append(hand_kernels())
            per["Stage.run"].append(runs())
        per["push"] += [[t] for t in _push_times(pipeline, chunks, n_chunks // rounds or 1, False)]
        per["push copy"] += [[t] for t in _push_times(pipeline, chunks, n_chunks // rounds or 1, True)]
    # the timing lambda's own cost, taken off the per-stage levels
    floor_ns = np.array(per.pop("floor"))
    for key in ("dispatch", "kernels", "Stage.run"):
        per[key] = np.array(per[key]) - np.median(floor_ns, axis=0)
    per["hand"] = np.array(per["hand"]) - np.median(floor_ns[:, hand_ids], axis=0)
    levels = {k: float(np.median(np.sum(v, axis=1))) / 1e3 for k, v in per.items() if k != "hand"}
    per_stage = {s.id: {"dispatch_us": float(np.median(per["dispatch"][:, i])) / 1e3,
                        "kernel_us": float(np.median(per["kernels"][:, i])) / 1e3,
                        "stage_run_us": float(np.median(per["Stage.run"][:, i])) / 1e3,
                        "hand_kernel_us": (float(np.median(per["hand"][:, hand_ids.index(i)])) / 1e3
                                           if i in hand_ids else None)}
                 for i, s in enumerate(stages)}
    copy_us = _copy_cost(chunks[0])
    plan = _describe(pipeline)
    return {"chunk": chunk, "dtype": dtype, "levels": levels, "per_stage": per_stage,
            "plan": plan, "copy_one_chunk_us": copy_us,
            "timing_floor_us": float(np.median(floor_ns.sum(axis=1))) / 1e3,
            "overhead": {
                "numba dispatch (all stages)": levels["dispatch"],
                "kernel compute (kernels - dispatch)": levels["kernels"] - levels["dispatch"],
                "Stage.run guard/timing (Stage.run - kernels)": levels["Stage.run"] - levels["kernels"],
                "pipeline glue (push - Stage.run): plan, copies, lock, dict": levels["push"] - levels["Stage.run"],
                "total framework (push - kernels)": levels["push"] - levels["kernels"],
                "output copies (push copy - push)": levels["push copy"] - levels["push"]}}


def _hand_kernels(n_channels, sfreq, dtype, chunk):
    """Stage id → the hand-written numba kernel doing that stage's work on a block."""
    ns = numba_ref.NumbaStages(n_channels, sfreq, dtype, chunk)
    b = ns.band
    return {"bp": lambda w: numba_ref.sos_inplace(w, ns.sos_bp, *ns.zi_bp, ns.tile),
            "notch": lambda w: numba_ref.sos_inplace(w, ns.sos_notch, *ns.zi_notch, ns.tile),
            "car": numba_ref.car_inplace,
            "alpha": lambda w: numba_ref.band_power(w, b.ring, b.count, *b.args, b.out)}


def _unfused():
    """Pipeline options that keep every stage a separate call."""
    import inspect

    import eegkit

    return {"fuse": False} if "fuse" in inspect.signature(eegkit.Pipeline).parameters else {}


def _timed(call, src, work):
    """ns of ``call()`` after refreshing ``work`` from ``src`` (outside the timing)."""
    np.copyto(work, src)
    t0 = time.perf_counter_ns()
    call()
    return time.perf_counter_ns() - t0


def _push_times(pipeline, chunks, n, copy):
    """ns of ``n`` pushes."""
    push, clock, out = pipeline.push, time.perf_counter_ns, []
    for k in range(n):
        x = chunks[k % len(chunks)]
        t0 = clock()
        push(x, copy=copy)
        out.append(clock() - t0)
    return out


def _copy_cost(chunk):
    """µs of one ``np.copyto`` of a chunk into a preallocated buffer (median)."""
    buf = np.empty_like(chunk)
    times = []
    for _ in range(2000):
        t0 = time.perf_counter_ns()
        np.copyto(buf, chunk)
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e3


def _describe(pipeline):
    """The pipeline's execution plan, when it can describe it."""
    try:
        return pipeline.plan().describe()
    except Exception:  # noqa: BLE001 - an older or newer core: the plan is informative only
        return None
