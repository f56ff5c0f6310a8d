"""Runner: drive a pipeline from its source in background threads.

Two threads: a *reader* takes chunks from the source (pacing a replayable source
to real time when asked) into a bounded queue, and a *worker* pushes them through
the pipeline and its sinks. When the source is faster than the pipeline, the
queue's overrun policy decides: ``"drop-oldest"`` discards the oldest queued
chunk (counted), ``"block"`` makes the reader wait. Memory is bounded either way.
A run with a lossless sink (a recording) never drops: where ``"drop-oldest"``
would, the run stops with an error, so the file holds no silent gap.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import weakref

import numpy as np

from .._check import check_option, positive_int
from .._errors import ParameterError, PipelineError
from ._run import Blocks, Feed

log = logging.getLogger("eegkit")
OVERRUN = ("drop-oldest", "block")
N_LAGS = 256
_ACTIVE = weakref.WeakSet()


class Runner:
    """One background run of a pipeline on its source (see :func:`start`).

    Attributes
    ----------
    state : str
        ``"idle"``, ``"running"``, ``"finished"`` (the source or ``duration`` ended),
        ``"stopped"`` (by :meth:`stop`) or ``"error"`` (see :attr:`error`).
    error : str or None
        Why the run ended in ``"error"`` (a source or sink failure).
    """

    def __init__(self, pipeline, chunk=32, realtime=True, duration=None,
                 overrun="drop-oldest", queue_chunks=64):
        chunk = positive_int(chunk, "chunk", "start()", what="a positive number of samples")
        check_option("overrun", overrun, OVERRUN, "start()")
        queue_chunks = positive_int(queue_chunks, "queue_chunks", "start()")
        if duration is not None:
            try:
                duration = float(duration)
            except (TypeError, ValueError):
                duration = -1.0
            if not duration > 0:
                raise ParameterError(f"start(): duration must be a positive number of seconds or "
                                     f"None, got {duration!r}")
        self.pipeline = pipeline
        self.chunk = int(chunk)
        self.realtime = bool(realtime)
        self.duration = duration
        self.overrun = overrun
        self.queue_chunks = int(queue_chunks)
        self.state = "idle"
        self.error = None
        self._stop = threading.Event()
        self._queue = _ChunkQueue(self.queue_chunks, overrun)
        self._threads = []
        self._feed = None
        self._reset_counters()

    def _reset_counters(self):
        """Counters of one run."""
        self.chunks = self.samples = 0
        self.read_chunks = self.read_samples = 0
        self.dropped_chunks = self.dropped_samples = 0
        self._blocks = None
        self._lags = np.zeros(N_LAGS)
        self._max_lag = 0.0
        self.started_at = self._t_end = None

    # -- control -----------------------------------------------------------------
    def start(self, resume: bool = False) -> "Runner":
        """Open the stream (unless resuming) and the sinks, then start the threads."""
        if self.running:
            raise PipelineError("this pipeline is already running; call stop() first")
        self._feed = Feed(self.pipeline, resume=resume)
        self._reset_counters()
        self._stop.clear()
        lossless = [s for s, _ in self._feed.sinks if getattr(s, "lossless", False)]
        policy = "fail" if lossless and self.overrun == "drop-oldest" else self.overrun
        self._queue = _ChunkQueue(self.queue_chunks, policy)
        self._lossless = ", ".join(f"'{s.type_name}' ({getattr(s, 'path', '?')})" for s in lossless)
        self.state, self.error = "running", None
        self.started_at = time.perf_counter()
        self._threads = [threading.Thread(target=self._read, name="eegkit-reader", daemon=True),
                         threading.Thread(target=self._work, name="eegkit-runner", daemon=True)]
        for thread in self._threads:
            thread.start()
        _ACTIVE.add(self)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both threads, wait for them, close the sinks. Idempotent."""
        self._stop.set()
        self._queue.wake()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise PipelineError(f"stop(): thread(s) {', '.join(alive)} did not end within "
                                f"{timeout} s (a source read or a stage is blocking)")
        _ACTIVE.discard(self)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the run ends by itself (end of source or ``duration``); True if it did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        return not self.running

    @property
    def paced_s(self) -> float:
        """Seconds the reader waited for real time."""
        return self._blocks.paced_s if self._blocks is not None else 0.0

    @property
    def running(self) -> bool:
        """True while the threads are alive."""
        return any(t.is_alive() for t in self._threads)

    # -- threads -----------------------------------------------------------------
    def _read(self):
        """Reader thread: source → queue, paced for replayable sources when asked."""
        source = self.pipeline.source
        total = None if self.duration is None else int(round(self.duration * source.info.sfreq))
        self._blocks = Blocks(source, self.chunk, total, pace=self.realtime, stop=self._stop)
        try:
            for block in self._blocks:
                self.read_chunks += 1
                self.read_samples += block.shape[1]
                dropped = self._queue.put((block, time.perf_counter()), self._stop)
                if dropped is _FULL:  # a recording must not get a gap: stop reading instead
                    self._fail(f"the pipeline fell behind the source and sink {self._lossless} "
                               f"must not skip data, so the run was stopped rather than drop a "
                               f"chunk; use overrun='block' (the source waits) or a faster "
                               f"pipeline")
                    break  # the worker still writes what is queued: contiguous, then ends
                if dropped is not None:
                    self.dropped_chunks += 1
                    self.dropped_samples += dropped[0].shape[1]
        except Exception as exc:  # noqa: BLE001 - a failing source ends the run, with the reason
            self._fail(f"source '{source.type_name}' read failed: {type(exc).__name__}: {exc}")
        finally:
            self._queue.close()

    def _work(self):
        """Worker thread: queue → pipeline → sinks."""
        feed = self._feed
        try:
            while True:
                item = self._queue.get(self._stop)
                if item is None:
                    break
                block, t_read = item
                feed.push(block)
                lag = time.perf_counter() - t_read
                self._lags[self.chunks % N_LAGS] = lag
                self._max_lag = max(self._max_lag, lag)
                self.chunks += 1
                self.samples += block.shape[1]
        except Exception as exc:  # noqa: BLE001 - e.g. a sink that cannot write: end the run
            self._fail(f"{type(exc).__name__}: {exc}")
            self._stop.set()
            self._queue.wake()
        finally:
            for sink, exc in feed.close():
                self._fail(f"closing sink '{sink.type_name}' failed: {type(exc).__name__}: {exc}")
            self._t_end = time.perf_counter()
            if self.state == "running":
                self.state = "stopped" if self._stop.is_set() else "finished"

    def _fail(self, message):
        """End the run in the error state, keeping the first reason."""
        if self.error is None:
            self.error = message
            log.error("eegkit: background run stopped: %s", message)
        self.state = "error"

    # -- reporting ---------------------------------------------------------------
    def stats(self) -> dict:
        """Counters of the current (or last) run.

        Returns
        -------
        dict
            ``state``, ``chunks`` and ``samples`` processed, ``seconds`` of data
            processed, ``dropped_chunks`` / ``dropped_samples`` (overrun),
            ``queue`` (chunks waiting now), ``queue_max`` (most ever waiting),
            ``lag_ms`` (median of the last chunks: time from leaving the source to
            leaving the pipeline), ``lag_p99_ms``, ``max_lag_ms``, ``elapsed_s``,
            ``paced_s`` (time the reader waited for real time), ``error``.
        """
        n = min(self.chunks, N_LAGS)
        lags = self._lags[:n] * 1e3
        sfreq = self.pipeline.source.info.sfreq if self.started_at is not None else None
        end = self._t_end if self._t_end is not None else time.perf_counter()
        return {"state": self.state, "chunks": self.chunks, "samples": self.samples,
                "seconds": self.samples / sfreq if sfreq else 0.0,
                "read_chunks": self.read_chunks, "dropped_chunks": self.dropped_chunks,
                "dropped_samples": self.dropped_samples, "queue": len(self._queue),
                "queue_max": self._queue.high, "queue_chunks": self.queue_chunks,
                "lag_ms": float(np.median(lags)) if n else None,
                "lag_p99_ms": float(np.percentile(lags, 99)) if n else None,
                "max_lag_ms": self._max_lag * 1e3 if n else None,
                "elapsed_s": end - self.started_at if self.started_at is not None else 0.0,
                "paced_s": self.paced_s, "chunk": self.chunk, "realtime": self.realtime,
                "overrun": self.overrun, "error": self.error}

    def __repr__(self):
        s = self.stats()
        return (f"<Runner {s['state']}: {s['chunks']} chunks, {s['seconds']:.1f} s, "
                f"{s['dropped_chunks']} dropped>")


