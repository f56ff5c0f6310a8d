"""filters: the compiled biquad kernel against scipy.signal.sosfilt, whole and chunked."""

from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from eegkit._errors import ParameterError
from eegkit._info import StreamInfo
from eegkit._numba import is_compiled, jit
from eegkit.testing import compile_kernel, load_module, run_chunks, stream

STAGE_FILE = Path(__file__).resolve().parent.parent / "stage.py"
SFREQ = 250.0
CHUNKS = [1, 7, 32, [5, 1, 64, 13, 2, 100, 31, 3]]
# (setup function, params) for every stage of the plugin
DESIGNS = {
    "bandpass": ("setup_bandpass", {"low": 1.0, "high": 40.0, "order": 4}),
    "highpass": ("setup_highpass", {"cutoff": 0.5, "order": 2}),
    "lowpass": ("setup_lowpass", {"cutoff": 30.0, "order": 6}),
    "notch": ("setup_notch", {"freq": 50.0, "q": 30.0, "harmonics": 3}),
    # explicit coefficients: a 5th-order elliptic low-pass (not a design of this plugin)
    "sos": ("setup_sos", {"sos": list(signal.ellip(5, 0.5, 40, 35.0, fs=SFREQ, output="sos").ravel())}),
}


@pytest.fixture(scope="module")
def stage():
    """The plugin module with ``process_sos`` compiled as the host compiles it."""
    module, module.kernel = compile_kernel(STAGE_FILE, "process_sos", "_eegkit_test_filters_stage")
    return module


def info(n_channels=8, dtype="float64"):
    return StreamInfo(SFREQ, [f"EEG{i:02d}" for i in range(n_channels)], dtype=dtype)


