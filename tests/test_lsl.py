"""LSL on loopback: a real file replayed by MNE-LSL, eegkit's outlet read by plain pylsl,
and a stream that disappears and comes back."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

# before liblsl is loaded: keep discovery on this machine
os.environ["LSLAPICFG"] = str(Path(__file__).resolve().parent / "data" / "lsl_api.cfg")

import importlib.resources  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pylsl = pytest.importorskip("pylsl")

from eegkit import MissingExtraError, SourceError, StreamInfo  # noqa: E402
from eegkit.sinks._lsl import LSLSink  # noqa: E402
from eegkit.sources import make_source, parse_source_arg  # noqa: E402
from eegkit.sources._lsl import LSLSource  # noqa: E402
from eegkit.testing import pull  # noqa: E402

SUBSECOND = importlib.resources.files("pyedflib") / "tests" / "data" / "test_subsecond.edf"


def unique(tag):
    """A stream name no other test (or machine) uses."""
    return f"eegkit-test-{tag}-{uuid.uuid4().hex[:8]}"




def outlet(name, n_channels=2, sfreq=100.0, fmt="float32", labels=None):
    """A plain pylsl outlet, with channel labels in its description when given."""
    info = pylsl.StreamInfo(name, "EEG", n_channels, sfreq, fmt, f"{name}-src")
    if labels:
        channels = info.desc().append_child("channels")
        for label in labels:
            ch = channels.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", "microvolts")
            ch.append_child_value("type", "EEG")
    return pylsl.StreamOutlet(info)


def test_replayed_file_arrives_sample_for_sample():
    mne = pytest.importorskip("mne")
    player_mod = pytest.importorskip("mne_lsl.player")
    raw = mne.io.read_raw(SUBSECOND, preload=True, verbose="error")
    ref = raw.get_data()
    name = unique("player")
    player = player_mod.PlayerLSL(raw, chunk_size=16, name=name)
    player.start()
    try:
        src = LSLSource(name=name, timeout=5.0)
        try:
            assert src.info.ch_names == ("Fp1",) and src.info.sfreq == 128.0
            assert src.info.units == ("V",) and src.info.ch_types == ("eeg",)
            assert src.live and src.n_samples is None
            data, stamps = pull(src, 64)
        finally:
            src.close()  # inlets before outlets
    finally:
        player.stop()
    # the inlet joins mid-stream: find where, from a run of 16 samples
    starts = [k for k in np.flatnonzero(ref[0] == data[0, 0])
              if np.array_equal(ref[0, k:k + 16], data[0, :16])]
    assert len(starts) == 1
    k = starts[0]
    np.testing.assert_array_equal(data, ref[:, k:k + data.shape[1]])
    np.testing.assert_allclose(np.diff(stamps), 1 / 128.0, rtol=1e-6)


def test_sink_is_read_by_a_plain_pylsl_inlet():
    name = unique("sink")
    info = StreamInfo(250.0, ["Fz", "Cz", "EOG1"], ch_types=["eeg", "eeg", "eog"], dtype="float32")
    sink = LSLSink(name)
    sink.open(info)
    try:
        found = pylsl.resolve_byprop("name", name, timeout=5.0)
        assert len(found) == 1 and found[0].source_id() == f"eegkit:{name}:EEG"
        inlet = pylsl.StreamInlet(found[0])
        try:
            full = inlet.info(5.0)
            ch = full.desc().child("channels").child("channel")
            labels, types, units = [], [], []
            while not ch.empty():
                labels.append(ch.child_value("label"))
                types.append(ch.child_value("type"))
                units.append(ch.child_value("unit"))
                ch = ch.next_sibling("channel")
            assert labels == ["Fz", "Cz", "EOG1"] and types == ["eeg", "eeg", "eog"]
            assert units == ["V"] * 3
            assert full.desc().child("eegkit").child_value("kind") == "timeseries"
            assert full.channel_format() == pylsl.cf_float32
            inlet.open_stream(5.0)
            x = np.random.default_rng(0).standard_normal((3, 100)).astype(np.float32) * 1e-5
            sink.write(x[:, :37], 0)
            sink.write(x[:, 37:], 37)
            got, deadline = [], time.monotonic() + 5.0
            while sum(len(s) for s in got) < 100 and time.monotonic() < deadline:
                samples, _ = inlet.pull_chunk(timeout=0.1)
                if samples:
                    got.append(samples)
            np.testing.assert_array_equal(np.concatenate(got).T, x)
        finally:
            inlet.close_stream()
    finally:
        sink.close()


def test_sink_to_source_round_trip_with_features():
    name = unique("features")
    info = StreamInfo(250.0, ["Fz", "Cz"]).expand("features", ["alpha", "beta"], [10, 20],
                                                  sfreq=250 / 25, unit="V²")
    sink = LSLSink(name, type="Features")
    sink.open(info)
    try:
        src = LSLSource(type="Features", name=name)
        try:
            assert src.info.ch_names == info.ch_names and src.info.units == ("V²",) * 4
            x = np.arange(40.0).reshape(4, 10)
            sink.write(x, 0)
            data, _ = pull(src, 10)
            np.testing.assert_array_equal(data, x)
        finally:
            src.close()
    finally:
        sink.close()


def test_units_are_scaled_to_volts():
    name = unique("uv")
    out = outlet(name, labels=["C3", "C4"])
    src = LSLSource(name=name)
    try:
        assert src.info.ch_names == ("C3", "C4") and src.info.units == ("V", "V")
        out.push_chunk(np.array([[10.0, -20.0], [30.0, 40.0]], dtype=np.float32))
        data, _ = pull(src, 2)
        np.testing.assert_allclose(data, [[10e-6, 30e-6], [-20e-6, 40e-6]], rtol=1e-6)
    finally:
        src.close()
        del out


def test_lost_stream_is_reconnected_and_the_gap_reported():
    name = unique("gap")
    sfreq, t0 = 100.0, pylsl.local_clock()
    values = np.arange(300, dtype=np.float32)[:, None].repeat(2, axis=1)
    first = outlet(name)
    src = LSLSource(name=name, timeout=5.0)
    try:
        first.push_chunk(values[:100], timestamp=t0 + 99 / sfreq)
        data, _ = pull(src, 100)
        np.testing.assert_array_equal(data[0], np.arange(100))
        del first  # the amplifier goes away
        deadline = time.monotonic() + 5.0
        while src._inlet is not None:
            assert time.monotonic() < deadline, "the loss was never noticed"
            assert src.read(10).shape[1] == 0
            time.sleep(0.01)
        second = outlet(name)  # ... and comes back; samples 100..149 never existed
        while not second.have_consumers():
            assert time.monotonic() < deadline + 5.0, "never reconnected"
            src.read(10)
            time.sleep(0.01)
        assert src.reconnects == 1
        second.push_chunk(values[150:200], timestamp=t0 + 199 / sfreq)
        data, stamps = pull(src, 50)
        np.testing.assert_array_equal(data[0], np.arange(150, 200))
        np.testing.assert_allclose(stamps[0] - t0, 1.5, atol=1e-3)
        assert src.markers() == [(100, "gap: 50 samples lost")]
        assert (src.gaps, src.samples_lost) == (1, 50)
    finally:
        src.close()


def test_time_jump_is_a_gap_but_jitter_is_not():
    name = unique("jump")
    sfreq, t0 = 100.0, pylsl.local_clock()
    out = outlet(name)
    src = LSLSource(name=name)
    try:
        x = np.zeros((10, 2), dtype=np.float32)
        out.push_chunk(x, timestamp=t0 + 9 / sfreq)
        out.push_chunk(x, timestamp=t0 + 19 / sfreq + 0.004)  # 4 ms late: jitter
        out.push_chunk(x, timestamp=t0 + 59 / sfreq)  # samples 20..49 missing
        pull(src, 30)
        assert src.markers() == [(20, "gap: 30 samples lost")]
        assert (src.gaps, src.samples_lost, src.reconnects) == (1, 30, 0)
    finally:
        src.close()
        del out


def test_no_matching_stream_lists_what_was_seen():
    other, absent = unique("other"), unique("absent")
    out = outlet(other)
    try:
        with pytest.raises(SourceError, match=rf"name='{absent}' appeared within 0.3 s; "
                                              rf"streams seen: .*'{other}' \(type 'EEG', 2 ch, 100 Hz\)"):
            LSLSource(name=absent, timeout=0.3)
    finally:
        del out


def test_marker_streams_are_refused():
    name = unique("markers")
    out = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Markers", 1, 0.0, "string", name))
    try:
        with pytest.raises(SourceError, match="not a regular numeric stream"):
            LSLSource(name=name)
    finally:
        del out


def test_spec_round_trip():
    name = unique("spec")
    out = outlet(name)
    try:
        src = make_source(parse_source_arg(f"lsl:{name}"))
        assert src.to_spec() == {"type": "lsl", "params": {"name": name, "timeout": 5.0}}
        src.close()
    finally:
        del out


def test_missing_pylsl_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pylsl", None)
    with pytest.raises(MissingExtraError, match=r"LSLSource needs .*'pylsl'.*eegkit\[lsl\]"):
        LSLSource(name="whatever")
    with pytest.raises(MissingExtraError, match=r"LSLSink needs .*eegkit\[lsl\]"):
        LSLSink("whatever")


def test_pipeline_runs_from_an_lsl_stream():
    import eegkit
    from scipy import signal

    name = unique("pipeline")
    out = outlet(name, n_channels=2, sfreq=100.0, fmt="double64")
    src = LSLSource(name=name)
    try:
        x = np.random.default_rng(5).standard_normal((2, 300))
        out.push_chunk(np.ascontiguousarray(x.T))  # already queued in the inlet
        p = eegkit.Pipeline(source=src)
        p.add("filters.lowpass", id="lp", cutoff=20.0)
        got = p.run(duration=3.0, chunk=25)["lp"]
        sos = signal.butter(4, 20.0, fs=100.0, output="sos")
        np.testing.assert_allclose(got, signal.sosfilt(sos, x), rtol=1e-9, atol=1e-12)
    finally:
        src.close()
        del out
