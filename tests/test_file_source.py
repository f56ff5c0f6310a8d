"""FileSource on real recordings shipped with pyedflib, compared with MNE itself."""

from __future__ import annotations

import importlib.resources
import re
import sys
import time

import numpy as np
import pytest
from scipy import signal

mne = pytest.importorskip("mne")
pytest.importorskip("pyedflib")

from eegkit import MissingExtraError, ParameterError, SourceError  # noqa: E402
from eegkit.sources import make_source, parse_source_arg  # noqa: E402
from eegkit.sources._file import FileSource  # noqa: E402

PYEDFLIB = importlib.resources.files("pyedflib")
TESTS_DATA = PYEDFLIB / "tests" / "data"
SUBSECOND = TESTS_DATA / "test_subsecond.edf"  # real clinical EEG, EDF+ with annotations
GENERATOR = PYEDFLIB / "data" / "test_generator.edf"  # known-answer sines, 200 Hz
BDFS = [TESTS_DATA / n for n in ("test_generator.bdf", "test_generator_datarec_generator_0_5.bdf",
                                 "test_generator_datarec_generator_2.bdf")]
REAL_FILES = [SUBSECOND, GENERATOR, *BDFS]
CHUNKS = [1, 7, 32, 300, 2049]  # cycled: single samples, odd sizes, several records


def read_in_chunks(src, sizes=CHUNKS):
    """Read a source to its end with cycling chunk sizes; return data and markers."""
    parts, markers, i = [], [], 0
    while not src.ended:
        block = src.read(sizes[i % len(sizes)])
        assert block.flags.c_contiguous and block.dtype == np.float64
        assert block.shape[0] == src.info.n_channels
        parts.append(block)
        markers += src.markers()
        i += 1
    return np.concatenate(parts, axis=1), markers


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_chunks_equal_mne(path):
    ref_raw = mne.io.read_raw(path, preload=True, verbose="error")
    src = FileSource(path)
    assert src.info.sfreq == ref_raw.info["sfreq"]
    assert src.info.ch_names == tuple(ref_raw.ch_names)
    assert src.info.ch_types == tuple(ref_raw.get_channel_types())
    assert set(src.info.units) == {"V"}
    assert src.n_samples == ref_raw.n_times and not src.live
    assert src.raw.preload == src.mixed_rates  # read chunk by chunk from disk otherwise
    data, _ = read_in_chunks(src)
    np.testing.assert_array_equal(data, ref_raw.get_data())
    assert src.read(10).shape == (src.info.n_channels, 0) and src.ended
    src.reset()
    assert not src.ended
    np.testing.assert_array_equal(src.read(5), ref_raw.get_data(stop=5))


def test_mixed_rate_files_are_loaded_whole():
    # the BDFs hold signals at several rates; MNE upsamples per read span
    assert all(FileSource(p).mixed_rates for p in BDFS)
    assert not FileSource(GENERATOR).mixed_rates


def _sine_channels(names):
    """(row, documented frequency) of channels named like 'sine 8.5 Hz' or 'sine 5Hz'."""
    out = []
    for i, name in enumerate(names):
        m = re.fullmatch(r"sine ([0-9.]+) ?Hz", name)
        if m:
            out.append((i, float(m.group(1))))
    return out


@pytest.mark.parametrize("path", [GENERATOR, *BDFS], ids=lambda p: p.name)
def test_known_sines_peak_at_their_frequency(path):
    src = FileSource(path)
    data, _ = read_in_chunks(src, sizes=[1000])
    sines = _sine_channels(src.info.ch_names)
    assert sines, src.info.ch_names
    nperseg = min(data.shape[1], int(src.info.sfreq * 100))  # 0.01 Hz bins at most
    freqs, psd = signal.welch(data, fs=src.info.sfreq, nperseg=nperseg)
    df = freqs[1] - freqs[0]
    for row, f in sines:
        peak = freqs[np.argmax(psd[row])]
        assert abs(peak - f) <= df / 2 + 1e-9, (src.info.ch_names[row], peak, f)


