"""brain_fft: windowed spectra and band powers against scipy, whole and chunked."""

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
CHUNKS = [1, 7, 32, [5, 1, 64, 13, 2, 300, 31, 3]]
# the DFT is summed directly rather than by FFT: agreement to rounding, relative to the peak
RTOL = 1e-11


@pytest.fixture(scope="module")
def stage():
    """The plugin module with ``process_windows`` compiled as the host compiles it."""
    module, module.kernel = compile_kernel(STAGE_FILE, "process_windows", "_eegkit_test_brain_fft_stage")
    return module


def info(n_channels=8, dtype="float64"):
    return StreamInfo(SFREQ, [f"EEG{i:02d}" for i in range(n_channels)], dtype=dtype)


def eeg(n_channels=8, seconds=4.0, seed=0, dtype=np.float64):
    """Noise plus a 10 Hz alpha rhythm of growing amplitude per channel, in volts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SFREQ)) / SFREQ
    x = 5e-6 * rng.standard_normal((n_channels, t.size))
    x += 1e-6 * np.arange(1, n_channels + 1)[:, None] * np.sin(2 * np.pi * 10.0 * t)
    return np.ascontiguousarray(x, dtype=dtype)


def periodograms(x, window, step):
    """scipy's periodogram of every window: array (n_channels, n_freqs, n_windows)."""
    starts = range(0, x.shape[1] - window + 1, step)
    cols = [signal.periodogram(x[:, s:s + window], SFREQ, window="hann", detrend=False,
                               scaling="density")[1] for s in starts]
    return np.stack(cols, axis=-1)


def assert_close(out, ref):
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


@pytest.mark.parametrize("window, step", [(256, 32), (125, 50), (64, 100)])
def test_spectrum_matches_periodogram_and_spectrogram(stage, window, step):
    x = eeg()
    state, out_info = stage.setup_spectrum(info(), window=window, step=step)
    out = stage.kernel(x.copy(), *state)
    freqs = np.fft.rfftfreq(window, 1 / SFREQ)
    n_windows = (x.shape[1] - window) // step + 1
    assert out.shape == (8 * freqs.size, n_windows) and out_info.n_channels == out.shape[0]
    ref = periodograms(x, window, step)
    assert_close(out, ref.reshape(-1, n_windows))
    if step <= window:  # spectrogram needs overlapping windows; same segments, same density
        f, _, sxx = signal.spectrogram(x, SFREQ, window="hann", nperseg=window,
                                       noverlap=window - step, detrend=False, scaling="density")
        np.testing.assert_allclose(f, out_info.axis_values)
        assert_close(out, sxx.reshape(-1, sxx.shape[-1]))
        _, welch = signal.welch(x, SFREQ, window="hann", nperseg=window, noverlap=window - step,
                                detrend=False, scaling="density")
        assert_close(out.mean(axis=1), welch.reshape(-1))


def test_spectrum_info_and_frequency_range(stage):
    state, out_info = stage.setup_spectrum(info(2), window=250, step=25, fmin=8.0, fmax=12.0)
    assert out_info.kind == "spectrum" and out_info.sfreq == SFREQ / 25
    assert out_info.axis == ("8", "9", "10", "11", "12")
    assert out_info.ch_names[:2] == ("EEG00:8", "EEG00:9") and out_info.units[0] == "V²/Hz"
    x = eeg(n_channels=2, seconds=2.0)
    out = stage.kernel(x.copy(), *state)
    ref = periodograms(x, 250, 25)[:, 8:13]
    assert_close(out, ref.reshape(-1, ref.shape[-1]))
    # the alpha peak of each channel is at 10 Hz
    assert (out.reshape(2, 5, -1).mean(axis=2).argmax(axis=1) == 2).all()
    _, full = stage.setup_spectrum(info(2), window=256)
    assert full.axis_values[-1] == SFREQ / 2 and len(full.axis) == 129


@pytest.mark.parametrize("sizes", CHUNKS, ids=str)
@pytest.mark.parametrize("which", ["spectrum", "band_power"])
def test_chunked_is_bit_identical_to_whole(stage, which, sizes):
    x = eeg(seed=1)
    setup = getattr(stage, f"setup_{which}")
    whole = stage.kernel(x.copy(), *setup(info())[0])
    chunked = run_chunks(stage.kernel, x, setup(info())[0], sizes)
    assert whole.shape[1] == (x.shape[1] - 256) // 32 + 1
    np.testing.assert_array_equal(chunked, whole)


