"""Execution plan of a pipeline for one set of observed outputs.

The plan decides, once per layout change, what each chunk costs:

- a stage gets its own copy of its input only when it must: the input is the
  caller's chunk, is read by another stage too, is observed (returned, tapped,
  recorded), or comes from a kernel that returns new arrays;
- a chain of in-place compiled stages whose intermediate outputs nobody observes
  is fused into one compiled call (generated here, cached per kernel chain).

Each step's output is checked for NaN and inf by one compiled pass that stops at
the first one (about 1 µs per 64x32 chunk); a hit is counted on the step's stage
(the last stage of a fused chain) and the block is passed on unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
import time
import traceback

import numpy as np

from .. import _numba
from ._stage import log
from ..plugin._loader import module_name

_FUSED: dict = {}
_KERNELS: dict = {}  # fused key -> the dispatchers its generated module calls
_FUSED_LOCK = threading.RLock()  # reentrant: a generated module asks for finite_check()
_FINITE = []


class Buffer:
    """A stage's own input block: one flat allocation, reshaped per chunk size."""

    __slots__ = ("rows", "flat", "dtype", "view")

    def __init__(self, rows: int, dtype):
        self.rows = rows
        self.dtype = np.dtype(dtype)
        self.flat = np.empty(rows * 256, dtype=self.dtype)
        self.view = self.flat[:0].reshape(rows, 0)

    def take(self, n: int) -> np.ndarray:
        """The C-contiguous ``(rows, n)`` view, unfilled (a fused call copies into it)."""
        view = self.view
        if view.shape[1] != n:
            if self.rows * n > self.flat.size:
                self.flat = np.empty(self.rows * n, dtype=self.dtype)
            view = self.view = self.flat[:self.rows * n].reshape(self.rows, n)
        return view

    def fill(self, src: np.ndarray) -> np.ndarray:
        """Copy ``src`` in and return the filled C-contiguous view."""
        n = src.shape[1]
        view = self.view
        if view.shape[1] != n:
            if self.rows * n > self.flat.size:
                self.flat = np.empty(self.rows * n, dtype=self.dtype)
            view = self.view = self.flat[:self.rows * n].reshape(self.rows, n)
        np.copyto(view, src)  # casting="same_kind" is the default; the keyword costs
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
        finite = finite_check()
        for dtype in {s.out_info.dtype for s in stages}:  # compile now, not inside a chunk
            finite(np.zeros((1, 1), dtype))
        fuse = fuse and not _numba.jit_disabled()
        while i < len(stages):
            group = [stages[i]]
            # a chain links through in-place stages nobody else reads; its last stage
            # may return a new array (a spectrum, band powers)
            while (fuse and i + len(group) < len(stages) and _compiled(group[-1])
                   and group[-1].in_place
                   and stages[i + len(group)].input == group[-1].id
                   and group[-1].id not in observed
                   and len(consumers.get(group[-1].id, ())) == 1
                   and _compiled(stages[i + len(group)])):
                group.append(stages[i + len(group)])
            if len(group) > 1:
                try:
                    self.steps.append(FusedStep(group, self.slots[group[0].input],
                                                None if private(group[0]) else
                                                Buffer(group[0].in_info.n_channels,
                                                       group[0].in_info.dtype),
                                                self.slots[group[-1].id], finite))
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # noqa: BLE001 - e.g. kernels numba cannot chain
                    log.info("eegkit: not fusing %s: %s", [s.id for s in group], exc)
                    for s in group:
                        s.fused_with = ()
                    group = group[:1]
            if len(group) == 1:
                stage = group[0]
                buf = None if private(stage) else Buffer(stage.in_info.n_channels,
                                                         stage.in_info.dtype)
                # outputs nobody observes are checked where they surface downstream
                seen = stage.id in observed or not consumers.get(stage.id)
                self.steps.append(StageStep(stage, self.slots[stage.input], buf,
                                            self.slots[stage.id], finite if seen else None))
            i += len(group)
        self.runs = tuple(step.run for step in self.steps)  # bound once, not per chunk

    def run(self, x: np.ndarray) -> list:
        """Outputs by slot: ``[x, out_1, ...]``; None for fused intermediates.

        The list is new per call (a caller may keep it), its arrays are buffers the
        next call overwrites."""
        outs = [None] * self.n_slots
        outs[0] = x
        for run in self.runs:
            run(outs)
        return outs

    def describe(self) -> list:
        """One line per step (for ``stats()`` and debugging)."""
        return [step.describe() for step in self.steps]