def test_annotations_become_markers_as_reading_passes_them():
    raw = mne.io.read_raw(SUBSECOND, verbose="error")
    events, ids = mne.events_from_annotations(raw, verbose="error")
    names = {v: k for k, v in ids.items()}
    expected = [(int(s) - raw.first_samp, names[e]) for s, _, e in events]
    assert len(expected) == 4
    src = FileSource(SUBSECOND)
    first = expected[0][0]
    src.read(first)  # samples 0 .. first-1: the marker at `first` is not passed yet
    assert src.markers() == []
    src.read(1)
    assert src.markers() == [expected[0]]
    assert src.markers() == []  # drained
    _, rest = read_in_chunks(src)
    assert rest == expected[1:]
    src.reset()
    _, again = read_in_chunks(src)
    assert again == expected


def _fif_with_stim(tmp_path):
    """A FIF file cut from test_generator.edf (first_samp != 0) with a stim channel,
    its events, and an annotation."""
    raw = mne.io.read_raw(GENERATOR, preload=True, verbose="error").crop(5.0, 25.0)
    raw.set_annotations(None)
    sf = raw.info["sfreq"]
    stim = np.zeros((1, raw.n_times))
    onsets = {400: 3, 1234: 7, 3001: 3}
    for s, v in onsets.items():
        stim[0, s:s + 20] = v
    stim_raw = mne.io.RawArray(stim, mne.create_info(["STI 014"], sf, "stim"),
                               first_samp=raw.first_samp, verbose="error")
    raw.add_channels([stim_raw], force_update_info=True)
    # onsets count from meas_date, so 2.5 s into the cut is first_time + 2.5
    raw.set_annotations(mne.Annotations([raw.first_time + 2.5], [0.0], ["blink"],
                                        orig_time=raw.info["meas_date"]))
    path = tmp_path / "cut_raw.fif"
    raw.save(path, verbose="error")
    return path, raw, onsets


def test_fif_stim_events_and_annotations(tmp_path):
    path, raw, onsets = _fif_with_stim(tmp_path)
    reread = mne.io.read_raw(path, verbose="error")
    assert reread.first_samp != 0
    src = FileSource(path)
    assert "STI 014" not in src.info.ch_names  # stim rows come out as markers
    data, markers = read_in_chunks(src)
    np.testing.assert_array_equal(data, reread.get_data(picks=src.info.ch_names))
    expected = sorted([(s, str(v)) for s, v in onsets.items()] + [(500, "blink")])
    assert markers == expected
    everything = FileSource(path, channels="all")
    assert everything.info.ch_names[-1] == "STI 014"
    assert everything.info.ch_types[-1] == "stim"


def test_channel_picks():
    names = ["sine 8 Hz", "ramp"]
    src = FileSource(GENERATOR, channels=names)
    assert src.info.ch_names == tuple(names)
    ref = mne.io.read_raw(GENERATOR, verbose="error").get_data(picks=names, stop=100)
    np.testing.assert_array_equal(src.read(100), ref)
    assert FileSource(GENERATOR, channels="eeg").info.n_channels == 11
    with pytest.raises(ParameterError, match=r"\['Cz'\] are not in .*test_generator.edf.*sine 8 Hz"):
        FileSource(GENERATOR, channels=["Cz"])
    with pytest.raises(ParameterError, match="channels='ecg' picks nothing"):
        FileSource(GENERATOR, channels="ecg")


def test_spec_round_trip():
    src = FileSource(GENERATOR, channels=["ramp"], preload=True)
    spec = src.to_spec()
    assert spec == {"type": "file", "params": {"path": str(GENERATOR), "preload": True,
                                               "channels": ["ramp"]}}
    again = make_source(spec)
    np.testing.assert_array_equal(again.read_all(), src.read_all())
    assert parse_source_arg(f"file:{GENERATOR}") == {"type": "file", "params": {"path": str(GENERATOR)}}
    assert make_source(parse_source_arg(f"file:{GENERATOR}")).n_samples == 120000


