"""Overload: a live source faster than the pipeline (a slow fixture stage).

Memory stays bounded by the runner's queue, the overrun policy is explicit
(``drop-oldest`` counts what it drops, ``block`` loses nothing), and a recording
never has a silent gap: it keeps up, or the run stops with an error.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import eegkit
from eegkit import Source, StreamInfo
from eegkit.plugin import PluginManager, package_dir

FAULTS = Path(__file__).resolve().parent / "fixtures" / "faults"
SFREQ, CHUNK, ROWS = 250.0, 25, 8
pytestmark = pytest.mark.filterwarnings("ignore:.*object mode")


class Firehose(Source):
    """A live source with every sample already waiting (an amplifier buffer that
    filled up while the pipeline was busy): as fast as a source can be."""

    type_name = "firehose"
    live = True

    def __init__(self, data):
        self.info = StreamInfo(SFREQ, [f"ch{i}" for i in range(data.shape[0])])
        self.data, self.pos = data, 0

    def read(self, n):
        block = self.data[:, self.pos:self.pos + n]
        self.pos += block.shape[1]
        self.ended = self.pos >= self.data.shape[1]
        return np.ascontiguousarray(block)


@pytest.fixture(scope="module")
def plugins():
    return PluginManager(paths=[FAULTS, package_dir("plugins")], entry_points=False)


def data(n_chunks, seed=0):
    return np.random.default_rng(seed).standard_normal((ROWS, CHUNK * n_chunks)) * 1e-5


def slow(plugins, source, delay=0.004):
    """identity (slow) → band-pass → band powers; the identity's output is the input
    the pipeline really processed."""
    p = eegkit.Pipeline(source, plugins=plugins)
    p.add("faults.slow", id="slow", delay=delay)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("brain_fft.band_power", id="bands", window=64, step=16)
    return p


def keep(p, ids):
    kept = {id: [] for id in ids}
    for id in ids:
        p.tap(id, lambda block, first, id=id: kept[id].append(block.copy()))
    return kept


def joined(parts):
    return np.concatenate(parts, axis=1)


def test_drop_oldest_bounds_memory_and_counts_every_drop(plugins):
    x = data(400)
    p = slow(plugins, Firehose(x))
    kept = keep(p, ["slow", "bands"])
    runner = p.start(chunk=CHUNK, overrun="drop-oldest", queue_chunks=8)
    assert runner.join(60)
    s = runner.stats()
    assert runner.state == "finished" and runner.error is None
    assert s["read_chunks"] == 400 and s["dropped_chunks"] > 0
    assert s["chunks"] + s["dropped_chunks"] == 400
    assert s["dropped_samples"] == CHUNK * s["dropped_chunks"]
    assert s["queue_max"] <= 8
    # what was processed was processed right: equal to an offline run over the same
    # (spliced) input; the gaps are the counted drops, nothing else
    processed = joined(kept["slow"])
    assert processed.shape[1] == s["samples"]
    ref = slow(plugins, None, delay=0.0).process(processed, sfreq=SFREQ)
    assert np.array_equal(joined(kept["bands"]), ref["bands"])


def test_block_loses_nothing_and_memory_stays_bounded(plugins):
    x = data(200, seed=1)
    p = slow(plugins, Firehose(x), delay=0.002)
    kept = keep(p, ["bands"])
    runner = p.start(chunk=CHUNK, overrun="block", queue_chunks=4)
    assert runner.join(60)
    s = runner.stats()
    assert s["dropped_chunks"] == 0 and s["samples"] == x.shape[1] and s["queue_max"] <= 4
    ref = slow(plugins, None, delay=0.0).process(x, sfreq=SFREQ)
    assert np.array_equal(joined(kept["bands"]), ref["bands"])


def peak_bytes_of_run(plugins, n_chunks, queue_chunks):
    """Peak Python-allocated memory during an overloaded run (data allocated before)."""
    x = data(n_chunks, seed=2)
    p = slow(plugins, Firehose(x), delay=0.001)
    p.open(p.source.info)
    p.push(x[:, :CHUNK], outputs=[])  # plans and buffers exist before measuring
    p.source.pos = 0
    tracemalloc.start()
    try:
        runner = p.start(chunk=CHUNK, overrun="drop-oldest", queue_chunks=queue_chunks,
                         resume=True)
        assert runner.join(120)
        peak = tracemalloc.get_traced_memory()[1]
        runner = p.runner
        del p
        gc.collect()
        left = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return peak, left, runner.stats()


def test_memory_does_not_grow_with_the_length_of_the_overload(plugins):
    chunk_bytes = ROWS * CHUNK * 8
    peak_bytes_of_run(plugins, 100, queue_chunks=16)  # one-time allocations happen here
    peaks, lefts = [], []
    for n in (300, 1200, 4800):
        peak, left, s = peak_bytes_of_run(plugins, n, queue_chunks=16)
        assert s["queue_max"] <= 16 and s["chunks"] + s["dropped_chunks"] == n
        assert s["dropped_chunks"] > n // 2
        peaks.append(peak)
        lefts.append(left)
    print(f"\noverload, 300/1200/4800 chunks read: peak traced memory {peaks} bytes, "
          f"left after the run {lefts} bytes")
    # 16x more data through the same overloaded run: the peak is set by the queue
    # (16 chunks of 1.6 kB), not by how much was read (4800 chunks are 7.7 MB) ...
    assert max(peaks) < 500_000 and peaks[2] - peaks[0] < 0.05 * 4500 * chunk_bytes, peaks
    # ... and nothing stays behind in proportion to what was read: 4500 more chunks leave
    # less than 8 bytes per chunk more, where keeping any object per chunk costs 16 or
    # more (what is left varies by up to ~8 kB run to run: thread and weak-set
    # bookkeeping of the runner still alive at the measurement)
    assert lefts[2] - lefts[0] < 8 * 4500, lefts


# -- recording never drops ----------------------------------------------------------------
def recorded(path):
    mne = pytest.importorskip("mne")
    return mne.io.read_raw(path, verbose="error").get_data()


def test_recording_stops_the_run_rather_than_record_a_gap(plugins, tmp_path):
    x = data(400, seed=3)
    p = slow(plugins, Firehose(x))
    p.add_sink("record", "slow", path=str(tmp_path / "rec.bdf"))
    runner = p.start(chunk=CHUNK, overrun="drop-oldest", queue_chunks=4)
    assert runner.join(60)
    s = runner.stats()
    assert runner.state == "error"
    assert "record" in runner.error and "rec.bdf" in runner.error and "overrun='block'" in runner.error
    assert s["dropped_chunks"] == 0  # the run stopped instead of dropping
    n = s["samples"]
    # what was queued when it fell behind was still written: all read but the last chunk
    assert n == (s["read_chunks"] - 1) * CHUNK and 0 < n < x.shape[1]
    got = recorded(tmp_path / "rec.bdf")
    assert got.shape[1] >= n
    # no gap: the file holds the first n samples exactly (BDF quantisation: 31.25 nV)
    np.testing.assert_allclose(got[:, :n], x[:, :n], rtol=0, atol=2e-8)


def test_recording_with_block_keeps_up_and_holds_everything(plugins, tmp_path):
    x = data(120, seed=4)
    p = slow(plugins, Firehose(x), delay=0.002)
    p.add_sink("record", "slow", path=str(tmp_path / "rec.bdf"))
    runner = p.start(chunk=CHUNK, overrun="block", queue_chunks=4)
    assert runner.join(60)
    assert runner.state == "finished" and runner.stats()["dropped_chunks"] == 0
    got = recorded(tmp_path / "rec.bdf")
    np.testing.assert_allclose(got[:, :x.shape[1]], x, rtol=0, atol=2e-8)


def test_in_process_stage_past_its_deadline_is_absorbed_by_the_queue(plugins):
    """In process there is no per-chunk deadline (a kernel cannot be interrupted): a
    stage that stalls holds the pipeline up, the queue absorbs the burst or drops the
    oldest chunks, the stage stays enabled, and the lag shows it. (Isolated stages
    have a deadline: see test_faults.py.)"""
    x = data(200, seed=5)
    p = eegkit.Pipeline(Firehose(x), plugins=plugins)
    p.add("faults.stall", id="stall", at=5, delay=0.5)
    runner = p.start(chunk=CHUNK, overrun="drop-oldest", queue_chunks=16)
    assert runner.join(60)
    s = runner.stats()
    assert p["stall"].status == "ok"
    assert s["max_lag_ms"] >= 400 and s["dropped_chunks"] > 0
    assert s["chunks"] + s["dropped_chunks"] == 200