def _compiled(stage) -> bool:
    """True when ``stage`` may run inside a generated compiled call."""
    return (stage.status == "ok" and not stage.taps
            and _numba.is_compiled(stage.code.process)
            and not _uses_objmode(stage.code.process)
            and getattr(stage, "isolation", "none") == "none")


def _uses_objmode(fn) -> bool:
    """True when a kernel opens ``numba.objmode()`` itself: what such a block raises
    escapes a fused call's try/except, so the kernel runs alone behind its own guard."""
    code = getattr(getattr(fn, "py_func", fn), "__code__", None)
    return code is not None and "objmode" in code.co_names


class StageStep:
    """One stage, called through its guarded ``Stage.run``."""

    __slots__ = ("stage", "src", "buf", "slot", "taps", "finite")

    def __init__(self, stage, src, buf, slot, finite):
        self.stage, self.src, self.buf, self.slot, self.finite = stage, src, buf, slot, finite

    def run(self, outs):
        x = outs[self.src]
        if self.buf is not None:
            x = self.buf.fill(x)
        stage = self.stage
        out = outs[self.slot] = stage.run(x)
        if self.finite is not None and stage.status == "ok" and not self.finite(out):
            stage.saw_nonfinite(out)
        if stage.taps:
            stage.call_taps(out)

    def describe(self):
        copy = "copy" if self.buf is not None else "in place"
        return f"{self.stage.id} ({copy})"


