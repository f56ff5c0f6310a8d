"""The benchmark workload: deterministic synthetic EEG and the stage chain's parameters.

Every implementation (eegkit, scipy, hand-written numba) runs the same chain:

1. 4th-order Butterworth band-pass 1–40 Hz as second-order sections, state carried;
2. 50 Hz notch (``scipy.signal.iirnotch``, Q 30), state carried;
3. common average reference over all channels;
4. (streaming only) alpha band power: periodogram density of the last 256 samples
   (periodic Hann window) summed over the bins in [8, 12) Hz, times the bin width,
   once per chunk (``brain_fft.band_power`` with ``window=256, step=chunk,
   bands=[8, 12], band_names=["alpha"]``).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

SFREQ = 1000.0
N_CHANNELS = 64
LOW, HIGH, ORDER = 1.0, 40.0, 4
NOTCH, Q = 50.0, 30.0
WINDOW = 256
BANDS = (8.0, 12.0)
BAND_NAMES = ("alpha",)
SEED = 20240601
GEN_BLOCK = 60_000  # samples per generated block (60 s): fixes the random stream


def channel_names(n_channels: int) -> list:
    """``EEG000``, ``EEG001``, ..."""
    return [f"EEG{i:03d}" for i in range(n_channels)]


def add_stages(pipeline, chunk: int | None) -> None:
    """Add the workload's stages to an eegkit Pipeline (band power only when ``chunk``)."""
    pipeline.add("filters.bandpass", id="bp", low=LOW, high=HIGH, order=ORDER)
    pipeline.add("filters.notch", id="notch", freq=NOTCH, q=Q)
    pipeline.add("reref.average", id="car")
    if chunk is not None:
        pipeline.add("brain_fft.band_power", id="alpha", window=WINDOW, step=int(chunk),
                     bands=list(BANDS), band_names=list(BAND_NAMES))


def stage_params(chunk: int) -> dict:
    """Stage id → (type, parameters), as reported."""
    return {"bp": ("filters.bandpass", {"low": LOW, "high": HIGH, "order": ORDER}),
            "notch": ("filters.notch", {"freq": NOTCH, "q": Q}),
            "car": ("reref.average", {}),
            "alpha": ("brain_fft.band_power", {"window": WINDOW, "step": chunk,
                                               "bands": list(BANDS), "band_names": list(BAND_NAMES)})}


def design(sfreq: float = SFREQ) -> tuple:
    """``(sos_bandpass, sos_notch)``, normalised float64 sections, as the filters plugin designs them."""
    bp = signal.butter(ORDER, [LOW, HIGH], btype="bandpass", fs=sfreq, output="sos")
    b, a = signal.iirnotch(NOTCH, Q, fs=sfreq)
    notch = signal.tf2sos(b, a)
    return (np.ascontiguousarray(bp / bp[:, 3:4]), np.ascontiguousarray(notch / notch[:, 3:4]))


def band_tables(sfreq: float = SFREQ, window: int = WINDOW) -> dict:
    """Hann window, density gain per bin and the bins of the band, as brain_fft defines them."""
    win = signal.get_window("hann", window).astype(np.float64)
    freqs = np.fft.rfftfreq(window, 1.0 / sfreq)
    bins = np.flatnonzero((freqs >= BANDS[0]) & (freqs < BANDS[1])).astype(np.int64)
    gain = np.full(bins.size, 1.0 / (sfreq * np.sum(win * win)))
    mirrored = (bins > 0) & ~((window % 2 == 0) & (bins == window // 2))
    gain[mirrored] *= 2.0
    phase = 2.0 * np.pi * np.arange(window) / window
    return {"win": win, "bins": bins, "freqs": freqs[bins], "gain": gain,
            "scale": sfreq / window, "cos": np.cos(phase), "sin": np.sin(phase)}


class EegGenerator:
    """Deterministic EEG-like signal, produced block by block in volts.

    Brown-ish background (AR(1) white noise, carried across blocks), white noise, a
    10 Hz alpha rhythm whose amplitude differs per channel, 50 Hz line noise and a DC
    offset per channel. Block ``k`` always holds the same samples, so 10 minutes are
    the first 10 minutes of the hour.
    """

    def __init__(self, n_channels: int = N_CHANNELS, sfreq: float = SFREQ, seed: int = SEED):
        self.n_channels, self.sfreq, self.seed = n_channels, sfreq, seed
        rng = np.random.default_rng([seed, 0])
        self.alpha = rng.uniform(2e-6, 20e-6, n_channels)[:, None]
        self.line = rng.uniform(5e-6, 30e-6, n_channels)[:, None]
        self.offset = rng.uniform(-50e-6, 50e-6, n_channels)[:, None]
        self.phase = rng.uniform(0, 2 * np.pi, n_channels)[:, None]

    def fill(self, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (n_channels, n_samples) from sample 0, block by block; return it."""
        zi = np.zeros((self.n_channels, 1))
        for k, start in enumerate(range(0, out.shape[1], GEN_BLOCK)):
            n = min(GEN_BLOCK, out.shape[1] - start)
            out[:, start:start + n] = self._block(k, start, n, zi)
        return out

    def make(self, n_samples: int, dtype="float64") -> np.ndarray:
        """A new C-contiguous array of ``n_samples`` samples per channel."""
        return self.fill(np.empty((self.n_channels, n_samples), dtype=dtype))

    def _block(self, k, start, n, zi):
        """Block ``k`` (its random numbers depend only on the seed and ``k``)."""
        rng = np.random.default_rng([self.seed, k + 1])
        white = rng.standard_normal((self.n_channels, GEN_BLOCK))[:, :n]
        brown, zi[:] = signal.lfilter([1.0], [1.0, -0.98], white, axis=1, zi=zi)
        t = (start + np.arange(n)) / self.sfreq
        x = 2e-6 * brown + 3e-6 * white + self.offset
        x += self.alpha * np.sin(2 * np.pi * 10.0 * t + self.phase)
        x += self.line * np.sin(2 * np.pi * 50.0 * t)
        return x
