"""Tests of the built-in synthetic EEG source."""

import json

import numpy as np
import pytest
from scipy import signal

from eegkit._errors import ParameterError
from eegkit.sources import make_source
from eegkit.sources._synthetic import CHANNEL_PRIORITY, SyntheticSource, channel_names

FS = 250.0


def read_in_chunks(src, sizes, total):
    """Read ``total`` samples cycling through ``sizes``."""
    parts, got, i = [], 0, 0
    while got < total:
        block = src.read(min(sizes[i % len(sizes)], total - got))
        parts.append(block)
        got += block.shape[1]
        i += 1
    return np.concatenate(parts, axis=1)


def psd(x, sfreq=FS):
    return signal.welch(x, sfreq, nperseg=int(4 * sfreq), axis=-1)


@pytest.fixture(scope="module")
def long_32ch():
    """60 s of 32 channels (includes Fp1, Fz, O1), blinks every ~2 s, with markers."""
    src = SyntheticSource(n_channels=32, sfreq=FS, seed=3, duration=60.0, blink_interval=2.0)
    x = src.read_all()
    return src, x, src.markers()


# ---- determinism -----------------------------------------------------------------------
def test_read_size_does_not_change_samples():
    total = 3 * int(FS) + 17  # crosses several internal blocks
    whole = SyntheticSource(seed=5, blink_interval=1.0).read(total)
    ones = SyntheticSource(seed=5, blink_interval=1.0)
    by_one = np.concatenate([ones.read(1) for _ in range(total)], axis=1)
    irregular = read_in_chunks(SyntheticSource(seed=5, blink_interval=1.0), [7, 32, 1, 251, 3, 0], total)
    np.testing.assert_array_equal(by_one, whole)
    np.testing.assert_array_equal(irregular, whole)


def test_reset_replays_samples_and_markers():
    src = SyntheticSource(n_channels=16, seed=2, blink_interval=1.0)
    first = read_in_chunks(src, [100, 33], 1500)
    first_markers = src.markers()
    assert first_markers
    src.reset()
    assert src.markers() == []
    again = src.read(1500)
    np.testing.assert_array_equal(again, first)
    assert src.markers() == first_markers


def test_same_seed_same_samples_other_seed_differs():
    a = SyntheticSource(seed=1).read(500)
    b = SyntheticSource(seed=1).read(500)
    c = SyntheticSource(seed=2).read(500)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # not merely a shift or scaling: the channels are essentially uncorrelated
    r = [np.corrcoef(a[k], c[k])[0, 1] for k in range(a.shape[0])]
    assert np.max(np.abs(r)) < 0.8


def test_disabling_a_component_leaves_the_rest():
    base = SyntheticSource(seed=4, line_freq=0.0, blink_interval=0.0).read(1000)
    with_line = SyntheticSource(seed=4, line_freq=50.0, blink_interval=0.0).read(1000)
    diff = with_line - base
    # the difference is exactly a 50 Hz sinusoid per channel: remove it by least squares
    t = np.arange(1000) / FS
    basis = np.stack([np.sin(2 * np.pi * 50 * t), np.cos(2 * np.pi * 50 * t)])
    coef, *_ = np.linalg.lstsq(basis.T, diff.T, rcond=None)
    np.testing.assert_allclose(coef.T @ basis, diff, atol=1e-12)
    amp = np.hypot(*coef)
    assert np.all((amp > 1e-6) & (amp < 5e-6))


def test_alpha_is_continuous_across_blocks():
    on = SyntheticSource(seed=6, blink_interval=0.0, duration=20.0)
    off = SyntheticSource(seed=6, blink_interval=0.0, duration=20.0, alpha_freq=0.0)
    oz = on.info.ch_names.index("Oz")
    alpha = on.read_all()[oz] - off.read_all()[oz]
    # the instantaneous frequency stays near 10 Hz everywhere, block edges included
    phase = np.unwrap(np.angle(signal.hilbert(alpha)))
    inst = np.diff(phase) * FS / (2 * np.pi)
    edge = int(FS)
    assert np.all(np.abs(inst[edge:-edge] - 10.0) < 2.0)