def test_missing_file():
    with pytest.raises(SourceError, match="file not found: .*nope.edf"):
        FileSource("nope.edf")


@pytest.mark.filterwarnings("ignore:Invalid measurement date")
def test_corrupt_file_names_path_and_mne_message(tmp_path):
    bad = tmp_path / "garbage.edf"
    bad.write_bytes(b"this is not an EDF header " * 40)
    with pytest.raises(SourceError, match=r"MNE could not read .*garbage.edf: ValueError: Bad EDF"):
        FileSource(bad)
    head = tmp_path / "head_only.edf"
    head.write_bytes(GENERATOR.read_bytes()[:100])
    with pytest.raises(SourceError, match="head_only.edf"):
        FileSource(head)
    other = tmp_path / "rec.xyz"
    other.write_bytes(b"0" * 100)
    with pytest.raises(SourceError, match=r"rec.xyz.*Unsupported file type"):
        FileSource(other)


@pytest.mark.filterwarnings("ignore:Omitted 1 annotation")
def test_truncated_file_reads_what_is_there(tmp_path):
    whole = GENERATOR.read_bytes()
    cut = tmp_path / "cut.edf"
    cut.write_bytes(whole[: len(whole) // 2 + 17])  # ends inside a data record
    with pytest.warns(RuntimeWarning, match="Number of records"):
        src = FileSource(cut)
    ref = mne.io.read_raw(GENERATOR, verbose="error").get_data(stop=src.n_samples)
    assert 0 < src.n_samples < 120000 and src.n_samples % 200 == 0  # whole records only
    np.testing.assert_array_equal(src.read_all(), ref)


def test_replay_speed_paces_itself():
    src = FileSource(SUBSECOND, replay_speed=20.0)
    assert src.live
    t0 = time.perf_counter()
    first = src.read(10**6)
    time.sleep(0.2)
    second = src.read(10**6)
    elapsed = time.perf_counter() - t0
    got = first.shape[1] + second.shape[1]
    # nothing runs ahead of the clock, and what is due after the sleep has come
    assert 0.2 * 128 * 20 - 1 <= got <= elapsed * 128 * 20 + 1
    assert src.to_spec()["params"]["replay_speed"] == 20.0
    with pytest.raises(ParameterError, match="replay_speed"):
        FileSource(SUBSECOND, replay_speed=0)


def test_missing_mne_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mne", None)
    with pytest.raises(MissingExtraError, match=r"FileSource needs .*'mne'.*eegkit\[io\]"):
        FileSource(GENERATOR)


def test_pipeline_bandpass_over_a_real_file():
    import eegkit

    p = eegkit.Pipeline(source=FileSource(GENERATOR))
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0, order=4)
    out = p.run(duration=60.0, chunk=37)["bp"]
    x = mne.io.read_raw(GENERATOR, verbose="error").get_data(stop=12000)
    sos = signal.butter(4, [1.0, 40.0], btype="bandpass", fs=200.0, output="sos")
    np.testing.assert_allclose(out, signal.sosfilt(sos, x, axis=-1), rtol=1e-9, atol=1e-15)


def test_require_tells_missing_from_broken(tmp_path, monkeypatch):
    from eegkit._optional import require

    pkg = tmp_path / "eegkit_broken_dep"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise OSError('libfoo.so: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtraError, match=r"'eegkit_broken_dep', which is installed but failed "
                                                r"to import \(OSError: libfoo.so.*eegkit\[io\]"):
        require("eegkit_broken_dep", "io", "Reading files")
    with pytest.raises(MissingExtraError, match=r"Reading files needs the optional package "
                                                r"'eegkit_absent_dep', which is not installed"):
        require("eegkit_absent_dep.sub", "io", "Reading files")
    assert require("numpy", "io", "x") is np
