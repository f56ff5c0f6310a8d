"""Stage: one configured instance of a plugin stage, with guarded calls and timing."""

from __future__ import annotations

import logging
import threading
import time
import traceback

import numpy as np

from .._errors import StageError
from .._info import StreamInfo
from ..plugin import validate_params
from ..plugin._setup import Prepared, normalize_setup

log = logging.getLogger("eegkit")
N_TIMINGS = 2048
WARMUP_SAMPLES = 8
LOG_BURST, LOG_WINDOW = 3, 10.0  # per kind of error: at most 3 messages every 10 s
_LOG_SEEN: dict = {}
_LOG_LOCK = threading.Lock()


def log_error(key, msg: str, *args) -> None:
    """``log.error``, rate-limited per ``key`` so a failure at chunk rate cannot flood
    the log; the next message that passes says how many were suppressed."""
    now = time.monotonic()
    with _LOG_LOCK:
        seen = _LOG_SEEN.get(key)
        if seen is None or now - seen[0] >= LOG_WINDOW:
            suppressed = seen[2] if seen else 0
            _LOG_SEEN[key] = [now, 1, 0]
        elif seen[1] < LOG_BURST:
            seen[1] += 1
            suppressed = 0
        else:
            seen[2] += 1
            return
    if suppressed:
        msg, args = msg + " (%d similar message(s) suppressed)", (*args, suppressed)
    log.error(msg, *args)