# ---- shapes, dtype, metadata -----------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32", np.float32])
def test_shapes_and_dtype(dtype):
    src = SyntheticSource(n_channels=5, dtype=dtype)
    name = np.dtype(dtype).name
    assert src.info.dtype == name
    assert src.info.n_channels == 5
    assert src.info.ch_types == ("eeg",) * 5 and src.info.units == ("V",) * 5
    for n in (0, 1, 13, 600):
        block = src.read(n)
        assert block.shape == (5, n) and block.dtype == np.dtype(name)
        assert block.flags.c_contiguous
    assert src.n_samples is None and not src.ended and not src.live


def test_float32_is_float64_rounded():
    x64 = SyntheticSource(seed=9).read(700)
    x32 = read_in_chunks(SyntheticSource(seed=9, dtype="float32"), [64, 5], 700)
    np.testing.assert_array_equal(x32, x64.astype(np.float32))


def test_channel_names():
    assert channel_names(8) == ("Fz", "C3", "Cz", "C4", "Pz", "O1", "Oz", "O2")
    assert channel_names(2) == ("Fz", "Oz")
    twenty = channel_names(20)
    assert set(twenty) == {"Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4",
                           "T8", "P7", "P3", "Pz", "P4", "P8", "O1", "Oz", "O2"}
    assert twenty[0] in ("Fp1", "Fp2") and twenty[-3:] == ("O1", "Oz", "O2")
    full = channel_names(len(CHANNEL_PRIORITY))
    assert len(set(full)) == len(full)
    big = channel_names(len(CHANNEL_PRIORITY) + 1)
    assert big[0] == "EEG001" and big[-1] == f"EEG{len(CHANNEL_PRIORITY) + 1:03d}"
    # every count n is the first n channels of the priority list (in head order)
    for n in (1, 3, 12, 33, 64):
        assert set(channel_names(n)) == set(CHANNEL_PRIORITY[:n])


def test_names_are_standard_montage_positions():
    mne = pytest.importorskip("mne")
    montage = mne.channels.make_standard_montage("biosemi64")
    assert set(channel_names(64)) == set(montage.ch_names)
    names = channel_names(len(CHANNEL_PRIORITY))
    info = mne.create_info(list(names), FS, "eeg")
    builtin = mne.channels.get_builtin_montages()
    kind = "colin27_1020" if "colin27_1020" in builtin else "standard_1020"
    info.set_montage(kind)  # raises if a name has no position


def test_many_channels_generic_names_still_realistic():
    src = SyntheticSource(n_channels=100, seed=1)
    x = src.read(2 * int(FS))
    assert x.shape == (100, 500) and np.all(np.isfinite(x))
    assert 2e-6 < np.median(np.std(x, axis=1)) < 100e-6


# ---- realism -----------------------------------------------------------------------------
def test_amplitude_is_microvolts(long_32ch):
    _, x, _ = long_32ch
    std = np.std(x, axis=1)
    assert np.all((std > 5e-6) & (std < 100e-6))


def test_alpha_peak_posterior(long_32ch):
    src, x, _ = long_32ch
    names = src.info.ch_names
    f, p = psd(x)
    band = (f >= 8) & (f <= 12)
    alpha = p[:, band].sum(axis=1)
    assert alpha[names.index("O1")] > 5 * alpha[names.index("Fz")]
    o1 = p[names.index("O1")]
    search = (f >= 4) & (f <= 30)
    assert abs(f[search][np.argmax(o1[search])] - 10.0) <= 1.0


@pytest.mark.parametrize("alpha_freq", [8.5, 11.5])
def test_alpha_follows_alpha_freq(alpha_freq):
    src = SyntheticSource(seed=1, alpha_freq=alpha_freq, duration=40.0)
    x = src.read_all()
    f, p = psd(x[src.info.ch_names.index("Oz")])
    search = (f >= 4) & (f <= 30)
    assert abs(f[search][np.argmax(p[search])] - alpha_freq) <= 1.0


def test_alpha_off():
    src = SyntheticSource(seed=1, alpha_freq=0.0, duration=40.0)
    f, p = psd(src.read_all()[src.info.ch_names.index("Oz")])
    band = (f >= 8) & (f <= 12)
    side = ((f >= 4) & (f < 7)) | ((f > 13) & (f <= 16))
    assert p[band].mean() < p[side].mean()  # 1/f: no bump left in the alpha band


