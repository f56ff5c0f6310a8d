"""Execution plan of a pipeline for one set of observed outputs.

The plan decides, once per layout change, what each chunk costs:

- a stage gets its own copy of its input only when it must: the input is the
  caller's chunk, is read by another stage too, is observed (returned, tapped,
  recorded), or comes from a kernel that returns new arrays;
- a chain of in-place compiled stages whose intermediate outputs nobody observes
  is fused into one compiled call (generated here, cached per kernel chain).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from . import _numba

_FUSED: dict = {}
_FUSED_LOCK = threading.Lock()


class Buffer:
    """A stage's own input block: one flat allocation, reshaped per chunk size."""

    __slots__ = ("rows", "flat", "dtype", "view")

    def __init__(self, rows: int, dtype):
        self.rows = rows
        self.dtype = np.dtype(dtype)
        self.flat = np.empty(rows * 256, dtype=self.dtype)
        self.view = self.flat[:0].reshape(rows, 0)

    def fill(self, src: np.ndarray) -> np.ndarray:
        """Copy ``src`` in and return the filled C-contiguous view."""
        n = src.shape[1]
        view = self.view
        if view.shape[1] != n:
            if self.rows * n > self.flat.size:
                self.flat = np.empty(self.rows * n, dtype=self.dtype)
            view = self.view = self.flat[:self.rows * n].reshape(self.rows, n)
        np.copyto(view, src, casting="same_kind")
        return view


class Plan:
    """Steps that turn one input chunk into every observed output.

    Parameters
    ----------
    stages : list of Stage
        In pipeline order (inputs come first).
    observed : set of str or None
        Stage ids whose outputs must be kept intact (None: every stage).
    fuse : bool
        Fuse chains of in-place compiled stages.
    """

    def __init__(self, stages, observed=None, fuse=True):
        self.slots = {"source": 0}
        for i, stage in enumerate(stages):
            self.slots[stage.id] = i + 1
        self.n_slots = len(stages) + 1
        consumers = {}
        for stage in stages:
            consumers.setdefault(stage.input, []).append(stage.id)
        if observed is None:
            observed = {s.id for s in stages}
        observed = set(observed) | {s.id for s in stages if s.taps}

        def private(stage):
            """True when ``stage`` may work in place on its input's array."""
            src = stage.input
            if src == "source" or src in observed or len(consumers.get(src, ())) != 1:
                return False
            up = stages[self.slots[src] - 1]
            return up.in_place

        for stage in stages:
            stage.fused_with = ()
        self.steps = []
        i = 0
        fuse = fuse and not _numba.jit_disabled()
        while i < len(stages):
            group = [stages[i]]
            while (fuse and i + len(group) < len(stages) and _fusable(group[-1])
                   and stages[i + len(group)].input == group[-1].id
                   and group[-1].id not in observed
                   and len(consumers.get(group[-1].id, ())) == 1
                   and _fusable(stages[i + len(group)])):
                group.append(stages[i + len(group)])
            if len(group) > 1 and all(_fusable(s) for s in group):
                self.steps.append(FusedStep(group, self.slots[group[0].input],
                                            None if private(group[0]) else
                                            Buffer(group[0].in_info.n_channels, group[0].in_info.dtype),
                                            self.slots[group[-1].id]))
            else:
                group = group[:1]
                stage = group[0]
                buf = None if private(stage) else Buffer(stage.in_info.n_channels,
                                                         stage.in_info.dtype)
                self.steps.append(StageStep(stage, self.slots[stage.input], buf,
                                            self.slots[stage.id]))
            i += len(group)

    def run(self, x: np.ndarray) -> list:
        """Outputs by slot: ``[x, out_1, ...]``; None for fused intermediates."""
        outs = [None] * self.n_slots
        outs[0] = x
        for step in self.steps:
            step.run(outs)
        return outs

    def describe(self) -> list:
        """One line per step (for ``stats()`` and debugging)."""
        return [step.describe() for step in self.steps]


def _fusable(stage) -> bool:
    return (stage.status == "ok" and stage.in_place and not stage.taps
            and _numba.is_compiled(stage.code.process)
            and getattr(stage, "isolation", "none") == "none")


class StageStep:
    """One stage, called through its guarded ``Stage.run``."""

    __slots__ = ("stage", "src", "buf", "slot", "taps")

    def __init__(self, stage, src, buf, slot):
        self.stage, self.src, self.buf, self.slot = stage, src, buf, slot

    def run(self, outs):
        x = outs[self.src]
        if self.buf is not None:
            x = self.buf.fill(x)
        stage = self.stage
        out = outs[self.slot] = stage.run(x)
        if stage.taps:
            stage.call_taps(out)

    def describe(self):
        copy = "copy" if self.buf is not None else "in place"
        return f"{self.stage.id} ({copy})"


class FusedStep:
    """A chain of in-place compiled stages run as one compiled call."""

    __slots__ = ("stages", "src", "buf", "slot", "fn", "args")

    def __init__(self, stages, src, buf, slot):
        self.stages, self.src, self.buf, self.slot = stages, src, buf, slot
        self.fn = fused_kernel([s.code.process for s in stages], [len(s.state) for s in stages])
        self.args = tuple(a for s in stages for a in s.state)
        for s in stages:
            s.fused_with = tuple(t.id for t in stages)

    def run(self, outs):
        x = outs[self.src]
        if self.buf is not None:
            x = self.buf.fill(x)
        t0 = time.perf_counter_ns()
        failed = self.fn(x, *self.args)
        elapsed = time.perf_counter_ns() - t0
        if failed >= 0:
            self._fail(failed, x)
        else:
            last = self.stages[-1]
            for s in self.stages[:-1]:
                s.count(x.shape[1], x.shape[1], None)
            last.count(x.shape[1], x.shape[1], elapsed)
        outs[self.slot] = x

    def _fail(self, index, x):
        """Stage ``index`` raised: run it again guarded (to keep its error), finish the
        chunk stage by stage, and let the pipeline re-plan before the next chunk."""
        for s in self.stages[:index]:
            s.count(x.shape[1], x.shape[1], None)
        culprit = self.stages[index]
        culprit.run(x)
        if culprit.status == "ok":
            culprit.disable(RuntimeError("raised inside a fused call, but not when run alone"),
                            "process")
        for s in self.stages[index + 1:]:
            x = s.run(x)

    def describe(self):
        copy = "copy" if self.buf is not None else "in place"
        return f"fused[{', '.join(s.id for s in self.stages)}] ({copy})"


def fused_kernel(kernels, n_states):
    """A compiled function calling ``kernels`` in order on one array.

    Returns -1 on success, or the index of the kernel that raised.
    """
    key = (tuple(id(k) for k in kernels), tuple(n_states))
    with _FUSED_LOCK:
        found = _FUSED.get(key)
        if found is not None and all(a is b for a, b in zip(found[0], kernels)):
            return found[1]
        names, lines, params = {}, [], []
        for i, (kernel, n) in enumerate(zip(kernels, n_states)):
            args = [f"s{i}_{j}" for j in range(n)]
            params += args
            names[f"k{i}"] = kernel
            lines.append(f"        i = {i}\n        k{i}(x{''.join(', ' + a for a in args)})")
        src = (f"def fused(x{''.join(', ' + p for p in params)}):\n    i = 0\n    try:\n"
               + "\n".join(lines) + "\n    except Exception:\n        return i\n    return -1\n")
        exec(compile(src, "<eegkit fused kernel>", "exec"), names)
        fn = _numba.jit(names["fused"], cache=False)
        _FUSED[key] = (list(kernels), fn)
        return fn