def eeg(n_channels=8, seconds=3.0, seed=0, dtype=np.float64):
    """Noise plus alpha and line-noise sines, in volts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SFREQ)) / SFREQ
    x = 10e-6 * rng.standard_normal((n_channels, t.size))
    x += 20e-6 * np.sin(2 * np.pi * 10.0 * t) + 5e-6 * np.sin(2 * np.pi * 50.0 * t)
    return np.ascontiguousarray(x, dtype=dtype)


def scipy_zi(z0, z1):
    """The kernel's two state halves as ``sosfilt``'s ``zi`` (n_sections, n_channels, 2)."""
    return np.stack([z0, z1], axis=2)


def design(stage, name, n_channels=8, dtype="float64"):
    setup, params = DESIGNS[name]
    return getattr(stage, setup)(info(n_channels, dtype), **params)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_whole_array_matches_sosfilt(stage, name):
    sos, z0, z1, *work = design(stage, name)
    x = eeg()
    ref, ref_zf = signal.sosfilt(sos, x, zi=scipy_zi(z0, z1))
    y = x.copy()
    assert stage.kernel(y, sos, z0, z1, *work) is None
    scale = np.abs(ref).max()
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10 * scale)
    np.testing.assert_allclose(scipy_zi(z0, z1), ref_zf, rtol=1e-10, atol=1e-10 * scale)


@pytest.mark.parametrize("sizes", CHUNKS, ids=str)
@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_chunked_equals_whole(stage, name, sizes):
    x = eeg(seed=1)
    sos, *state_whole = design(stage, name)
    whole = x.copy()
    stage.kernel(whole, sos, *state_whole)
    _, *state = design(stage, name)
    chunked = run_chunks(stage.kernel, x, (sos, *state), sizes)
    # same recursion on the same samples: bit-identical, state included
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_array_equal(state[0], state_whole[0])
    np.testing.assert_array_equal(state[1], state_whole[1])


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_float32_within_one_rounding_of_scipy(stage, name):
    """float32 blocks: float64 state and arithmetic, one rounding per output sample."""
    x = eeg(seed=2, dtype=np.float32)
    sos, z0, z1, *work = design(stage, name, dtype="float32")
    ref, _ = signal.sosfilt(sos, x.astype(np.float64), zi=scipy_zi(z0, z1))
    y = x.copy()
    stage.kernel(y, sos, z0, z1, *work)
    assert y.dtype == np.float32
    # a float32 rounding is at most half an ulp: 2**-24 relative
    scale = np.abs(ref).max()
    np.testing.assert_allclose(y, ref, rtol=2.0**-24, atol=1e-12 * scale)
    _, *state = design(stage, name, dtype="float32")
    chunked = run_chunks(stage.kernel, x, (sos, *state), [7, 1, 32, 3])
    np.testing.assert_array_equal(chunked, y)


def test_designs_are_butterworth_and_notches(stage):
    sos, z0, z1, *work = stage.setup_bandpass(info(4), low=2.0, high=30.0, order=3)
    np.testing.assert_allclose(sos, signal.butter(3, [2.0, 30.0], "bandpass", fs=SFREQ, output="sos"))
    for z in (z0, z1):
        assert z.shape == (3, 4) and z.dtype == np.float64 and not z.any()
    # 50 Hz harmonics below Nyquist (125 Hz) are 50 and 100: the third one is left out
    sos, z0, z1, *work = stage.setup_notch(info(2), freq=50.0, q=25.0, harmonics=3)
    expected = [signal.tf2sos(*signal.iirnotch(f, 25.0, fs=SFREQ)) for f in (50.0, 100.0)]
    np.testing.assert_allclose(sos, np.concatenate(expected))
    assert z0.shape == z1.shape == (2, 2)


def test_notch_removes_line_noise(stage):
    t = np.arange(int(8 * SFREQ)) / SFREQ
    x = np.vstack([np.sin(2 * np.pi * 50.0 * t), np.sin(2 * np.pi * 100.0 * t),
                   np.sin(2 * np.pi * 10.0 * t)])
    sos, *state = stage.setup_notch(info(3), freq=50.0, q=30.0, harmonics=2)
    stage.kernel(x, sos, *state)
    tail = x[:, -int(2 * SFREQ):]  # after the notches have settled
    assert np.abs(tail[0]).max() < 1e-3 and np.abs(tail[1]).max() < 1e-3
    assert np.abs(tail[2]).max() > 0.99


@pytest.mark.parametrize("setup, params, message", [
    ("setup_bandpass", {"low": 1.0, "high": 130.0},
     "filters.bandpass: 'high' = 130.0 Hz must be below Nyquist (125.0 Hz) for sfreq 250.0"),
    ("setup_bandpass", {"low": 40.0, "high": 10.0}, "'low' (40.0 Hz) must be below 'high' (10.0 Hz)"),
    ("setup_bandpass", {"low": 0.0, "high": 10.0}, "'low' must be > 0 Hz, got 0.0"),
    ("setup_bandpass", {"low": 1.0, "high": 10.0, "order": 0}, "'order' must be an integer >= 1"),
    ("setup_highpass", {"cutoff": 125.0}, "filters.highpass: 'cutoff' = 125.0 Hz must be below Nyquist"),
    ("setup_lowpass", {"cutoff": -3.0}, "filters.lowpass: 'cutoff' must be > 0 Hz, got -3.0"),
    ("setup_notch", {"freq": 200.0}, "filters.notch: 'freq' = 200.0 Hz must be below Nyquist"),
    ("setup_notch", {"q": 0.0}, "filters.notch: 'q' must be > 0, got 0.0"),
    ("setup_sos", {"sos": [1.0, 0.5, 0.0, 1.0]}, "filters.sos: 'sos' must hold 6 numbers per section"),
    ("setup_sos", {"sos": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]}, "a0 != 0 in every section"),
])
def test_bad_parameters_name_the_culprit(stage, setup, params, message):
    with pytest.raises(ParameterError) as err:
        getattr(stage, setup)(info(), **params)
    assert message in str(err.value)


def test_rejects_spectrum_input(stage):
    spectrum = info(2).expand("spectrum", ["1", "2"], [1.0, 2.0], sfreq=SFREQ / 32)
    with pytest.raises(ParameterError, match="input must be a timeseries stream"):
        stage.setup_lowpass(spectrum)


def test_plain_python_when_jit_disabled(monkeypatch):
    monkeypatch.setenv("EEGKIT_DISABLE_JIT", "1")
    module = load_module(STAGE_FILE, "_eegkit_test_filters_stage_nojit")
    kernel = jit(module.process_sos)
    assert not is_compiled(kernel)
    x = eeg(n_channels=2, seconds=0.4)
    sos, z0, z1, *work = module.setup_bandpass(info(2), low=1.0, high=40.0)
    ref, _ = signal.sosfilt(sos, x, zi=scipy_zi(z0, z1))
    chunked = run_chunks(kernel, x, (sos, z0, z1, *work), [7, 1, 32])
    np.testing.assert_allclose(chunked, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


# -- through eegkit.Pipeline -------------------------------------------------------

PLUGINS = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def manager():
    """Stage types from this checkout's plugins folder only."""
    from eegkit import PluginManager

    return PluginManager(paths=[PLUGINS], entry_points=False)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pipeline_offline_equals_streaming_equals_scipy(manager, dtype):
    import eegkit

    p = eegkit.Pipeline(plugins=manager)
    p.add("filters.notch", id="notch", freq=50.0, harmonics=2)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("filters.lowpass", id="lp", input="source", cutoff=30.0, order=6)
    x = eeg(dtype=dtype)
    out = p.process(x, sfreq=SFREQ, ch_names=list(info().ch_names))
    assert [s.status for s in p.stages] == ["ok"] * 3
    notch = signal.sosfilt(np.concatenate([signal.tf2sos(*signal.iirnotch(f, 30.0, fs=SFREQ))
                                           for f in (50.0, 100.0)]), x.astype(np.float64))
    refs = {"notch": notch,
            "bp": signal.sosfilt(signal.butter(4, [1.0, 40.0], "bandpass", fs=SFREQ, output="sos"),
                                 notch.astype(dtype)),
            "lp": signal.sosfilt(signal.butter(6, 30.0, fs=SFREQ, output="sos"), x)}
    rtol = 1e-10 if dtype == np.float64 else 2.0**-24
    for id, ref in refs.items():
        assert out[id].dtype == dtype
        np.testing.assert_allclose(out[id], ref, rtol=rtol, atol=1e-10 * np.abs(ref).max())
    for sizes in CHUNKS:
        streamed = stream(p, info(dtype=np.dtype(dtype).name), x, sizes)
        for id in refs:
            np.testing.assert_array_equal(streamed[id], out[id])