def test_band_power_matches_periodogram(stage):
    x = eeg()
    state, out_info = stage.setup_band_power(info(), window=256, step=32)
    out = stage.kernel(x.copy(), *state)
    assert out_info.kind == "features" and out_info.axis == stage.BAND_NAMES
    assert out_info.axis_values == (2.5, 6.0, 10.5, 21.5, 37.5)
    assert out_info.ch_names[2] == "EEG00:alpha" and out_info.units[0] == "V²"
    psd = periodograms(x, 256, 32)
    freqs = np.fft.rfftfreq(256, 1 / SFREQ)
    edges = [1, 4, 8, 13, 30, 45]
    ref = np.stack([psd[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) * (freqs[1] - freqs[0])
                    for lo, hi in zip(edges[:-1], edges[1:])], axis=1)
    assert_close(out, ref.reshape(-1, ref.shape[-1]))
    # alpha dominates where its amplitude (1 µV per channel index) beats the broadband noise
    assert (out.reshape(8, 5, -1).mean(axis=2)[2:].argmax(axis=1) == 2).all()


def test_band_power_custom_bands(stage):
    x = eeg(n_channels=3, seconds=2.0)
    state, out_info = stage.setup_band_power(info(3), window=200, step=50, bands=[8.0, 10.0, 12.5],
                                             band_names=["low_alpha", "high_alpha"])
    out = stage.kernel(x.copy(), *state)
    psd = periodograms(x, 200, 50)
    freqs = np.fft.rfftfreq(200, 1 / SFREQ)
    df = SFREQ / 200
    ref = np.stack([psd[:, (freqs >= 8) & (freqs < 10)].sum(axis=1) * df,
                    psd[:, (freqs >= 10) & (freqs < 12.5)].sum(axis=1) * df], axis=1)
    assert_close(out, ref.reshape(-1, ref.shape[-1]))
    assert out_info.ch_names == tuple(f"EEG0{c}:{b}" for c in range(3)
                                      for b in ("low_alpha", "high_alpha"))


def test_float32_stream(stage):
    x = eeg(seed=3, dtype=np.float32)
    state, out_info = stage.setup_spectrum(info(dtype="float32"))
    out = stage.kernel(x.copy(), *state)
    assert out.dtype == np.float32 and out_info.dtype == "float32"
    # float64 arithmetic on the float32 samples, one rounding of each output value
    ref = periodograms(x.astype(np.float64), 256, 32).reshape(out.shape)
    np.testing.assert_allclose(out, ref, rtol=2.0**-24 + RTOL, atol=RTOL * np.abs(ref).max())
    fresh, _ = stage.setup_spectrum(info(dtype="float32"))
    np.testing.assert_array_equal(run_chunks(stage.kernel, x, fresh, [7, 32, 1]), out)


def test_no_window_yet_gives_empty_block(stage):
    state, out_info = stage.setup_band_power(info(), window=256, step=32)
    x = eeg(seconds=2.0)
    first = stage.kernel(np.ascontiguousarray(x[:, :255]), *state)
    assert first.shape == (out_info.n_channels, 0)
    second = stage.kernel(np.ascontiguousarray(x[:, 255:256]), *state)
    assert second.shape == (out_info.n_channels, 1)
    # outputs go to a buffer made in setup (valid until the next call): no allocation
    third = stage.kernel(np.ascontiguousarray(x[:, 256:288]), *state)
    assert third.shape == (out_info.n_channels, 1) and np.shares_memory(third, second)


