"""Bad data: truncated and corrupted EDF/BDF/FIF files (written here from real pyedflib
recordings), headers that lie about their length, NaN channels, zero-length and
changing chunks, live sources that stall or disconnect. Each gives a clear error
(SourceError naming the file) or the handling documented in
eegkit/docs/reliability.md; never a crash or silently wrong samples."""

from __future__ import annotations

import importlib.resources
import os
import shutil
import threading
import time
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eegkit
from eegkit import ParameterError, PipelineError, Source, SourceError, StreamInfo

mne = pytest.importorskip("mne")
from eegkit.sources._file import FileSource  # noqa: E402

DATA = importlib.resources.files("pyedflib")
GENERATOR = DATA / "data" / "test_generator.edf"            # 11 signals + annotations, 200 Hz
SUBSECOND = DATA / "tests" / "data" / "test_subsecond.edf"   # real EEG, 128 Hz
BDF = DATA / "tests" / "data" / "test_generator.bdf"
N_SIGNALS = 12                                               # of GENERATOR's header
HEADER = 256 * (N_SIGNALS + 1)
pytestmark = pytest.mark.filterwarnings("ignore:Omitted .* annotation",
                                        "ignore:Number of records from the header",
                                        "ignore:Invalid tag with only",
                                        "ignore:Channel names are not unique")


def field(data: bytes, offset: int, width: int, text: str) -> bytes:
    """``data`` with one fixed-width ASCII header field replaced."""
    b = bytearray(data)
    b[offset:offset + width] = text.encode().ljust(width)
    return bytes(b)


def signal_field(index):
    """Offset of the per-signal field ``index`` (0 label, 1 transducer, 2 unit, 3 pmin,
    4 pmax, 5 dmin, 6 dmax, 7 prefilter, 8 samples per record) of signal 0."""
    widths = [16, 80, 8, 8, 8, 8, 8, 80, 8]
    return 256 + sum(w * N_SIGNALS for w in widths[:index])


@pytest.fixture(scope="module")
def original():
    return mne.io.read_raw(GENERATOR, verbose="error").get_data()


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- EDF / BDF ---------------------------------------------------------------------------
BROKEN_HEADERS = [
    # (label, bytes of the file, words of the SourceError)
    ("header_cut", lambda b: b[:300], "ValueError"),
    ("header_minus_10", lambda b: b[:HEADER - 10], "MNE could not read"),
    ("header_only", lambda b: b[:HEADER], "MNE could not read"),
    ("n_records_text", lambda b: field(b, 236, 8, "abc"), "invalid literal for int()"),
    ("n_signals_text", lambda b: field(b, 252, 4, "abc"), "invalid literal for int()"),
    ("n_signals_too_many", lambda b: field(b, 252, 4, "9999"), "MNE could not read"),
    ("header_bytes_lie", lambda b: field(b, 184, 8, "99999"), "MNE could not read"),
    ("samples_per_record_text", lambda b: field(b, signal_field(8), 8, "abc"), "invalid literal"),
    ("garbage_after_header", lambda b: b[:HEADER] + np.random.default_rng(0).bytes(len(b) - HEADER),
     "annotations channel"),
]


@pytest.mark.parametrize("label, mutate, words", BROKEN_HEADERS, ids=[c[0] for c in BROKEN_HEADERS])
def test_broken_edf_gives_source_error_naming_the_file(tmp_path, label, mutate, words):
    path = write(tmp_path, f"{label}.edf", mutate(GENERATOR.read_bytes()))
    with pytest.raises(SourceError) as err:
        FileSource(path).read_all()
    assert str(path) in str(err.value) and words in str(err.value)


@pytest.mark.parametrize("factor", [2.0, 0.5, -1])
def test_header_lying_about_its_length_reads_what_the_file_holds(tmp_path, original, factor):
    """MNE trusts the file size over the header's record count, and says so."""
    whole = GENERATOR.read_bytes()
    count = int(whole[236:244])
    lie = str(int(count * factor)) if factor > 0 else "-1"
    path = write(tmp_path, "lies.edf", field(whole, 236, 8, lie))
    with pytest.warns(RuntimeWarning, match="Number of records from the header does not match"):
        src = FileSource(path)
    assert src.n_samples == original.shape[1]
    np.testing.assert_array_equal(src.read_all(), original)


@pytest.mark.parametrize("cut", [0.25, 0.5, 0.999])
def test_edf_cut_inside_the_data_reads_whole_records_only(tmp_path, original, cut):
    whole = GENERATOR.read_bytes()
    path = write(tmp_path, "cut.edf", whole[:HEADER + int((len(whole) - HEADER) * cut)])
    with pytest.warns(RuntimeWarning, match="Number of records"):
        src = FileSource(path)
    x = src.read_all()
    assert 0 < x.shape[1] < original.shape[1] and x.shape[1] % 200 == 0   # 1 s records
    np.testing.assert_array_equal(x, original[:, :x.shape[1]])