class Stage:
    """One stage of a pipeline: a stage type from a plugin, its parameters, its
    kernel state and its health.

    A stage is ``ok`` or ``disabled``. Every call into plugin code is guarded: an
    exception, ``SystemExit`` included, disables the stage and keeps the error and
    traceback; only ``KeyboardInterrupt`` (the user's Ctrl-C) goes through to the host. While disabled,
    a stage whose output has the layout of its input passes its input through
    unchanged; a stage that changes the layout (spectrum, features) emits empty
    blocks, so downstream stages receive no new samples.

    Non-finite output (NaN, inf) is passed on, never disables a stage, and is
    counted: ``nonfinite_chunks`` and ``first_nonfinite`` (see
    eegkit/docs/reliability.md).
    """

    def __init__(self, code, id: str, input: str, params: dict):
        self.id = id
        self.input = input
        self.code = code
        self.type = code.spec.type
        self.params = validate_params(code.spec.params, params, self._where())
        self.state = ()
        self.state_names = None  # name -> position in state, when setup returned eegkit.Setup
        self.in_info = None
        self.out_info = None
        self.status = "ok"
        self.error = None        # one line
        self.traceback = None    # full text
        self.last_error = None   # a rejected parameter change or reload, while still running
        self.taps = []
        self.on_change = None    # set by the pipeline: a change waits for a chunk boundary
        self.in_place = False    # declared output = "in-place", or None on warm-up (may be fused)
        self.fused_with = ()     # ids of the fused chain this stage runs in, if any
        self.kernel = None       # set while a multi-threaded build runs offline blocks
        self.isolation = code.isolation  # "process": see eegkit.runtime._isolate
        self.calls = 0
        self.samples_in = 0
        self.samples_out = 0
        self.failed_at = None          # index of the first input sample of the failing chunk
        self.nonfinite_chunks = 0      # chunks whose output held NaN or inf
        self.first_nonfinite = None    # output sample index of the first such chunk
        self._times = [0] * N_TIMINGS  # a list: item assignment is cheaper than numpy's
        self._pending = None
        self._lock = threading.Lock()
        self._bypass = True
        self._empty = None
        self._rows = None

    def _where(self) -> str:
        return f"stage '{self.id}' ({self.type})"

    # -- set-up ----------------------------------------------------------------
    def configure(self, in_info: StreamInfo) -> StreamInfo:
        """Run ``setup`` for the input ``in_info``, warm up the kernel, reset counters.

        Returns the output StreamInfo. Never raises for plugin errors: the stage is
        disabled instead and passes its input through.
        """
        self.in_info = in_info
        self.calls = self.samples_in = self.samples_out = 0
        self.status, self.error, self.traceback, self.failed_at = "ok", None, None, None
        self.nonfinite_chunks, self.first_nonfinite = 0, None
        try:
            self.prepare()
        except KeyboardInterrupt:
            raise  # the user's Ctrl-C stops the host, it is no fault of the stage
        except BaseException as exc:  # noqa: BLE001 - plugin code: even sys.exit() only disables it
            self.install(Prepared((), in_info))
            self.disable(exc, "setup" if not isinstance(exc, _WarmupError) else "compile")
        return self.out_info

    def prepare(self, in_info: StreamInfo | None = None, params: dict | None = None) -> None:
        """The one way a stage gets ready: run ``setup`` for ``in_info`` (default: the
        current input) with ``params`` (default: the current ones), take its result and
        warm the kernel up. Raises what plugin code raises; callers decide what that
        means (:meth:`configure` disables, a parameter change is rejected, a hot reload
        keeps the old code)."""
        if in_info is not None:
            self.in_info = in_info
        if params is not None:
            self.params = params
        self.install(self.setup_result())
        self._warm_up()

    def setup_result(self) -> Prepared:
        """What the plugin's ``setup`` gives for the current input and parameters
        (normalised; nothing is installed)."""
        if self.code.setup is None:
            return Prepared((), self.in_info)
        return normalize_setup(self.code.setup(self.in_info, **self.params), self.in_info,
                               self._where())

    def install(self, prepared: Prepared) -> None:
        """Take the kernel arguments and output info of a normalised setup."""
        self.state, self.out_info, self.state_names = (prepared.args, prepared.out_info,
                                                       prepared.names)
        self._after_info()

    def _warm_up(self):
        """Compile for the real argument types now, so the first chunk pays nothing."""
        if self.code.isolated:  # its child process warmed up (and checked) in setup
            self.in_place = self.code.in_place
            return
        state = tuple(np.array(s, copy=True) if isinstance(s, np.ndarray) else s
                      for s in self.state)
        x = np.zeros((self.in_info.n_channels, WARMUP_SAMPLES), dtype=self.in_info.dtype)
        try:
            out = self.code.process(x, *state)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise _WarmupError(f"{type(exc).__name__}: {exc}") from exc
        declared = self.code.spec.output
        if declared is not None and (out is None) != (declared == "in-place"):
            raise StageError(self._contradiction(out))
        if out is None and not self._bypass:
            raise StageError(self._layout_lie())
        self._check_output(out, x)
        self.in_place = out is None if declared is None else declared == "in-place"

    def _contradiction(self, out) -> str:
        """Why a kernel's output contradicts the manifest's declared ``output``."""
        did = "returned None (worked in place)" if out is None else "returned a new array"
        return (f"{self._where()}: the manifest declares output = \"{self.code.spec.output}\" "
                f"but process {did}; fix the kernel, or declare output = "
                f"\"{'in-place' if out is None else 'new'}\" in plugin.toml")

    def _layout_lie(self) -> str:
        """Why an in-place kernel contradicts the output stream its setup declared."""
        i, o = self.in_info, self.out_info
        return (f"{self._where()}: setup declares an output of {o.n_channels} channel(s) at "
                f"{o.sfreq:g} Hz ({o.kind}) but process worked in place on its {i.n_channels}-"
                f"channel input at {i.sfreq:g} Hz ({i.kind}); an in-place kernel keeps its "
                f"input's layout: return a new array of the declared shape, or drop `out` "
                f"from setup")

    def _after_info(self):
        info = self.out_info
        self._bypass = info.same_layout(self.in_info) and info.kind == self.in_info.kind
        self._empty = np.zeros((info.n_channels, 0), dtype=info.dtype)
        self._rows = info.n_channels

    # -- running ---------------------------------------------------------------
    def run(self, x: np.ndarray) -> np.ndarray:
        """Process one block ``x`` (owned by this stage; may be modified in place)."""
        if self.status != "ok":
            return x if self._bypass else self._empty
        t0 = time.perf_counter_ns()
        try:
            out = (self.kernel or self.code.process)(x, *self.state)
            if out is None:
                out = x
            elif out is not x:
                if self.in_place:  # fused chains would ignore the array: refuse it everywhere
                    if self.code.spec.output is not None:
                        raise StageError(self._contradiction(out))
                    raise StageError(f"{self._where()}: process returned None (in place) on its "
                                     f"warm-up call but an array now; a kernel must always work "
                                     f"in place or always return a new array")
                if not (type(out) is np.ndarray and out.ndim == 2  # the common case, cheaply
                        and out.shape[0] == self._rows and out.dtype == x.dtype
                        and out.flags.c_contiguous and (not self._bypass or out.shape[1] == x.shape[1])):
                    out = self._check_output(out, x)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit too: only this stage stops
            self.disable(exc, "process")
            return x if self._bypass else self._empty
        calls = self.calls  # inlined count(): this runs once per stage per chunk
        self._times[calls % N_TIMINGS] = time.perf_counter_ns() - t0
        self.calls = calls + 1
        n = x.shape[1]
        self.samples_in += n
        self.samples_out += n if out is x else out.shape[1]
        return out

    def count(self, n_in: int, n_out: int, elapsed_ns) -> None:
        """Account for one chunk (``elapsed_ns`` None when timed as part of a fused call)."""
        if elapsed_ns is not None:
            self._times[self.calls % N_TIMINGS] = elapsed_ns
        self.calls += 1
        self.samples_in += n_in
        self.samples_out += n_out

    def call_taps(self, out: np.ndarray) -> None:
        """Hand ``out`` to every tap; a tap that raises is removed and logged."""
        first = self.samples_out - out.shape[1]
        for tap in list(self.taps):
            try:
                tap(out, first)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - a broken view must not stop the pipeline
                self.taps.remove(tap)
                log.error("eegkit: tap %r on stage '%s' removed after error: %r", tap, self.id, exc)

    def _check_output(self, out, x):
        if out is None:
            return x
        info = self.out_info
        if not isinstance(out, np.ndarray) or out.ndim != 2 or out.shape[0] != info.n_channels:
            got = out.shape if isinstance(out, np.ndarray) else type(out).__name__
            raise StageError(f"{self._where()}: process returned {got}; expected None (in-place) "
                             f"or an array of shape ({info.n_channels}, n)")
        if self._bypass and out.shape[1] != x.shape[1]:
            raise StageError(f"{self._where()}: process returned {out.shape[1]} samples for "
                             f"{x.shape[1]} in; a stage that keeps its input's layout must "
                             f"return as many samples as it gets")
        if out.dtype != x.dtype or not out.flags.c_contiguous:
            if out.dtype.kind != "f":  # ints, bools, complex: a bug, not samples
                raise StageError(f"{self._where()}: process returned an array of {out.dtype}; "
                                 f"expected floating-point samples ({x.dtype}; float32 and "
                                 f"float64 are converted)")
            out = np.ascontiguousarray(out, dtype=x.dtype)
        return out

    def disable(self, exc: BaseException, phase: str = "process") -> None:
        """Disable the stage, keeping ``exc`` and its traceback."""
        self.status = "disabled"
        self.failed_at = self.samples_in
        self.error = f"{phase}: {type(exc).__name__}: {exc}"
        self.traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log_error((self._where(), phase), "eegkit: %s disabled after an error in %s: %s",
                  self._where(), phase, exc)
        if self.on_change is not None:
            self.on_change()

    def saw_nonfinite(self, out: np.ndarray) -> None:
        """Count a chunk whose output ``out`` holds NaN or inf (it is passed on as is)."""
        if self.nonfinite_chunks == 0:
            self.first_nonfinite = self.samples_out - out.shape[1]
            log.warning("eegkit: %s: output holds non-finite values (NaN or inf), first in the "
                        "block starting at output sample %d; passed on (recursive filters keep "
                        "them in their state until the stream is re-opened)",
                        self._where(), self.first_nonfinite)
        self.nonfinite_chunks += 1

    def enable(self) -> None:
        """Re-enable a disabled stage (runs its setup again, resetting its state)."""
        self.configure(self.in_info)

    # -- parameters --------------------------------------------------------------
    def set_params(self, **params) -> None:
        """Change parameters; applied between two chunks by re-running ``setup``.

        Raises ParameterError at once for unknown names or bad values.
        """
        with self._lock:  # two changes before the next chunk both count
            base = self._pending or self.params
            self._pending = validate_params(self.code.spec.params, {**base, **params},
                                            self._where())
        if self.in_info is None:
            self.apply_pending()
        elif self.on_change is not None:
            self.on_change()

    def apply_pending(self) -> bool:
        """Apply a pending parameter change; return True when the output layout changed.

        If the new setup fails, the old parameters and state keep running and the
        error is kept in ``last_error``.
        """
        with self._lock:
            params, self._pending = self._pending, None
        if params is None:
            return False
        if self.in_info is None:
            self.params = params
            return False
        old = (self.params, self.state, self.out_info, self.state_names)
        try:
            self.prepare(params=params)
        except KeyboardInterrupt:
            self.params, self.state, self.out_info, self.state_names = old
            self._after_info()
            raise
        except BaseException as exc:  # noqa: BLE001
            self.params, self.state, self.out_info, self.state_names = old
            self._after_info()
            self.last_error = f"parameter change rejected: {type(exc).__name__}: {exc}"
            log_error((self._where(), "params"), "eegkit: %s: %s", self._where(), self.last_error)
            return False
        self.last_error = None
        return not self.out_info.same_layout(old[2])

    @property
    def keeps_length(self) -> bool:
        """True when every output block has as many samples as its input block
        (also while disabled: such a stage passes its input through)."""
        return self._bypass

    @property
    def has_pending(self) -> bool:
        """True when a parameter change waits for the next chunk boundary."""
        return self._pending is not None

    # -- reporting ---------------------------------------------------------------
    def stats(self) -> dict:
        """Calls, samples, median and p99 kernel time per chunk (µs), health."""
        n = min(self.calls, N_TIMINGS)
        times = np.array(self._times[:n], dtype=np.float64) / 1e3
        timed = n and (not self.fused_with or self.fused_with[-1] == self.id)
        return {"id": self.id, "type": self.type, "status": self.status, "calls": self.calls,
                "samples_in": self.samples_in, "samples_out": self.samples_out,
                "median_us": float(np.median(times)) if timed else None,
                "p99_us": float(np.percentile(times, 99)) if timed else None,
                "fused_with": list(self.fused_with), "error": self.error,
                "nonfinite_chunks": self.nonfinite_chunks, "first_nonfinite": self.first_nonfinite}

    def status_dict(self) -> dict:
        """Health of the stage: status, error, traceback, last rejected change."""
        return {"id": self.id, "type": self.type, "status": self.status, "error": self.error,
                "traceback": self.traceback, "failed_at": self.failed_at,
                "last_error": self.last_error,
                "params": dict(self.params)}

    def __repr__(self):
        return f"<Stage {self.id!r} {self.type} {self.status} params={self.params}>"


class _WarmupError(Exception):
    """The kernel failed on its warm-up call (usually a numba typing error)."""
