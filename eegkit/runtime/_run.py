"""The run loop: a pipeline fed from its source, into its sinks.

One loop serves both ways of running: :meth:`Pipeline.run` (in the calling thread) and
the background :class:`~eegkit.runtime._runner.Runner` (a reader thread and a worker
thread). :class:`Blocks` reads the source (pacing a replayable source to real time when
asked); :class:`Feed` opens the stream, the sinks and the execution plan, pushes each
block through the stages and the sinks, and closes the sinks.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from .._check import positive_int, short_repr
from .._errors import ParameterError
from ..sinks import make_sink

SOURCE_ID = "source"


class Blocks:
    """Blocks of at most ``chunk`` samples from ``source`` until ``total`` samples (None:
    until the source ends) or ``stop`` is set; paced to real time when ``pace``.

    ``paced_s`` is the time spent waiting for real time.
    """

    def __init__(self, source, chunk: int, total=None, pace: bool = False, stop=None):
        self.source, self.chunk, self.total = source, chunk, total
        self.pace = pace and not source.live  # live sources arrive in real time already
        self.stop = stop if stop is not None else threading.Event()
        self.done = 0
        self.paced_s = 0.0

    def __iter__(self):
        source, sfreq = self.source, self.source.info.sfreq
        # a live source with nothing yet is asked again soon: each wait adds to the latency
        # of every result (0.5 ms keeps it under a millisecond, at a few µs of CPU a poll)
        idle = 0.0005 if source.live else min(0.01, max(0.0005, self.chunk / sfreq / 4))
        t0 = time.perf_counter()
        while not self.stop.is_set() and (self.total is None or self.done < self.total):
            n = self.chunk if self.total is None else min(self.chunk, self.total - self.done)
            block = source.read(n)
            k = block.shape[1]
            if k == 0:
                if source.ended:
                    return
                self.stop.wait(idle)  # a live source has nothing yet
                continue
            if self.pace:
                delay = t0 + (self.done + k) / sfreq - time.perf_counter()
                if delay > 0:
                    self.paced_s += delay
                    if self.stop.wait(delay):
                        return
            self.done += k
            yield block


class Feed:
    """One run of ``pipeline``: stream opened from its source (unless ``resume`` and the
    source still matches), sinks opened, plan compiled before the first block.

    Parameters
    ----------
    pipeline : Pipeline
    collect : list of str
        Stage ids whose outputs are kept (see :meth:`result`).
    resume : bool
        Keep the source position and stage state of the last run when the stream is
        still open and the source's description is unchanged.
    """

    def __init__(self, pipeline, collect=(), resume: bool = False):
        self.pipeline = pipeline
        source = pipeline.source
        if not (resume and pipeline.is_open and pipeline.info_of(SOURCE_ID) == source.info):
            pipeline.rewind()
        self.parts = {id: [] for id in collect}
        with pipeline.between_chunks():
            self.sinks = open_sinks(pipeline)
            # observed outputs stay intact; the stages between them may be fused
            self.observed = list(dict.fromkeys(
                [*self.parts, *(i for _, i in self.sinks if i != SOURCE_ID)]))
            pipeline.prepare(self.observed)

    def push(self, block) -> None:
        """One block through the stages, into the sinks and the collected outputs."""
        p = self.pipeline
        with p.between_chunks():
            first = p.first_sample
            outs = p.step(block, self.observed)
            slots = p.slots
            for id, parts in self.parts.items():
                parts.append(outs[slots[id]].copy())
            for sink, input_id in self.sinks:
                out = outs[slots[input_id]]
                start = first if input_id == SOURCE_ID else p[input_id].samples_out - out.shape[1]
                sink.write(out, start)

    def close(self) -> list:
        """Close every sink; return ``[(sink, exception)]`` for those that failed."""
        failed = []
        for sink, _ in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - close the others, report each
                failed.append((sink, exc))
        self.sinks = []
        return failed

    def result(self) -> dict:
        """Collected outputs, one array per stage id."""
        result = {}
        for id, parts in self.parts.items():
            info = self.pipeline.info_of(id)
            result[id] = (np.concatenate(parts, axis=1) if parts
                          else np.zeros((info.n_channels, 0), dtype=info.dtype))
        return result


def run_source(pipeline, duration=None, chunk=32, realtime=False, outputs=None,
               collect=True, progress=None, progress_every: float = 0.5) -> dict:
    """See :meth:`Pipeline.run`."""
    chunk = positive_int(chunk, "chunk", what="a positive number of samples")
    source = pipeline.source
    info = source.info
    total = source.n_samples
    if duration is not None:
        if (isinstance(duration, bool) or not isinstance(duration, (int, float, np.number))
                or not 0 <= duration * info.sfreq < 2 ** 62):
            raise ParameterError(f"duration must be a finite number of seconds >= 0, got "
                                 f"{short_repr(duration)}")
        want = int(round(float(duration) * info.sfreq))
        total = want if total is None else min(total, want)
    if total is None:
        raise ParameterError(f"source '{source.type_name}' has no end; give a duration")
    t_setup = time.perf_counter()
    feed = Feed(pipeline, pipeline.stage_ids(outputs) if collect else [])
    blocks = Blocks(source, chunk, total, pace=realtime)
    t0 = last = time.perf_counter()
    try:
        for block in blocks:
            feed.push(block)
            now = time.perf_counter()
            if progress is not None and now - last >= progress_every:
                last = now
                progress(blocks.done, total)
    finally:
        errors = feed.close()
    if errors:
        raise errors[0][1]
    if progress is not None:
        progress(blocks.done, total)
    pipeline.last_run = {"samples": blocks.done, "setup_s": t0 - t_setup,
                         "process_s": time.perf_counter() - t0}
    return feed.result()


def open_sinks(pipeline):
    """Open the pipeline's sinks; return ``[(sink, input stage id)]``."""
    # check all, prepare all, then commit all: a sink that cannot open leaves every
    # existing file untouched (an earlier recording is not truncated by a later failure)
    sinks = [(make_sink(spec["type"], spec["params"], f"sink '{spec['type']}'"), spec["input"])
             for spec in pipeline.sink_specs]
    for sink, input_id in sinks:
        sink.check(pipeline.info_of(input_id))
    opened = []
    try:
        for sink, input_id in sinks:
            sink.prepare(pipeline.info_of(input_id))
            opened.append((sink, input_id))
        for sink, _ in opened:
            sink.commit()
    except BaseException:
        for sink, _ in opened:
            sink.discard()
        raise
    return opened
