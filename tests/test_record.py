"""RecordSink: EDF/BDF written incrementally, read back by MNE, and surviving kill -9."""

from __future__ import annotations

import importlib.resources
import os
import signal as signals
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

mne = pytest.importorskip("mne")
pytest.importorskip("pyedflib")

from eegkit import ParameterError, StreamInfo  # noqa: E402
from eegkit.sinks import make_sink  # noqa: E402
from eegkit.sinks._record import RecordSink  # noqa: E402
from eegkit.sources._file import FileSource  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = importlib.resources.files("pyedflib") / "data" / "test_generator.edf"
SUBSECOND = importlib.resources.files("pyedflib") / "tests" / "data" / "test_subsecond.edf"
# quantisation step of the default ranges: EDF ±3.2768 mV in 16 bit, BDF ±262.144 mV in 24 bit
STEP = {"edf": 6.5536e-3 / 65535, "bdf": 0.524288 / 16777215}


def write_in_chunks(sink, data, sizes=(1, 7, 32, 250, 999)):
    """Feed ``data`` to an opened sink in cycling chunk sizes."""
    pos, i = 0, 0
    while pos < data.shape[1]:
        block = data[:, pos:pos + sizes[i % len(sizes)]]
        sink.write(block, pos)
        pos += block.shape[1]
        i += 1


@pytest.mark.parametrize("fmt", ["edf", "bdf"])
@pytest.mark.parametrize("path", [GENERATOR, SUBSECOND], ids=lambda p: p.name)
def test_real_recording_round_trip(tmp_path, fmt, path):
    src = FileSource(path)
    data = src.read(src.info.sfreq * 30)  # 30 s
    out = tmp_path / f"copy.{fmt}"
    sink = RecordSink(out)
    sink.open(src.info)
    write_in_chunks(sink, data)
    sink.close()
    back = mne.io.read_raw(out, verbose="error")
    assert back.ch_names == list(src.info.ch_names)
    assert back.info["sfreq"] == src.info.sfreq
    assert back.n_times == data.shape[1] == sink.n_records * src.info.sfreq
    np.testing.assert_allclose(back.get_data(), data, rtol=0, atol=STEP[fmt] / 2 * (1 + 1e-6))
    assert sink.n_clipped == 0