def test_bdf_cut_inside_the_data_and_in_its_header(tmp_path):
    whole = BDF.read_bytes()
    ref = mne.io.read_raw(BDF, verbose="error").get_data()
    n = int(whole[252:256])
    header = 256 * (n + 1)
    path = write(tmp_path, "cut.bdf", whole[:header + (len(whole) - header) // 3 + 5])
    with pytest.warns(RuntimeWarning, match="Number of records"):
        src = FileSource(path)
    x = src.read_all()
    assert 0 < x.shape[1] < ref.shape[1]
    # signals at the file's top rate are exact; MNE resamples the slower ones (this file
    # mixes rates) over the whole span it reads, so those follow the shorter span
    n_samps = list(src.raw._raw_extras[0]["n_samps"])
    top = [i for i, k in enumerate(n_samps[:x.shape[0]]) if k == max(n_samps)]
    assert top
    np.testing.assert_array_equal(x[top], ref[top, :x.shape[1]])
    path = write(tmp_path, "head.bdf", whole[:header - 1])
    with pytest.raises(SourceError, match="head.bdf"):
        FileSource(path)


@pytest.mark.parametrize("index, words", [(4, "Physical range is not defined"),
                                          (6, "Scaling factor will not be defined")])
def test_degenerate_calibration_is_warned_and_samples_stay_finite(tmp_path, original, index, words):
    """Physical (or digital) min equal to max: MNE warns and leaves that signal
    uncalibrated; the other signals are unchanged."""
    whole = GENERATOR.read_bytes()
    low = whole[signal_field(index - 1):signal_field(index - 1) + 8].decode().strip()
    path = write(tmp_path, "flat.edf", field(whole, signal_field(index), 8, low))
    with pytest.warns(RuntimeWarning, match=words):
        src = FileSource(path)
    x = src.read_all()
    assert np.isfinite(x).all()
    np.testing.assert_array_equal(x[1:], original[1:])


def test_file_that_shrinks_while_it_is_read(tmp_path, original):
    path = tmp_path / "shrinking.edf"
    shutil.copy(GENERATOR, path)
    src = FileSource(path)
    np.testing.assert_array_equal(src.read(1000), original[:, :1000])
    os.truncate(path, os.path.getsize(path) // 4)
    with pytest.raises(SourceError, match=r"reading samples \d+\.\.\d+ of .*shrinking.edf failed"):
        while not src.ended:
            src.read(20000)


# -- FIF -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fif(tmp_path_factory):
    """The generator recording saved as FIF by MNE (float32 on disk)."""
    path = tmp_path_factory.mktemp("fif") / "gen_raw.fif"
    mne.io.read_raw(GENERATOR, preload=True, verbose="error").save(path, verbose="error")
    return path


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_truncated_fif_reads_up_to_the_cut_then_names_file_and_samples(tmp_path, fif, cut):
    ref = mne.io.read_raw(fif, verbose="error").get_data()
    whole = fif.read_bytes()
    path = write(tmp_path, "cut_raw.fif", whole[:int(len(whole) * cut)])
    src = FileSource(path)
    good = []
    with pytest.raises(SourceError, match=r"reading samples \d+\.\.\d+ of .*cut_raw.fif failed"):
        while not src.ended:
            good.append(src.read(10000))
    x = np.concatenate(good, axis=1) if good else ref[:, :0]
    assert x.shape[1] < ref.shape[1]
    np.testing.assert_array_equal(x, ref[:, :x.shape[1]])  # what was read is right


def test_truncated_file_ends_a_background_run_with_an_error(tmp_path, fif):
    whole = fif.read_bytes()
    path = write(tmp_path, "cut_raw.fif", whole[:len(whole) // 2])
    p = eegkit.Pipeline(FileSource(path))
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    runner = p.start(chunk=500, realtime=False, overrun="block")
    assert runner.join(30)
    assert runner.state == "error" and "cut_raw.fif" in runner.error
    with pytest.raises(SourceError, match="cut_raw.fif"):
        p.run(chunk=500)


def test_nan_channel_is_passed_on_counted_and_kept_to_its_channel(tmp_path):
    """A FIF channel with a NaN stretch (as MNE writes bad spans): per-channel stages
    keep it in that channel, where it is counted; the other channels are exact."""
    rng = np.random.default_rng(4)
    data = rng.standard_normal((4, 2000)) * 1e-5
    data[2, 500:520] = np.nan
    info = mne.create_info(["Fz", "Cz", "Pz", "Oz"], 250.0, "eeg")
    path = tmp_path / "nan_raw.fif"
    mne.io.RawArray(data, info, verbose="error").save(path, verbose="error")
    p = eegkit.Pipeline(FileSource(path))
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("filters.notch", id="notch", freq=50.0)
    out = p.run(chunk=100)
    stats = {s["id"]: s for s in p.stats()}
    assert stats["bp"]["nonfinite_chunks"] > 0 and stats["bp"]["first_nonfinite"] == 500
    assert all(s["status"] == "ok" for s in p.status())
    clean = eegkit.Pipeline()
    clean.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    clean.add("filters.notch", id="notch", freq=50.0)
    stored = mne.io.read_raw(path, verbose="error").get_data()
    ref = clean.process(np.nan_to_num(stored), sfreq=250.0)["notch"]
    keep = [0, 1, 3]
    np.testing.assert_allclose(out["notch"][keep], ref[keep], rtol=1e-12, atol=1e-20)
    assert np.isfinite(out["notch"][2, :500]).all() and np.isnan(out["notch"][2, 500:]).all()


# -- chunks ----------------------------------------------------------------------------------
def chain(fuse=True):
    p = eegkit.Pipeline(fuse=fuse)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("filters.notch", id="notch", freq=50.0)
    p.add("reref.average", id="car")
    p.add("brain_fft.band_power", id="bands", window=64, step=16)
    return p


@pytest.fixture(scope="module")
def eeg8():
    src = eegkit.make_source({"type": "synthetic", "params": {"n_channels": 8, "sfreq": 250.0,
                                                              "seed": 9, "duration": 6.0}})
    return src.read_all(), src.info


@pytest.fixture(scope="module")
def offline(eeg8):
    x, info = eeg8
    return chain().process(x, sfreq=info.sfreq, ch_names=info.ch_names)


@pytest.mark.parametrize("outputs", [None, ["car", "bands"]])
def test_zero_length_chunks_change_nothing(eeg8, offline, outputs):
    x, info = eeg8
    p = chain()
    p.open(info)
    parts = []
    empty = np.zeros((8, 0))
    for i, start in enumerate(range(0, x.shape[1], 37)):
        for _ in range(i % 3):
            got = p.push(empty, outputs=outputs)
            assert all(v.shape[1] == 0 for v in got.values())
            assert got["bands"].shape == (p.info_of("bands").n_channels, 0)
        parts.append(p.push(x[:, start:start + 37], outputs=outputs))
    for id in ("car", "bands"):
        assert np.array_equal(np.concatenate([q[id] for q in parts], axis=1), offline[id])
    assert all(s["status"] == "ok" for s in p.status())


def test_zero_length_recording_offline():
    out = chain().process(np.zeros((8, 0)), sfreq=250.0)
    assert out["bp"].shape == (8, 0) and out["bands"].shape[1] == 0


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=40))
def test_changing_chunk_sizes_give_the_offline_numbers(sizes, eeg8, offline):
    x, info = eeg8
    p = chain()
    p.open(info)
    parts, start, i = [], 0, 0
    while start < x.shape[1]:
        n = sizes[i % len(sizes)] or (1 if i % len(sizes) == len(sizes) - 1 else 0)
        parts.append(p.push(x[:, start:start + n], outputs=["car", "bands"]))
        start, i = start + n, i + 1
    for id in ("car", "bands"):
        assert np.array_equal(np.concatenate([q[id] for q in parts], axis=1), offline[id])


def test_chunk_of_the_wrong_shape_or_type_is_refused(eeg8):
    x, info = eeg8
    p = chain()
    p.open(info)
    with pytest.raises(ParameterError, match=r"chunk must have shape \(8, n_samples\)"):
        p.push(x[:7, :10])
    with pytest.raises(ParameterError, match=r"got \(80,\)"):
        p.push(x[:, :10].ravel())
    with pytest.raises((ParameterError, ValueError)):
        p.push([["a"] * 10] * 8)
    p.push(x[:, :10].astype(np.float32))  # converted to the stream's dtype
    assert all(s["status"] == "ok" for s in p.status())


# -- live sources that stall or vanish -----------------------------------------------------------
class Stalling(Source):
    """A live source that hands out its data, except during a stall (empty reads)."""

    type_name = "stalling"
    live = True

    def __init__(self, data, stall_at, stall_s):
        self.info = StreamInfo(250.0, [f"ch{i}" for i in range(data.shape[0])])
        self.data, self.pos = data, 0
        self.stall_at, self.stall_s, self.stalled_since = stall_at, stall_s, None

    def read(self, n):
        if self.pos >= self.stall_at and self.stall_s:
            now = time.monotonic()
            self.stalled_since = self.stalled_since or now
            if now - self.stalled_since < self.stall_s:
                return np.zeros((self.data.shape[0], 0))
        block = self.data[:, self.pos:self.pos + n]
        self.pos += block.shape[1]
        self.ended = self.pos >= self.data.shape[1]
        return np.ascontiguousarray(block)


def test_stalling_live_source_resumes_without_loss(eeg8, offline):
    x, info = eeg8
    p = chain()
    p.set_source(Stalling(x, stall_at=500, stall_s=0.6))
    kept = []
    p.tap("bands", lambda block, first: kept.append(block.copy()))
    runner = p.start(chunk=25, overrun="block")
    time.sleep(0.3)
    assert runner.state == "running" and runner.stats()["samples"] == 500  # waiting, not failing
    assert runner.join(30)
    s = runner.stats()
    assert runner.state == "finished" and s["dropped_chunks"] == 0 and s["samples"] == x.shape[1]
    assert np.array_equal(np.concatenate(kept, axis=1), offline["bands"])


def test_stop_during_a_stall_is_prompt(eeg8):
    x, info = eeg8
    p = chain()
    p.set_source(Stalling(x, stall_at=100, stall_s=60.0))
    runner = p.start(chunk=25)
    time.sleep(0.2)
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 1.0 and runner.state == "stopped"


class Hanging(Stalling):
    """A live source whose read never returns (a driver call that hangs)."""

    def __init__(self, data):
        super().__init__(data, 0, 0)
        self.release = threading.Event()

    def read(self, n):
        self.release.wait()
        return np.zeros((self.data.shape[0], 0))


def test_a_read_that_never_returns_is_reported_by_stop(eeg8):
    x, _ = eeg8
    src = Hanging(x)
    p = chain()
    p.set_source(src)
    p.start(chunk=25)
    try:
        with pytest.raises(PipelineError, match="eegkit-reader.*did not end within 0.3 s"):
            p.runner.stop(timeout=0.3)
    finally:
        src.release.set()
        p.runner.stop()
    assert not p.runner.running


def test_lsl_stream_that_disconnects_mid_run(tmp_path):
    """The outlet vanishes: the run keeps going (the source looks for the stream again)
    and stops cleanly; nothing raises."""
    pylsl = pytest.importorskip("pylsl")
    from eegkit.sources._lsl import LSLSource

    name = f"eegkit-test-badlsl-{uuid.uuid4().hex[:8]}"
    out = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 2, 100.0, "float32", f"{name}-src"))
    src = LSLSource(name=name, timeout=5.0)
    p = eegkit.Pipeline(src)
    p.add("filters.bandpass", id="bp", low=1.0, high=20.0)
    runner = p.start(chunk=10)
    try:
        deadline = time.monotonic() + 5.0
        while runner.stats()["samples"] < 50:
            out.push_chunk(np.ones((10, 2), dtype=np.float32).tolist())
            time.sleep(0.02)
            assert time.monotonic() < deadline
        del out
        deadline = time.monotonic() + 5.0
        while src._inlet is not None:
            time.sleep(0.02)
            assert time.monotonic() < deadline, "the loss was never noticed"
        time.sleep(0.2)
        assert runner.state == "running" and runner.error is None
    finally:
        p.stop()
        src.close()
    assert runner.state == "stopped"


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0, -5, 1e9, "soon"])
def test_lsl_timeout_that_would_wait_for_ever_is_refused(timeout):
    pytest.importorskip("pylsl")
    with pytest.raises(ParameterError, match="timeout must be a number of seconds"):
        eegkit.make_source({"type": "lsl", "params": {"name": "x", "timeout": timeout}})