class FusedStep:
    """A chain of compiled stages run as one compiled call: every stage but the last
    works in place; the last may return a new array."""

    __slots__ = ("stages", "src", "buf", "slot", "fn", "args", "finite", "at", "head", "last",
                 "out_rows", "out_dtype")

    def __init__(self, stages, src, buf, slot, finite):
        self.stages, self.src, self.buf, self.slot, self.finite = stages, src, buf, slot, finite
        self.fn = fused_kernel(stages, buf is not None)
        last = self.last = stages[-1]
        self.head = tuple(stages[:-1])
        # what a well-formed output of the last stage looks like (checked per chunk)
        self.out_rows, self.out_dtype = last.out_info.n_channels, np.dtype(stages[0].in_info.dtype)
        self.at = np.zeros(1, dtype=np.int64)  # the kernel running, read when one escapes
        self.args = tuple(a for s in stages for a in s.state) + (last._empty, self.at)
        for s in stages:
            s.fused_with = tuple(t.id for t in stages)
        # compile now, on copies of the state, so the first chunk pays nothing
        info = stages[0].in_info
        copies = tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a
                       for a in self.args)
        block = np.zeros((info.n_channels, 8), dtype=info.dtype)
        self.fn(block, block.copy() if buf is not None else block, *copies)

    def run(self, outs):
        src = outs[self.src]
        buf = self.buf
        # the input copy, the kernels and the NaN/inf check of the output: one compiled call
        x = src if buf is None else buf.take(src.shape[1])
        clock = time.perf_counter_ns
        t0 = clock()
        try:
            failed, out, finite = self.fn(src, x, *self.args)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - e.g. sys.exit() in a kernel's objmode block
            # numba's try/except cannot catch what an objmode block raises: it surfaces as
            # SystemError whose context is the kernel's own exception
            cause = exc
            while isinstance(cause, SystemError) and cause.__context__ is not None:
                cause = cause.__context__  # numba wraps it: "returned a result with an exception set"
            if isinstance(cause, KeyboardInterrupt):
                raise cause from None
            outs[self.slot] = self._escaped(cause, x)
            return
        elapsed = clock() - t0
        last = self.last
        if failed >= 0:
            out = self._fail(failed, x)
            finite = last.status != "ok" or self.finite(out)
        else:
            if out is not x and not self._well_formed(out, x):
                try:
                    out = last._check_output(out, x)
                except Exception as exc:  # noqa: BLE001 - wrong shape: the stage's fault
                    last.disable(exc, "process")
                    out = x if last.keeps_length else last._empty
                finite = last.status != "ok" or self.finite(out)  # the block passed on
            n = x.shape[1]
            for s in self.head:  # Stage.count inlined: this runs every chunk
                s.calls += 1
                s.samples_in += n
                s.samples_out += n
            last.count(n, out.shape[1], elapsed)
        if not finite:
            last.saw_nonfinite(out)
        outs[self.slot] = out

    def _escaped(self, exc, x):
        """An exception left the compiled call (numba cannot catch what an objmode block
        raises, and may run the later kernels anyway): disable the stage whose file the
        traceback names (else the kernel last started), pass the block on as the kernels
        left it, and let the pipeline re-plan before the next chunk."""
        files = {os.path.realpath(f.f_code.co_filename) for f, _ in traceback.walk_tb(exc.__traceback__)}
        culprit = next((s for s in self.stages if str(s.code.spec.module) in files),
                       self.stages[min(int(self.at[0]), len(self.stages) - 1)])
        last = self.stages[-1]
        for s in self.stages:
            if s is not culprit:
                s.count(x.shape[1], x.shape[1] if s is not last or last.keeps_length else 0,
                        None)
        culprit.disable(exc, "process")
        return x if last.keeps_length else last._empty

    def _well_formed(self, out, x) -> bool:
        """The common case of ``Stage._check_output`` passing, decided cheaply."""
        return (type(out) is np.ndarray and out.ndim == 2 and out.shape[0] == self.out_rows
                and out.dtype == self.out_dtype and out.flags.c_contiguous
                and (not self.last.keeps_length or out.shape[1] == x.shape[1]))

    def _fail(self, index, x):
        """Stage ``index`` raised (or returned an array): run it again guarded on a copy
        (to keep its error; its writes into ``x`` happened once, as when run alone),
        finish the chunk stage by stage, and let the pipeline re-plan before the next chunk."""
        for s in self.stages[:index]:
            s.count(x.shape[1], x.shape[1], None)
        culprit = self.stages[index]
        out = culprit.run(x.copy())
        if culprit.status == "ok":
            culprit.disable(RuntimeError("raised inside a fused call, but not when run alone"),
                            "process")
            out = x if culprit.keeps_length else culprit._empty
        elif culprit.keeps_length:
            out = x
        for s in self.stages[index + 1:]:
            out = s.run(out)
        return out

    def describe(self):
        copy = "copy" if self.buf is not None else "in place"
        return f"fused[{', '.join(s.id for s in self.stages)}] ({copy})"