@pytest.mark.parametrize("line_freq", [50.0, 60.0])
def test_line_noise_peak(line_freq):
    src = SyntheticSource(seed=1, line_freq=line_freq, duration=40.0, blink_interval=0.0)
    f, p = psd(src.read_all())
    k = np.argmin(np.abs(f - line_freq))
    near = (np.abs(f - line_freq) > 2) & (np.abs(f - line_freq) < 10)
    assert np.all(p[:, k] > 5 * np.median(p[:, near], axis=1))
    other = 60.0 if line_freq == 50.0 else 50.0
    j = np.argmin(np.abs(f - other))
    assert np.all(p[:, j] < 3 * np.median(p[:, near], axis=1))


def test_line_noise_off():
    src = SyntheticSource(seed=1, line_freq=0.0, duration=40.0, blink_interval=0.0)
    f, p = psd(src.read_all())
    k = np.argmin(np.abs(f - 50.0))
    near = (np.abs(f - 50.0) > 2) & (np.abs(f - 50.0) < 10)
    assert np.all(p[:, k] < 3 * np.median(p[:, near], axis=1))


def test_background_is_one_over_f(long_32ch):
    src, x, _ = long_32ch
    f, p = psd(x)
    # away from alpha, line noise and the blink/drift range
    keep = (f >= 2) & (f <= 40) & ~((f > 6) & (f < 14))
    for name in ("Fz", "Cz", "O1"):
        slope = np.polyfit(np.log10(f[keep]), np.log10(p[src.info.ch_names.index(name), keep]), 1)[0]
        assert -2.5 < slope < -0.5, (name, slope)


def test_neighbours_correlate_more_than_distant_channels(long_32ch):
    src, x, _ = long_32ch
    names = src.info.ch_names
    sos = signal.butter(4, [20, 40], "bandpass", fs=FS, output="sos")
    y = signal.sosfiltfilt(sos, x)  # beta band: background only, no alpha/blinks/drift
    r = np.corrcoef(y)
    assert r[names.index("C3"), names.index("FC1")] > r[names.index("C3"), names.index("O2")] + 0.1
    assert r[names.index("C3"), names.index("O2")] < 0.3


def test_blinks_frontal_not_occipital(long_32ch):
    src, x, markers = long_32ch
    names = src.info.ch_names
    onsets = [s for s, d in markers]
    assert all(d == "blink" for _, d in markers)
    assert 15 <= len(onsets) <= 45  # 60 s at about one every 2 s
    assert onsets == sorted(onsets) and len(set(onsets)) == len(onsets)
    n = int(0.4 * FS)
    epochs = np.stack([x[:, s:s + n] for s in onsets if s + n <= x.shape[1]])
    evoked = epochs.mean(axis=0)
    evoked -= evoked[:, :1]  # baseline at onset
    fp1 = np.abs(evoked[names.index("Fp1")]).max()
    o1 = np.abs(evoked[names.index("O1")]).max()
    assert 50e-6 < fp1 < 400e-6
    assert o1 < 0.15 * fp1
    # the deflection peaks within the first ~300 ms
    assert np.argmax(evoked[names.index("Fp1")]) < int(0.3 * FS)


def test_blinks_are_whole_bumps_at_marker_onsets():
    with_blinks = SyntheticSource(n_channels=9, seed=11, blink_interval=0.7, duration=30.0)
    without = SyntheticSource(n_channels=9, seed=11, blink_interval=0.0, duration=30.0)
    fp1 = with_blinks.info.ch_names.index("Fp1")
    blinks = (with_blinks.read_all() - without.read_all())[fp1]
    onsets = [s for s, _ in with_blinks.markers()]
    assert len(onsets) > 20  # many blinks, so several straddle the 1 s internal blocks
    inside = np.zeros(blinks.size, bool)
    for s in onsets:
        inside[s:s + int(0.36 * FS)] = True
        assert blinks[s + int(0.05 * FS)] > 0  # every marker has a blink under it
    assert np.all(blinks[~inside] == 0)
    # smooth everywhere (a blink cut at a block edge would drop by tens of microvolts)
    assert np.abs(np.diff(blinks)).max() < 0.1 * blinks.max()


def test_blinks_off_and_markers_drain():
    src = SyntheticSource(blink_interval=0.0)
    src.read(int(30 * FS))
    assert src.markers() == []
    src = SyntheticSource(blink_interval=1.0, seed=8)
    seen, done = [], 0
    for _ in range(40):
        done += src.read(100).shape[1]
        got = src.markers()
        assert all(s < done for s, _ in got)
        seen += got
    assert len(seen) >= 8
    assert src.markers() == []
    # markers only name samples already handed out, whatever the read sizes
    other = SyntheticSource(blink_interval=1.0, seed=8)
    other.read(4000)
    assert other.markers() == seen