def test_partial_last_record_is_padded_and_true_length_kept(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.standard_normal((3, 1234)) * 20e-6
    sink = RecordSink(tmp_path / "r.bdf")
    sink.open(StreamInfo(250.0, ["Fz", "Cz", "Pz"]))
    write_in_chunks(sink, data)
    sink.close()
    back = mne.io.read_raw(tmp_path / "r.bdf", verbose="error").get_data()
    assert back.shape == (3, 1250)  # 5 whole records of 1 s
    np.testing.assert_allclose(back[:, :1234], data, atol=STEP["bdf"] / 2 * (1 + 1e-6))
    np.testing.assert_allclose(back[:, 1234:], 0.0, atol=STEP["bdf"])
    head = (tmp_path / "r.bdf").read_bytes()[:256]
    assert b"eegkit_samples=1234" in head[88:168]
    assert head[:8] == b"\xffBIOSEMI" and head[192:197] == b"24BIT"


def test_other_readers_agree(tmp_path):
    pyedflib = pytest.importorskip("pyedflib")
    data = np.sin(np.linspace(0, 40, 2000))[None].repeat(2, 0) * 1e-4
    for fmt in ("edf", "bdf"):
        sink = RecordSink(tmp_path / f"s.{fmt}")
        sink.open(StreamInfo(200.0, ["A1", "A2"]))
        sink.write(data, 0)
        sink.close()
        reader = pyedflib.EdfReader(str(tmp_path / f"s.{fmt}"))
        try:
            assert reader.getSignalLabels() == ["A1", "A2"]
            assert list(reader.getSampleFrequencies()) == [200.0, 200.0]
            np.testing.assert_allclose(reader.readSignal(1) * 1e-6, data[1], atol=STEP[fmt])
        finally:
            reader.close()


def test_non_integer_rate_uses_longer_records(tmp_path):
    info = StreamInfo(7.8125, ["Fz:alpha"], units="V")  # e.g. 250 Hz / step 32
    sink = RecordSink(tmp_path / "slow.edf")
    sink.open(info)
    sink.write(np.full((1, 250), 1e-5), 0)
    sink.close()
    back = mne.io.read_raw(tmp_path / "slow.edf", verbose="error")
    assert back.info["sfreq"] == 7.8125 and back.n_times == 250  # records of 16 s (125 samples)
    with pytest.raises(ParameterError, match="no whole number of samples"):
        RecordSink(tmp_path / "x.edf").open(StreamInfo(np.pi * 100, ["a"]))


def test_clipping_is_counted_and_warned(tmp_path):
    data = np.array([[0.0, 1e-3, 5e-3, -7e-3, np.nan]])
    sink = RecordSink(tmp_path / "c.edf")
    sink.open(StreamInfo(5.0, ["Fz"]))
    with pytest.warns(UserWarning, match="clipped; set physical_range"):
        sink.write(data, 0)
    sink.close()
    assert sink.n_clipped == 3
    back = mne.io.read_raw(tmp_path / "c.edf", verbose="error").get_data()[0]
    np.testing.assert_allclose(back, [0, 1e-3, 3.2768e-3, -3.2768e-3, 0], atol=STEP["edf"])
    wide = RecordSink(tmp_path / "w.edf", physical_range=0.01)
    wide.open(StreamInfo(5.0, ["Fz"]))
    wide.write(data[:, :4], 0)
    wide.close()
    assert wide.n_clipped == 0


def test_bad_parameters(tmp_path):
    with pytest.raises(ParameterError, match=r"cannot write FIF crash-safely.*\.bdf"):
        RecordSink(tmp_path / "out_raw.fif")
    with pytest.raises(ParameterError, match="format must be 'edf' or 'bdf'.*'txt'"):
        RecordSink(tmp_path / "out.txt")
    assert RecordSink(tmp_path / "noext", format="bdf").format == "bdf"
    with pytest.raises(ParameterError, match="physical_range"):
        RecordSink(tmp_path / "x.edf", physical_range=(1, -1))
    sink = RecordSink(tmp_path / "x.edf")
    with pytest.raises(ParameterError, match=r"'Fz:alpha' is in 'V²/Hz'.*physical_range"):
        sink.open(StreamInfo(4.0, ["Fz:alpha"], units="V²/Hz"))
    sink = RecordSink(tmp_path / "y.edf")
    sink.open(StreamInfo(10.0, ["a"]))
    sink.write(np.zeros((1, 5)), 0)
    with pytest.raises(ParameterError, match="starting at sample 9, expected 5"):
        sink.write(np.zeros((1, 5)), 9)
    with pytest.raises(ParameterError, match=r"shape \(1, n\), got \(2, 5\)"):
        sink.write(np.zeros((2, 5)), 5)
    sink.close()
    assert make_sink("record", {"path": str(tmp_path / "z.bdf")}).format == "bdf"


CHILD = textwrap.dedent("""
    import sys, time
    from eegkit.sources._file import FileSource
    from eegkit.sinks._record import RecordSink
    src = FileSource(sys.argv[1])
    sink = RecordSink(sys.argv[2])
    sink.open(src.info)
    pos = 0
    while not src.ended:
        block = src.read(50)
        sink.write(block, pos)
        pos += block.shape[1]
        print(sink.n_records, pos, flush=True)
        time.sleep(0.01)
    print("finished", flush=True)
""")


@pytest.mark.parametrize("fmt", ["edf", "bdf"])
def test_killed_recording_is_readable_up_to_last_flushed_record(tmp_path, fmt):
    out = tmp_path / f"killed.{fmt}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(GENERATOR), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    flushed = 0
    try:
        for line in proc.stdout:
            assert line != "finished\n", "the writer finished before it was killed"
            flushed = int(line.split()[0])
            if flushed >= 4:
                proc.send_signal(signals.SIGKILL)  # mid-stream, while it keeps writing
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        stderr = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert flushed >= 4, stderr
    assert proc.returncode == -signals.SIGKILL

    raw_bytes = out.read_bytes()
    n_ch, spr = 11, 200
    header_len = 256 * (n_ch + 1)
    in_header = int(raw_bytes[236:244].decode())
    on_disk = (len(raw_bytes) - header_len) // (n_ch * spr * (2 if fmt == "edf" else 3))
    assert flushed <= in_header <= on_disk  # the header never counts a record not on disk

    back = mne.io.read_raw(out, verbose="error")
    assert back.ch_names == FileSource(GENERATOR).raw.ch_names
    assert back.n_times >= flushed * spr and back.n_times % spr == 0
    original = mne.io.read_raw(GENERATOR, verbose="error").get_data(stop=back.n_times)
    np.testing.assert_allclose(back.get_data(), original, rtol=0, atol=STEP[fmt] / 2 * (1 + 1e-6))


def test_pipeline_records_filtered_output(tmp_path):
    import eegkit

    p = eegkit.Pipeline(source=FileSource(SUBSECOND))
    p.add("filters.bandpass", id="bp", low=1.0, high=30.0)
    p.add_sink("record", input="bp", path=str(tmp_path / "bp.bdf"))
    out = p.run(duration=20.0, chunk=32)["bp"]
    back = mne.io.read_raw(tmp_path / "bp.bdf", verbose="error").get_data()
    assert back.shape == out.shape == (1, 2560)
    np.testing.assert_allclose(back, out, atol=STEP["bdf"] / 2 * (1 + 1e-6))


# -- issue #14: overwrite, paths, bounds, the first second, disk full -----------------------
def record(path, n=300, sfreq=100.0, **params):
    """Record ``n`` samples of 2 channels to ``path``; return the data written."""
    data = np.random.default_rng(0).standard_normal((2, n)) * 10e-6
    sink = RecordSink(path, **params)
    sink.open(StreamInfo(sfreq, ["Fz", "Cz"]))
    sink.write(data, 0)
    sink.close()
    return data


def test_existing_file_is_kept_unless_overwrite_is_asked(tmp_path):
    from eegkit import EegkitIOError

    out = tmp_path / "r.bdf"
    first = record(out)
    before = out.read_bytes()
    sink = RecordSink(out)
    with pytest.raises(EegkitIOError, match=r"r\.bdf exists; pass overwrite=True"):
        sink.open(StreamInfo(100.0, ["Fz", "Cz"]))
    assert out.read_bytes() == before
    second = record(out, n=500, overwrite=True)
    back = mne.io.read_raw(out, verbose="error").get_data()
    assert back.shape == (2, 500) and not np.allclose(back[:, :300], first, atol=1e-6)
    np.testing.assert_allclose(back, second, atol=STEP["bdf"])
    assert sorted(os.listdir(tmp_path)) == ["r.bdf"]  # no temporary file left behind


def test_overwrite_must_be_a_bool(tmp_path):
    with pytest.raises(ParameterError, match="overwrite must be true or false, got 'no'"):
        make_sink("record", {"path": str(tmp_path / "r.bdf"), "overwrite": "no"})


def test_suffix_must_agree_with_format(tmp_path):
    with pytest.raises(ParameterError, match=r"format 'bdf' does not match the file name .*notes\.txt"):
        RecordSink(tmp_path / "notes.txt", format="bdf")
    with pytest.raises(ParameterError, match="format 'edf' does not match"):
        RecordSink(tmp_path / "r.bdf", format="edf")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("path, words", [
    ("", "path is empty"),
    ("\0.bdf", "cannot be a file name"),
    ("\ud800.bdf", "cannot be a file name"),
])
def test_unusable_paths_are_parameter_errors(path, words):
    with pytest.raises(ParameterError, match=words):
        RecordSink(path)


def test_folder_as_path_is_an_io_error_naming_it(tmp_path):
    from eegkit import EegkitIOError

    folder = tmp_path / "x.bdf"
    folder.mkdir()
    with pytest.raises(EegkitIOError, match=r"x\.bdf is a folder"):
        RecordSink(folder).open(StreamInfo(100.0, ["Fz"]))
    (tmp_path / "file").write_text("")
    with pytest.raises(EegkitIOError, match="is not a folder"):
        RecordSink(tmp_path / "file" / "r.bdf").open(StreamInfo(100.0, ["Fz"]))


@pytest.mark.parametrize("value", [1e400, float("nan"), (0.0, float("inf")), (-1e308, 1e308)])
def test_physical_range_must_be_finite(tmp_path, value):
    with pytest.raises(ParameterError, match="physical_range"):
        RecordSink(tmp_path / "r.bdf", physical_range=value)


def test_channel_count_and_record_size_are_bounded(tmp_path):
    from eegkit.sinks._record import MAX_CHANNELS

    names = [f"E{i}" for i in range(MAX_CHANNELS + 1)]
    with pytest.raises(ParameterError, match="10000 channels; EDF/BDF store at most 9999"):
        RecordSink(tmp_path / "wide.bdf").open(StreamInfo(1.0, names))
    with pytest.raises(ParameterError, match="at most 16777216 values"):
        RecordSink(tmp_path / "fast.bdf").open(StreamInfo(1e12, ["Fz"]))  # was a MemoryError
    assert not os.listdir(tmp_path)
    # the widest file EDF allows is written and read back
    sink = RecordSink(tmp_path / "widest.edf")
    sink.open(StreamInfo(1.0, names[:MAX_CHANNELS]))
    sink.write(np.full((MAX_CHANNELS, 2), 1e-6), 0)
    sink.close()
    back = mne.io.read_raw(tmp_path / "widest.edf", verbose="error")
    assert back.info["nchan"] == MAX_CHANNELS and back.ch_names[-1] == "E9998"
    np.testing.assert_allclose(back.get_data(), 1e-6, atol=STEP["edf"])


def test_non_printable_labels_are_stored_as_question_marks(tmp_path):
    sink = RecordSink(tmp_path / "r.bdf")
    sink.open(StreamInfo(10.0, ["F\0z", "Cz"]))
    sink.write(np.zeros((2, 10)), 0)
    sink.close()
    assert mne.io.read_raw(tmp_path / "r.bdf", verbose="error").ch_names == ["F?z", "Cz"]


def test_empty_recording_is_readable(tmp_path):
    sink = RecordSink(tmp_path / "r.edf")
    sink.open(StreamInfo(100.0, ["Fz", "Cz"]))
    sink.close()
    back = mne.io.read_raw(tmp_path / "r.edf", verbose="error")
    assert back.n_times == 100  # one record of zeros
    np.testing.assert_allclose(back.get_data(), 0.0, atol=STEP["edf"])
    assert b"eegkit_samples=0 " in (tmp_path / "r.edf").read_bytes()[88:168]


FIRST_SECOND = textwrap.dedent("""
    import sys, time
    from eegkit.sources._file import FileSource
    from eegkit.sinks._record import RecordSink
    src = FileSource(sys.argv[1])
    sink = RecordSink(sys.argv[2])
    sink.open(src.info)
    print(0, flush=True)
    pos = 0
    while True:
        block = src.read(7)
        sink.write(block, pos)
        pos += block.shape[1]
        print(pos, flush=True)
        time.sleep(0.02)
""")


def test_recording_killed_in_its_first_second_is_readable(tmp_path):
    """kill -9 at 0 to 196 samples of a 200-sample first record: always readable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    original = mne.io.read_raw(GENERATOR, verbose="error").get_data(stop=200)
    for kill_at in (0, 7, 63, 126, 196):
        out = tmp_path / f"first{kill_at}.bdf"
        proc = subprocess.Popen([sys.executable, "-c", FIRST_SECOND, str(GENERATOR), str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            for line in proc.stdout:
                written = int(line)
                if written >= kill_at:
                    proc.send_signal(signals.SIGKILL)
                    break
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            stderr = proc.stderr.read()
            proc.stdout.close()
            proc.stderr.close()
        assert proc.returncode == -signals.SIGKILL, stderr
        assert written == kill_at
        back = mne.io.read_raw(out, verbose="error")  # header-only used to fail here
        assert back.n_times == 200
        data = back.get_data()
        # the child may have written a chunk or two more before the signal landed; the
        # header's count is never ahead of the samples on disk
        field = out.read_bytes()[88:168]  # no count once the first record is complete
        counted = int(field.split(b"eegkit_samples=")[1].split()[0]) if b"=" in field else 200
        assert written <= counted <= 200
        held = counted  # samples on disk: the original, then zeros
        while held < 200 and np.allclose(data[:, held], original[:, held], rtol=0, atol=STEP["bdf"]):
            held += 1
        np.testing.assert_allclose(data[:, :held], original[:, :held],
                                   atol=STEP["bdf"] / 2 * (1 + 1e-6))
        np.testing.assert_allclose(data[:, held:], 0.0, atol=STEP["bdf"])
