"""reref: the compiled kernel against numpy and mne.set_eeg_reference, whole and chunked."""

from pathlib import Path

import numpy as np
import pytest

from eegkit._errors import ParameterError
from eegkit._info import StreamInfo
from eegkit._numba import is_compiled, jit
from eegkit.testing import compile_kernel, load_module, run_chunks

STAGE_FILE = Path(__file__).resolve().parent.parent / "stage.py"
SFREQ = 250.0
NAMES = ["Fp1", "Fz", "Cz", "Pz", "O1", "O2", "TP9", "TP10", "EOG"]
TYPES = ["eeg"] * 8 + ["eog"]
CHUNKS = [1, 7, 32, [5, 1, 64, 13, 2, 100, 31, 3]]


@pytest.fixture(scope="module")
def stage():
    """The plugin module with ``process_reref`` compiled as the host compiles it."""
    module, module.kernel = compile_kernel(STAGE_FILE, "process_reref", "_eegkit_test_reref_stage")
    return module


def info(dtype="float64"):
    return StreamInfo(SFREQ, NAMES, ch_types=TYPES, dtype=dtype)


def eeg(seconds=3.0, seed=0, dtype=np.float64):
    """Per-channel offsets and noise, in volts, plus a large EOG channel."""
    rng = np.random.default_rng(seed)
    x = 10e-6 * rng.standard_normal((len(NAMES), int(seconds * SFREQ)))
    x += 1e-6 * np.arange(len(NAMES))[:, None]
    x[-1] *= 20
    return np.ascontiguousarray(x, dtype=dtype)


def mne_reference(x, ref_channels):
    mne = pytest.importorskip("mne")
    raw = mne.io.RawArray(x.copy(), mne.create_info(NAMES, SFREQ, TYPES), verbose=False)
    raw, _ = mne.set_eeg_reference(raw, ref_channels, projection=False, copy=True, verbose=False)
    return raw.get_data()


@pytest.mark.parametrize("ref", ["average", ["TP9", "TP10"], ["Cz"]], ids=str)
def test_whole_array_matches_numpy_and_mne(stage, ref):
    x = eeg()
    state = stage.setup_average(info()) if ref == "average" else stage.setup_channels(info(), ref)
    y = x.copy()
    assert stage.kernel(y, *state) is None
    rows = [NAMES.index(n) for n in (NAMES[:8] if ref == "average" else ref)]
    expected = x.copy()
    expected[:8] -= x[rows].mean(axis=0)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12 * np.abs(x).max())
    np.testing.assert_allclose(y, mne_reference(x, ref), rtol=1e-12, atol=1e-12 * np.abs(x).max())
    np.testing.assert_array_equal(y[-1], x[-1])  # the EOG channel is left alone
    if ref == "average":
        np.testing.assert_allclose(y[:8].mean(axis=0), 0.0, atol=1e-15)
    if ref == ["Cz"]:
        assert not y[NAMES.index("Cz")].any()


@pytest.mark.parametrize("sizes", CHUNKS, ids=str)
@pytest.mark.parametrize("which", ["average", "channels"])
def test_chunked_equals_whole(stage, which, sizes):
    x = eeg(seed=1)
    state = (stage.setup_average(info()) if which == "average"
             else stage.setup_channels(info(), ["TP9", "TP10"]))
    whole = x.copy()
    stage.kernel(whole, *state)
    np.testing.assert_array_equal(run_chunks(stage.kernel, x, state, sizes), whole)


def test_float32_sums_in_float64(stage):
    x = eeg(seed=2, dtype=np.float32)
    state = stage.setup_average(info("float32"))
    y = x.copy()
    stage.kernel(y, *state)
    assert y.dtype == np.float32
    x64 = x.astype(np.float64)
    expected = x64.copy()
    expected[:8] -= x64[:8].mean(axis=0)
    # one float32 rounding of the float64 result: half an ulp of |x| at most
    np.testing.assert_allclose(y, expected, rtol=0, atol=2.0**-24 * np.abs(x64).max())
    np.testing.assert_array_equal(run_chunks(stage.kernel, x, state, [7, 1, 32]), y)