@pytest.mark.parametrize("setup, params, message", [
    ("setup_spectrum", {"fmax": 130.0},
     "brain_fft.spectrum: 'fmax' = 130.0 Hz must be at most Nyquist (125.0 Hz) for sfreq 250.0"),
    ("setup_spectrum", {"fmin": 20.0, "fmax": 10.0}, "'fmin' (20.0 Hz) must not exceed 'fmax'"),
    ("setup_spectrum", {"window": 64, "fmin": 10.0, "fmax": 11.0}, "no frequency bin lies in"),
    ("setup_spectrum", {"step": 0}, "'step' must be an integer >= 1 sample, got 0"),
    ("setup_band_power", {"bands": [1.0, 4.0, 8.0]},
     "'band_names' needs one name per band: 2 for bands=[1.0, 4.0, 8.0], got 5"),
    ("setup_band_power", {"bands": [1.0, 8.0, 4.0], "band_names": ["a", "b"]}, "must increase"),
    ("setup_band_power", {"bands": [30.0, 140.0], "band_names": ["high"]}, "must lie in [0, 125.0] Hz"),
    ("setup_band_power", {"window": 32, "bands": [8.0, 9.0, 20.0], "band_names": ["a", "b"]},
     "band 'a' [8, 9) Hz contains no frequency bin"),
    ("setup_band_power", {"bands": [1.0, 4.0, 8.0], "band_names": ["a", "a"]}, "must be distinct"),
])
def test_bad_parameters_name_the_culprit(stage, setup, params, message):
    with pytest.raises(ParameterError) as err:
        getattr(stage, setup)(info(), **params)
    assert message in str(err.value)


def test_plain_python_when_jit_disabled(monkeypatch):
    monkeypatch.setenv("EEGKIT_DISABLE_JIT", "1")
    module = load_module(STAGE_FILE, "_eegkit_test_brain_fft_stage_nojit")
    kernel = jit(module.process_windows)
    assert not is_compiled(kernel) and not is_compiled(module._window_psd)
    x = eeg(n_channels=2, seconds=0.6)
    state, _ = module.setup_spectrum(info(2), window=32, step=16)
    out = run_chunks(kernel, x, state, [7, 1, 32])
    ref = periodograms(x, 32, 16)
    assert_close(out, ref.reshape(-1, ref.shape[-1]))


# -- through eegkit.Pipeline -------------------------------------------------------

PLUGINS = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def manager():
    """Stage types from this checkout's plugins folder only."""
    from eegkit import PluginManager

    manager = PluginManager(paths=[PLUGINS], entry_points=False)
    record = manager.record("brain_fft")
    reason = record.message if record is not None else "not found"
    assert record is not None and record.usable, f"brain_fft plugin is not usable: {reason}"
    return manager


def test_pipeline_offline_equals_streaming_equals_scipy(manager):
    import eegkit

    p = eegkit.Pipeline(plugins=manager)
    p.add("filters.highpass", id="hp", cutoff=0.5)
    p.add("brain_fft.spectrum", id="psd", window=250, step=25, fmax=45.0)
    p.add("brain_fft.band_power", id="bands", input="hp", window=250, step=25)
    x = eeg(seconds=3.0)
    out = p.process(x, sfreq=SFREQ, ch_names=list(info().ch_names))
    assert [s.status for s in p.stages] == ["ok"] * 3
    bands_info = p.info_of("bands")
    assert bands_info.kind == "features" and bands_info.axis == ("delta", "theta", "alpha", "beta", "gamma")
    assert p.info_of("psd").kind == "spectrum" and p.info_of("psd").sfreq == 10.0
    psd = periodograms(out["hp"], 250, 25)
    freqs = np.fft.rfftfreq(250, 1 / SFREQ)
    assert_close(out["psd"], psd[:, freqs <= 45.0].reshape(out["psd"].shape))
    edges = [1, 4, 8, 13, 30, 45]
    bands = np.stack([psd[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) * SFREQ / 250
                      for lo, hi in zip(edges[:-1], edges[1:])], axis=1)
    assert_close(out["bands"], bands.reshape(out["bands"].shape))
    # offline in small blocks, and streaming in chunks: the same bits
    small = p.process(x, sfreq=SFREQ, ch_names=list(info().ch_names), block=100)
    for sizes in CHUNKS:
        streamed = stream(p, info(), x, sizes)
        for id in ("psd", "bands"):
            np.testing.assert_array_equal(streamed[id], out[id])
            np.testing.assert_array_equal(small[id], out[id])


def test_pipeline_reports_bad_bands(manager):
    import eegkit

    p = eegkit.Pipeline(plugins=manager)
    p.add("brain_fft.band_power", id="bands", bands=[1.0, 4.0, 8.0])
    x = eeg(seconds=2.0)
    out = p.process(x, sfreq=SFREQ)
    assert p["bands"].status == "disabled"
    # documented policy: a stage whose setup failed has no output description of its
    # own, so it passes its input through
    assert np.array_equal(out["bands"], x)
    assert "'band_names' needs one name per band: 2" in p["bands"].error
