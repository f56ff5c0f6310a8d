"""Background runner: start/stop, pacing, equality with offline runs, overrun policy."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import eegkit
from eegkit import ArraySource, ParameterError, PipelineError, Source, StreamInfo
from eegkit.runtime._runner import Runner, active

SFREQ = 250.0


def synthetic(duration=None, n_channels=8, seed=5):
    params = {"n_channels": n_channels, "sfreq": SFREQ, "seed": seed}
    if duration is not None:
        params["duration"] = duration
    return {"type": "synthetic", "params": params}


def chain(source):
    """Filter → re-reference → band powers (a layout-changing stage)."""
    p = eegkit.Pipeline(source)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("reref.average", id="car")
    p.add("brain_fft.band_power", id="bands", window=128, step=32)
    return p


def record(pipeline, ids):
    """Taps that keep a copy of every block of stages ``ids``; returns {id: [blocks]}."""
    kept = {id: [] for id in ids}
    for id in ids:
        pipeline.tap(id, lambda block, first, id=id: kept[id].append((first, block.copy())))
    return kept


def joined(parts, rows):
    blocks = [b for _, b in parts]
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((rows, 0))


class LiveArray(Source):
    """A live source over an array: every sample is available at once, as when an
    amplifier's buffer has filled up; it must never be paced."""

    type_name = "live-array"
    live = True

    def __init__(self, data):
        self.info = StreamInfo(SFREQ, [f"ch{i}" for i in range(data.shape[0])])
        self.data, self.pos = np.ascontiguousarray(data), 0

    def read(self, n):
        block = self.data[:, self.pos:self.pos + n]
        self.pos += block.shape[1]
        self.ended = self.pos >= self.data.shape[1]
        return np.ascontiguousarray(block)


class Failing(ArraySource):
    """A source whose reads fail after a while (an unplugged device)."""

    type_name = "failing"

    def read(self, n):
        if self._pos >= 64:
            raise OSError("device unplugged")
        return super().read(n)


def test_start_stop_counters():
    p = chain(synthetic())
    runner = p.start(chunk=25)
    assert p.runner is runner and runner.running and runner in active()
    deadline = time.monotonic() + 60
    while runner.stats()["chunks"] < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    p.stop()
    s = runner.stats()
    assert not runner.running and s["state"] == "stopped" and runner not in active()
    assert not any(t.is_alive() for t in runner._threads)
    assert s["chunks"] >= 4 and s["samples"] == 25 * s["chunks"]
    assert s["dropped_chunks"] == 0 and s["error"] is None
    assert s["seconds"] == pytest.approx(s["samples"] / SFREQ)
    assert s["lag_ms"] is not None and s["lag_ms"] >= 0
    assert p.first_sample == s["samples"]
    p.stop()  # idempotent
    assert "stopped" in repr(runner)


def test_same_numbers_as_offline():
    """A background run over a source span equals Pipeline.process over the same samples."""
    src = eegkit.make_source(synthetic(duration=6.0))
    data = src.read_all()
    offline = chain(synthetic(duration=6.0)).process(data, sfreq=SFREQ, ch_names=src.info.ch_names)

    p = chain(synthetic(duration=6.0))
    kept = record(p, ["bp", "car", "bands"])
    runner = p.start(chunk=32, realtime=False, overrun="block")
    assert runner.join(60)
    s = runner.stats()
    assert s["state"] == "finished" and s["samples"] == data.shape[1] and s["dropped_chunks"] == 0
    for id in ("bp", "car", "bands"):
        got = joined(kept[id], offline[id].shape[0])
        np.testing.assert_array_equal(got, offline[id], err_msg=id)
        firsts = [f for f, _ in kept[id] if _.shape[1]]
        assert firsts == sorted(firsts)  # block start indices run forward


def test_duration_and_resume():
    p = chain(synthetic())
    runner = p.start(realtime=False, duration=1.0, chunk=32, overrun="block")
    assert runner.join(30) and runner.state == "finished"
    assert runner.stats()["samples"] == int(SFREQ)  # the last chunk is cut to the span
    first = p.first_sample
    runner = p.start(realtime=False, duration=0.5, overrun="block", resume=True)
    assert runner.join(30)
    assert p.first_sample == first + SFREQ / 2  # continued, not restarted
    runner = p.start(realtime=False, duration=0.5, overrun="block")
    assert runner.join(30)
    assert p.first_sample == SFREQ / 2  # a plain start rewinds and resets


def test_realtime_pacing_of_replayable_source():
    p = chain(synthetic())
    t0 = time.perf_counter()
    runner = p.start(realtime=True, duration=1.0, chunk=25)
    assert runner.join(30)
    elapsed = time.perf_counter() - t0
    s = runner.stats()
    # pacing holds each chunk back until its last sample is due: a lower bound only
    assert elapsed >= 1.0 - 0.01
    assert s["samples"] == 250 and s["paced_s"] > 0

    runner = p.start(realtime=False, duration=1.0, overrun="block")
    assert runner.join(30)
    assert runner.stats()["paced_s"] == 0.0