# -- issue #14: headers MNE opens but cannot interpret ----------------------------------------
def _ch_info_offset(data, name):
    """Byte offset of the FIF ch_info struct of channel ``name`` (80 bytes before its name)."""
    at = data.find(name.encode().ljust(16, b"\0"))
    assert at > 80
    return at - 80


@pytest.mark.parametrize("what, offset", [("kind", 8), ("coil_type", 20)])
def test_fif_with_corrupt_channel_kind_or_coil_type_is_a_source_error(tmp_path, fif, what, offset):
    import struct

    data = bytearray(fif.read_bytes())
    at = _ch_info_offset(data, mne.io.read_raw(fif, verbose="error").ch_names[0]) + offset
    data[at:at + 4] = struct.pack(">i", 2049)  # was KeyError: 2049 from MNE
    path = write(tmp_path, f"bad_{what}_raw.fif", bytes(data))
    with pytest.raises(SourceError, match=rf"bad_{what}_raw\.fif has a header MNE cannot interpret"):
        FileSource(path)


def test_bdf_with_a_nul_in_a_label_is_a_source_error(tmp_path):
    data = bytearray(BDF.read_bytes())
    data[256 + 8] = 0  # "sine 5Hz\0": numpy drops the trailing NUL, so MNE cannot pick it
    path = write(tmp_path, "nul.bdf", bytes(data))
    with pytest.raises(SourceError, match=r"nul\.bdf"):
        FileSource(path)