def fused_kernel(stages, copy=False):
    """A compiled function calling the kernels of ``stages`` in order on one array.

    Called as ``fn(src, x, *state, empty, at)`` (``at[0]``: the kernel running): with ``copy``, ``src`` is first copied
    into ``x`` (a buffer of the same shape), else both are the block worked on.
    Returns ``(-1, output, finite)`` on success (``finite``: no NaN or inf in the
    output), or ``(index, placeholder, True)`` where ``index`` is the kernel that
    raised or, in place, returned an array (which would be lost).
    The function is generated as a small module in eegkit's cache folder, named by
    the content digests of the plugin files, so numba caches it on disk and a
    changed plugin never reuses stale machine code. It calls the stages' own
    dispatchers, so no kernel is compiled twice.
    """
    parts = [(module_name(s.code.manifest.name, s.code.spec.module), s.code.spec.process,
              s.code.digest, s.kernel is not None, len(s.state)) for s in stages]
    parts.append(bool(copy))  # the input copy is done inside
    parts.append(stages[-1].in_place)  # in place: the chain's output is x itself
    parts.append("at")  # generated code version: it records the running kernel in ``at``
    key = hashlib.sha256(repr(parts).encode()).hexdigest()[:20]
    with _FUSED_LOCK:
        fn = _FUSED.get(key)
        if fn is None:
            # the stages' own dispatchers (compiled once; linked into the fused call)
            _KERNELS[key] = tuple(s.kernel or s.code.process for s in stages)
            fn = _FUSED[key] = _load_fused(key, parts)
        return fn


def _load_fused(key, parts):
    """Write (once) and import the generated module of one fused chain."""
    lines = ["# generated by eegkit: one compiled call for a chain of in-place kernels",
             "from eegkit._numba import jit",
             "from eegkit.runtime._plan import _KERNELS, finite_check", "",
             "finite = finite_check()"]
    *kernels, copy, last_in_place, _version = parts
    params, body = [], []
    for i, (module, function, digest, parallel, n) in enumerate(kernels):
        # the stage's own dispatcher: compiled (or loaded) once, linked in here
        lines.append(f"k{i} = _KERNELS[{key!r}][{i}]  # {module}.{function} {digest}")
        args = [f"s{i}_{j}" for j in range(n)]
        params += args
        call = f"k{i}(x{''.join(', ' + a for a in args)})"
        if i == len(kernels) - 1 and not last_in_place:
            body.append(f"        i = {i}\n        at[0] = {i}\n        out = {call}")
        else:
            body.append(f"        i = {i}\n        at[0] = {i}\n        if {call} is not None:\n"
                        f"            raise ValueError()")
    result = "x" if last_in_place else "out"
    copy_body = (["    for c in range(src.shape[0]):", "        for t in range(src.shape[1]):",
                  "            x[c, t] = src[c, t]"] if copy else [])
    lines += ["", "", f"def fused(src, x{''.join(', ' + p for p in params)}, empty, at):",
              "    # returns (-1, output, finite), or (index of the kernel that failed, a "
              "placeholder, True)", *copy_body,
              "    i = 0", "    try:", *body, "    except Exception:", "        return i, empty, True",
              f"    return -1, {result}, finite({result})", "", "", "fused = jit(fused)", ""]
    folder = _numba.cache_root() / "fused"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"fused_{key}.py"
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # atomic: another process may be importing it
    name = f"eegkit_fused_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # numba's cache re-imports the module by name
    with _numba.cache_dir(folder):
        spec.loader.exec_module(module)
    return module.fused


def _all_finite(x):
    """True when no value of the 2-D block ``x`` is NaN or infinite."""
    # v * 0 is 0 for a finite v and NaN otherwise; compiled with re-association allowed
    # (and nothing else: NaN and inf keep their meaning), the sum vectorises
    flat = x.ravel()  # blocks are C-contiguous: a view, one long loop
    total = 0.0
    for i in range(flat.shape[0]):
        total += flat[i] * 0.0
    return total == 0.0


def _all_finite_numpy(x):
    """``_all_finite`` when jit is off."""
    return bool(np.isfinite(x).all())


def finite_check():
    """The compiled ``_all_finite`` (numpy's check when jit is off)."""
    if _numba.jit_disabled():
        return _all_finite_numpy
    with _FUSED_LOCK:
        if not _FINITE:
            with _numba.cache_dir(_numba.cache_root() / "numba" / "_core"):
                _FINITE.append(_numba.jit(_all_finite, fastmath={"reassoc"}))
        return _FINITE[0]
