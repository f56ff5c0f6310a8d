"""FeatureSink: per-window tables in CSV and Parquet."""

from __future__ import annotations

import csv
import importlib.resources
import sys

import numpy as np
import pytest

from eegkit import MissingExtraError, ParameterError, StreamInfo
from eegkit.sinks import make_sink
from eegkit.sinks._features import FeatureSink

BANDS = StreamInfo(250.0, ["Fz", "Cz", "Pz"]).expand(
    "features", ["alpha", "beta"], [10.5, 21.5], sfreq=250.0 / 32, unit="V²")


def feature_blocks(info, n=50, seed=0):
    """Random positive feature values, split into uneven blocks."""
    values = np.random.default_rng(seed).random((info.n_channels, n)) * 1e-11
    cuts = [0, 1, 8, 9, 30, n]
    return values, [(values[:, a:b], a) for a, b in zip(cuts[:-1], cuts[1:])]


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


def test_csv_wide_table(tmp_path):
    values, blocks = feature_blocks(BANDS)
    sink = FeatureSink(tmp_path / "out" / "bands.csv")
    sink.open(BANDS)
    for block, first in blocks:
        sink.write(block, first)
        assert read_csv(tmp_path / "out" / "bands.csv")[1].shape[0] == first + block.shape[1]  # flushed
    sink.close()
    header, table = read_csv(tmp_path / "out" / "bands.csv")
    assert header == ["sample", "time", "Fz:alpha", "Fz:beta", "Cz:alpha", "Cz:beta",
                      "Pz:alpha", "Pz:beta"]
    np.testing.assert_array_equal(table[:, 0], np.arange(50))
    np.testing.assert_array_equal(table[:, 1], np.arange(50) / BANDS.sfreq)
    np.testing.assert_array_equal(table[:, 2:], values.T)  # repr round-trips float64 exactly


def test_parquet_wide_table(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    values, blocks = feature_blocks(BANDS)
    sink = make_sink("features", {"path": str(tmp_path / "bands.parquet")})
    sink.open(BANDS)
    for block, first in blocks:
        sink.write(block, first)
    sink.close()
    table = pq.read_table(tmp_path / "bands.parquet")
    assert table.column_names == sink.columns
    np.testing.assert_array_equal(table["sample"].to_numpy(), np.arange(50))
    np.testing.assert_array_equal(table["time"].to_numpy(), np.arange(50) / BANDS.sfreq)
    got = np.stack([table[c].to_numpy() for c in BANDS.ch_names])
    np.testing.assert_array_equal(got, values)
    assert table.schema.metadata[b"eegkit_kind"] == b"features"


def test_spectrum_stream_columns(tmp_path):
    info = StreamInfo(100.0, ["O1"]).expand("spectrum", ["0.0", "12.5", "25.0"], [0, 12.5, 25],
                                            sfreq=100.0 / 10, unit="V²/Hz")
    sink = FeatureSink(tmp_path / "spec.csv")
    sink.open(info)
    sink.write(np.ones((3, 2), dtype=np.float32), 7)
    sink.close()
    header, table = read_csv(tmp_path / "spec.csv")
    assert header == ["sample", "time", "O1:0.0", "O1:12.5", "O1:25.0"]
    np.testing.assert_array_equal(table[:, :2], [[7, 0.7], [8, 0.8]])


def test_rejects_time_series_and_bad_suffix(tmp_path):
    sink = FeatureSink(tmp_path / "x.csv")
    with pytest.raises(ParameterError, match="'features' or 'spectrum' stream, got kind 'timeseries'"):
        sink.open(StreamInfo(250.0, ["Fz"]))
    with pytest.raises(ParameterError, match=r"\.csv or \.parquet.*x.xlsx"):
        FeatureSink(tmp_path / "x.xlsx")
    sink = FeatureSink(tmp_path / "y.csv")
    sink.open(BANDS)
    with pytest.raises(ParameterError, match=r"shape \(6, n\), got \(2, 3\)"):
        sink.write(np.zeros((2, 3)), 0)
    sink.close()


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingExtraError, match=r"'pyarrow'.*pip install 'eegkit\[parquet\]'"):
        FeatureSink(tmp_path / "x.parquet")
    FeatureSink(tmp_path / "x.csv")  # CSV needs nothing extra


def test_pipeline_band_powers_of_a_real_file(tmp_path):
    pytest.importorskip("mne")
    pytest.importorskip("pyedflib")
    import eegkit
    from eegkit.sources._file import FileSource

    path = importlib.resources.files("pyedflib") / "data" / "test_generator.edf"
    p = eegkit.Pipeline(source=FileSource(path, channels=["sine 8 Hz", "sine 17 Hz"]))
    p.add("brain_fft.band_power", id="bands", window=200, step=50)
    p.add_sink("features", input="bands", path=str(tmp_path / "bands.csv"))
    out = p.run(duration=20.0, chunk=64)["bands"]
    header, table = read_csv(tmp_path / "bands.csv")
    assert header[2:] == list(p.info_of("bands").ch_names)
    np.testing.assert_array_equal(table[:, 2:], out.T)
    np.testing.assert_array_equal(table[:, 0], np.arange(out.shape[1]))
    # the 8 Hz sine has its power in alpha, the 17 Hz one in beta
    mean = dict(zip(header[2:], table[:, 2:].mean(axis=0)))
    for channel, band in (("sine 8 Hz", "alpha"), ("sine 17 Hz", "beta")):
        own = {c.split(":")[1]: v for c, v in mean.items() if c.startswith(channel + ":")}
        assert max(own, key=own.get) == band, own