# ---- duration -------------------------------------------------------------------------
def test_duration():
    src = SyntheticSource(sfreq=FS, duration=2.003)
    assert src.n_samples == round(2.003 * FS) == 501
    a = src.read(300)
    b = src.read(300)
    assert a.shape[1] == 300 and b.shape[1] == 201 and src.ended
    c = src.read(10)
    assert c.shape == (8, 0) and src.ended
    src.reset()
    assert not src.ended
    whole = src.read_all()
    np.testing.assert_array_equal(whole, np.concatenate([a, b], axis=1))
    assert src.ended
    # the finite stream is a prefix of the endless one
    np.testing.assert_array_equal(whole, SyntheticSource(sfreq=FS).read(501))


def test_unbounded_read_all_refused():
    with pytest.raises(ParameterError):
        SyntheticSource().read_all()


# ---- parameters -----------------------------------------------------------------------
@pytest.mark.parametrize("params, name", [
    ({"n_channels": 0}, "n_channels"),
    ({"n_channels": 2.0}, "n_channels"),
    ({"n_channels": True}, "n_channels"),
    ({"sfreq": 0}, "sfreq"),
    ({"sfreq": -250.0}, "sfreq"),
    ({"sfreq": float("nan")}, "sfreq"),
    ({"sfreq": "250"}, "sfreq"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"duration": 0}, "duration"),
    ({"duration": float("inf")}, "duration"),
    ({"line_freq": -50.0}, "line_freq"),
    ({"line_freq": float("nan")}, "line_freq"),
    ({"alpha_freq": 200.0}, "alpha_freq"),
    ({"blink_interval": -1.0}, "blink_interval"),
    ({"blink_interval": 0.1}, "blink_interval"),
    ({"dtype": "int16"}, "dtype"),
    ({"dtype": "float16"}, "dtype"),
])
def test_parameter_errors(params, name):
    with pytest.raises(ParameterError) as info:
        SyntheticSource(**params)
    msg = str(info.value)
    value = next(iter(params.values())) if name in params else params.get(name)
    assert f"'{name}'" in msg and "expected" in msg and "got" in msg
    if name in params:
        assert repr(value) in msg


@pytest.mark.parametrize("sfreq, line_freq", [(100.0, 50.0), (100.0, 60.0), (250.0, 125.0)])
def test_line_at_or_above_nyquist_is_left_out(sfreq, line_freq):
    # as behind an amplifier's anti-aliasing filter: same samples as with line noise off
    src = SyntheticSource(sfreq=sfreq, line_freq=line_freq)
    np.testing.assert_array_equal(src.read(600), SyntheticSource(sfreq=sfreq, line_freq=0.0).read(600))
    assert make_source(src.to_spec()).line_freq == line_freq


def test_read_rejects_bad_counts():
    src = SyntheticSource()
    for bad in (-1, 2.5, "3"):
        with pytest.raises(ParameterError, match="'n'"):
            src.read(bad)


# ---- pipeline JSON ----------------------------------------------------------------------
def test_make_source_round_trip():
    src = SyntheticSource(n_channels=12, sfreq=512, seed=7, duration=3.0, line_freq=60.0,
                          alpha_freq=9.5, blink_interval=3.0, dtype="float32")
    spec = src.to_spec()
    assert spec["type"] == "synthetic"
    assert set(spec["params"]) == {"n_channels", "sfreq", "seed", "duration", "line_freq",
                                   "alpha_freq", "blink_interval", "dtype"}
    spec = json.loads(json.dumps(spec))
    again = make_source(spec)
    assert isinstance(again, SyntheticSource)
    assert again.to_spec() == src.to_spec()
    assert again.info == src.info
    np.testing.assert_array_equal(again.read_all(), src.read_all())
    assert again.markers() == src.markers()


def test_make_source_defaults_and_errors():
    src = make_source({"type": "synthetic", "params": {}})
    np.testing.assert_array_equal(src.read(300), SyntheticSource().read(300))
    with pytest.raises(ParameterError, match="n_channels"):
        make_source({"type": "synthetic", "params": {"n_channels": -2}})
    with pytest.raises(ParameterError, match="Did you mean 'n_channels'"):
        make_source({"type": "synthetic", "params": {"n_channel": 4}})