_FULL = object()  # put() under the "fail" policy: the queue was full, nothing dropped


class _ChunkQueue:
    """Bounded FIFO of chunks with an overrun policy; ``close`` marks the end of data."""

    def __init__(self, size, policy):
        self.size, self.policy = size, policy
        self.items = collections.deque()
        self.cond = threading.Condition()
        self.closed = False
        self.high = 0

    def __len__(self):
        return len(self.items)

    def put(self, item, stop):
        """Queue ``item``; returns the chunk dropped to make room, if any (``_FULL``
        when the policy is ``"fail"`` and the queue is full)."""
        with self.cond:
            dropped = None
            if len(self.items) >= self.size:
                if self.policy == "fail":
                    return _FULL
                if self.policy == "drop-oldest":
                    dropped = self.items.popleft()
                else:
                    while len(self.items) >= self.size and not stop.is_set():
                        self.cond.wait(0.1)
                    if stop.is_set():
                        return None
            self.items.append(item)
            self.high = max(self.high, len(self.items))
            self.cond.notify_all()
            return dropped

    def get(self, stop):
        """Next chunk, or None once closed and empty, or stopped."""
        with self.cond:
            while not self.items:
                if self.closed or stop.is_set():
                    return None
                self.cond.wait(0.1)
            if stop.is_set():
                return None
            item = self.items.popleft()
            self.cond.notify_all()
            return item

    def close(self):
        """No more chunks will come."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wake(self):
        """Wake waiting threads (after stop is set)."""
        with self.cond:
            self.cond.notify_all()


def active() -> list:
    """Runners whose threads are alive, oldest first."""
    return sorted((r for r in list(_ACTIVE) if r.running), key=lambda r: r.started_at or 0.0)