def test_live_source_is_never_paced():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((4, 2500)) * 1e-5
    p = eegkit.Pipeline(LiveArray(data))
    p.add("filters.bandpass", id="bp")
    kept = record(p, ["bp"])
    runner = p.start(realtime=True, chunk=50, overrun="block")
    assert runner.join(60)
    s = runner.stats()
    assert s["paced_s"] == 0.0 and s["samples"] == 2500 and s["state"] == "finished"
    ref = eegkit.Pipeline()
    ref.add("filters.bandpass", id="bp")
    np.testing.assert_allclose(joined(kept["bp"], 4), ref.process(data, sfreq=SFREQ)["bp"], rtol=1e-12)


def slow_pipeline(source, delay=0.004):
    """A pipeline slower than its source: a tap that sleeps on every chunk."""
    p = eegkit.Pipeline(source)
    p.add("filters.bandpass", id="bp")
    p.tap("bp", lambda block, first: time.sleep(delay))
    return p


def test_overrun_drop_oldest_keeps_memory_bounded():
    data = np.random.default_rng(1).standard_normal((8, 32 * 300))
    p = slow_pipeline(ArraySource(data, SFREQ))
    kept = record(p, ["bp"])
    runner = p.start(chunk=32, realtime=False, overrun="drop-oldest", queue_chunks=4)
    assert runner.join(60)
    s = runner.stats()
    assert s["queue_max"] <= 4                      # never more than queue_chunks waiting
    assert s["read_chunks"] == 300
    assert s["dropped_chunks"] > 0                  # the source outran the pipeline
    assert s["chunks"] + s["dropped_chunks"] == 300
    assert s["dropped_samples"] == 32 * s["dropped_chunks"]
    assert s["samples"] == 32 * s["chunks"] == p.first_sample
    assert sum(b.shape[1] for _, b in kept["bp"]) == s["samples"]


def test_overrun_block_loses_nothing():
    data = np.random.default_rng(2).standard_normal((8, 32 * 100))
    p = slow_pipeline(ArraySource(data, SFREQ), delay=0.002)
    kept = record(p, ["bp"])
    runner = p.start(chunk=32, realtime=False, overrun="block", queue_chunks=4)
    assert runner.join(60)
    s = runner.stats()
    assert s["queue_max"] <= 4 and s["dropped_chunks"] == 0 and s["samples"] == data.shape[1]
    ref = eegkit.Pipeline()
    ref.add("filters.bandpass", id="bp")
    np.testing.assert_allclose(joined(kept["bp"], 8), ref.process(data, sfreq=SFREQ)["bp"], rtol=1e-12)


def test_sinks_are_opened_and_closed(tmp_path):
    src = eegkit.make_source(synthetic(duration=2.0, n_channels=4))
    data = src.read_all()
    p = chain(synthetic(duration=2.0, n_channels=4))
    p.add_sink("npz", "car", path=str(tmp_path / "car.npz"))
    runner = p.start(realtime=False, overrun="block")
    assert runner.join(30) and runner.state == "finished"
    saved = np.load(tmp_path / "car.npz")
    ref = chain(synthetic(duration=2.0, n_channels=4)).process(data, sfreq=SFREQ,
                                                                ch_names=src.info.ch_names)
    np.testing.assert_allclose(saved["data"], ref["car"], rtol=1e-12, atol=1e-18)


def test_parameter_change_while_running_is_applied_between_chunks():
    p = chain(synthetic())
    seen = []
    p.tap("bp", lambda block, first: seen.append((first, p["bp"].params["low"])))
    runner = p.start(chunk=25)
    deadline = time.monotonic() + 60
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    p["bp"].set_params(low=8.0)
    while p["bp"].params["low"] != 8.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    n = len(seen)
    while len(seen) < n + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    p.stop()
    assert runner.stats()["state"] == "stopped"
    lows = [low for _, low in seen]
    switch = lows.index(8.0)
    assert set(lows[:switch]) == {1.0} and set(lows[switch:]) == {8.0}
    firsts = [f for f, _ in seen]
    assert firsts == list(range(0, 25 * len(seen), 25))  # one unbroken stream


def test_failing_source_ends_run_with_error():
    p = eegkit.Pipeline(Failing(np.zeros((2, 1000)), SFREQ))
    p.add("filters.bandpass", id="bp")
    runner = p.start(realtime=False, chunk=32, overrun="block")
    assert runner.join(30)
    s = runner.stats()
    assert s["state"] == "error"
    assert "source 'failing'" in s["error"] and "device unplugged" in s["error"]
    assert s["samples"] == 64


@pytest.mark.parametrize("options, match", [
    ({"chunk": 0}, "chunk must be a positive"),
    ({"overrun": "drop"}, "Allowed values are 'drop-oldest' and 'block'"),
    ({"queue_chunks": 0}, "queue_chunks must be a positive"),
    ({"duration": -1}, "duration must be a positive"),
])
def test_bad_options(options, match):
    p = chain(synthetic())
    with pytest.raises(ParameterError, match=match):
        p.start(**options)


def test_start_twice_and_stop_without_start():
    p = chain(synthetic())
    p.stop()  # nothing to stop
    p.start()
    try:
        with pytest.raises(PipelineError, match="already running"):
            p.start()
    finally:
        p.stop()
    assert isinstance(p.runner, Runner) and threading.active_count() >= 1