def test_reference_indices(stage):
    targets, refs, _ = stage.setup_channels(info(), ["TP10", "Fz"])
    assert targets.tolist() == list(range(8)) and refs.tolist() == [7, 1]
    assert targets.dtype == refs.dtype == np.int64
    targets, refs, _ = stage.setup_channels(info(), ["EOG"])  # any type may be the reference
    assert refs.tolist() == [8]


@pytest.mark.parametrize("refs, message", [
    (["Cz", "T7"], "reref.channels: unknown channel 'T7' in 'ref_channels'; available channels are "
                   "Fp1, Fz, Cz, Pz, O1, O2, TP9, TP10, EOG."),
    (["cz"], "Did you mean 'Cz'?"),
    ([], "reref.channels: 'ref_channels' is empty"),
    (["Cz", "Cz"], "channel 'Cz' appears twice"),
])
def test_bad_reference_names_the_culprit(stage, refs, message):
    with pytest.raises(ParameterError) as err:
        stage.setup_channels(info(), refs)
    assert message in str(err.value)


def test_needs_eeg_timeseries(stage):
    no_eeg = StreamInfo(SFREQ, ["EOG1", "EOG2"], ch_types="eog")
    with pytest.raises(ParameterError, match="no channel of type 'eeg'.*channel types: eog"):
        stage.setup_average(no_eeg)
    spectrum = info().expand("spectrum", ["1", "2"], [1.0, 2.0], sfreq=SFREQ / 32)
    with pytest.raises(ParameterError, match="reref.channels: input must be a timeseries"):
        stage.setup_channels(spectrum, ["Cz:1"])


def test_plain_python_when_jit_disabled(monkeypatch):
    monkeypatch.setenv("EEGKIT_DISABLE_JIT", "1")
    module = load_module(STAGE_FILE, "_eegkit_test_reref_stage_nojit")
    kernel = jit(module.process_reref)
    assert not is_compiled(kernel)
    x = eeg(seconds=0.2)
    state = module.setup_channels(info(), ["TP9", "TP10"])
    expected = x.copy()
    expected[:8] -= x[[6, 7]].mean(axis=0)
    np.testing.assert_allclose(run_chunks(kernel, x, state, [7, 1, 32]), expected,
                               rtol=1e-12, atol=1e-12 * np.abs(x).max())


# -- through eegkit.Pipeline -------------------------------------------------------

PLUGINS = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def manager():
    """Stage types from this checkout's plugins folder only."""
    from eegkit import PluginManager

    return PluginManager(paths=[PLUGINS], entry_points=False)


def test_pipeline_on_mne_raw_matches_mne(manager):
    import eegkit

    mne = pytest.importorskip("mne")
    x = eeg()
    raw = mne.io.RawArray(x.copy(), mne.create_info(NAMES, SFREQ, TYPES), verbose=False)
    p = eegkit.Pipeline(plugins=manager)
    p.add("reref.average", id="car")
    p.add("reref.channels", id="mastoids", input="source", ref_channels=["TP9", "TP10"])
    out = p.process(raw)
    assert [s.status for s in p.stages] == ["ok", "ok"]
    for id, ref in (("car", "average"), ("mastoids", ["TP9", "TP10"])):
        np.testing.assert_allclose(out[id], mne_reference(x, ref), rtol=1e-12,
                                   atol=1e-12 * np.abs(x).max())
    p.open(info())
    chunks = [p.push(x[:, i:i + 7]) for i in range(0, x.shape[1], 7)]
    for id in ("car", "mastoids"):
        np.testing.assert_array_equal(np.concatenate([c[id] for c in chunks], axis=1), out[id])


def test_pipeline_unknown_reference_channel(manager):
    import eegkit

    p = eegkit.Pipeline(plugins=manager)
    p.add("reref.channels", id="ref", ref_channels=["A1"])
    p.open(info())
    assert p["ref"].status == "disabled"
    assert "unknown channel 'A1' in 'ref_channels'; available channels are Fp1, Fz" in p["ref"].error


def test_long_blocks_split_into_spans_match_numpy(stage):
    x = eeg(seconds=3 * stage.SPLIT_SAMPLES / SFREQ)
    state = stage.setup_average(info())
    y = x.copy()
    stage.kernel(y, *state)
    expected = x.copy()
    expected[:8] -= x[:8].mean(axis=0)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12 * np.abs(x).max())
    assert np.array_equal(run_chunks(stage.kernel, x, stage.setup_average(info()), 32), y)
