"""Drive a pipeline from its source in the calling thread (offline or paced)."""

from __future__ import annotations

import time

import numpy as np

from .._errors import ParameterError
from ..sinks import make_sink

PROGRESS_EVERY = 0.5


def run_source(pipeline, duration=None, chunk=32, realtime=False, outputs=None,
               collect=True, progress=None) -> dict:
    """See :meth:`Pipeline.run`."""
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ParameterError(f"chunk must be a positive number of samples, got {chunk!r}")
    source = pipeline.source
    if not source.live:
        try:
            source.reset()
        except NotImplementedError:
            pass
    info = source.info
    total = source.n_samples
    if duration is not None:
        want = int(round(float(duration) * info.sfreq))
        total = want if total is None else min(total, want)
    if total is None:
        raise ParameterError(f"source '{source.type_name}' has no end; give a duration")
    t_setup = time.perf_counter()
    pipeline.open(info)
    wanted = pipeline._wanted(outputs) if collect else []
    parts = {id: [] for id in wanted}
    sinks = open_sinks(pipeline)
    observed = list(dict.fromkeys([*wanted, *(i for _, i in sinks if i != "source")]))
    pipeline.prepare(observed)  # compile fused chains before the first chunk
    done, t0 = 0, time.perf_counter()
    last = t0
    try:
        while done < total:
            block = source.read(min(chunk, total - done))
            if block.shape[1] == 0:
                if source.ended:
                    break
                time.sleep(0.001)  # a live source has nothing yet
                continue
            if realtime and not source.live:
                ahead = (done / info.sfreq) - (time.perf_counter() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            with pipeline._lock:
                first = pipeline.first_sample
                outs = pipeline._step(block, observed)
                slots = pipeline._last_plan.slots
                for id in wanted:
                    parts[id].append(outs[slots[id]].copy())
                for sink, input_id in sinks:
                    sink.write(*sink_block(pipeline, input_id, outs[slots[input_id]], first))
            done += block.shape[1]
            now = time.perf_counter()
            if progress is not None and now - last >= PROGRESS_EVERY:
                last = now
                progress(done, total)
    finally:
        for sink, _ in sinks:
            sink.close()
    if progress is not None:
        progress(done, total)
    pipeline.last_run = {"samples": done, "setup_s": t0 - t_setup,
                         "process_s": time.perf_counter() - t0}
    result = {}
    for id, p in parts.items():
        info_out = pipeline[id].out_info
        result[id] = (np.concatenate(p, axis=1) if p
                      else np.zeros((info_out.n_channels, 0), dtype=info_out.dtype))
    return result


def sink_block(pipeline, input_id, out, first):
    """``(block, index of its first sample)`` for a sink fed by ``input_id``;
    ``first`` is the index of the chunk's first input sample."""
    if input_id == "source":
        return out, first
    return out, pipeline[input_id].samples_out - out.shape[1]


def open_sinks(pipeline):
    """Open the pipeline's sinks; return ``[(sink, input stage id)]``."""
    opened = []
    try:
        for spec, _ in pipeline._sinks:
            sink = make_sink(spec["type"], spec["params"], f"sink '{spec['type']}'")
            sink.open(pipeline.info_of(spec["input"]))
            opened.append((sink, spec["input"]))
    except BaseException:
        for sink, _ in opened:
            sink.close()
        raise
    return opened