def test_pipeline_disables_a_stage_with_bad_parameters(manager):
    import eegkit

    p = eegkit.Pipeline(plugins=manager)
    p.add("filters.bandpass", id="bp", low=1.0, high=130.0)
    x = eeg(seconds=0.5)
    out = p.process(x, sfreq=SFREQ)
    assert p["bp"].status == "disabled"
    assert ("ParameterError: filters.bandpass: 'high' = 130.0 Hz must be below Nyquist (125.0 Hz) "
            "for sfreq 250.0") in p["bp"].error
    np.testing.assert_array_equal(out["bp"], x)  # a disabled in-place stage passes its input on


def test_long_blocks_split_into_channel_groups_match_sosfilt(stage):
    # more channels than one group and a block past SPLIT_SAMPLES: the grouped path
    n_channels = 2 * stage.GROUP + 3
    x = eeg(n_channels=n_channels, seconds=2 * stage.SPLIT_SAMPLES / SFREQ)
    sos, z0, z1, *work = design(stage, "bandpass", n_channels=n_channels)
    ref, ref_zf = signal.sosfilt(sos, x, zi=scipy_zi(z0, z1))
    y = x.copy()
    stage.kernel(y, sos, z0, z1, *work)
    assert np.array_equal(y, ref)
    assert np.array_equal(scipy_zi(z0, z1), ref_zf)
    _, *state = design(stage, "bandpass", n_channels=n_channels)
    assert np.array_equal(run_chunks(stage.kernel, x, (sos, *state), 32), ref)
