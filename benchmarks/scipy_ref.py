"""The scipy/numpy baseline: ``sosfilt`` with carried ``zi``, numpy mean, numpy ``rfft``.

Written as a careful scipy user would: state carried between chunks, a rolling
buffer of the last 256 samples, the band power from one real FFT per channel.
``sosfilt`` computes in float64 whatever the input (it returns float64 for float32
input); the offline version stores into an array of the input's dtype.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from . import workloads as wl

OFFLINE_ROWS = 8  # channels per sosfilt call offline


class ScipyStream:
    """Streaming baseline: one chunk at a time."""

    name = "scipy"

    def __init__(self, n_channels, sfreq, dtype, chunk):
        self.sos_bp, self.sos_notch = wl.design(sfreq)
        self.zi_bp = np.zeros((self.sos_bp.shape[0], n_channels, 2))
        self.zi_notch = np.zeros((self.sos_notch.shape[0], n_channels, 2))
        tab = wl.band_tables(sfreq)
        self.win, self.bins = tab["win"], tab["bins"]
        self.gain, self.scale = tab["gain"], tab["scale"]
        self.hist = np.zeros((n_channels, wl.WINDOW))
        self.seen = 0
        self.last = None

    def step(self, chunk):
        """One chunk; returns the band-power vector, or None before the window is full."""
        y, self.zi_bp = signal.sosfilt(self.sos_bp, chunk, axis=-1, zi=self.zi_bp)
        y, self.zi_notch = signal.sosfilt(self.sos_notch, y, axis=-1, zi=self.zi_notch)
        y -= y.mean(axis=0)
        self.last = y
        n, hist = y.shape[1], self.hist
        if n >= hist.shape[1]:
            hist[:] = y[:, -hist.shape[1]:]
        else:
            hist[:, :-n] = hist[:, n:]
            hist[:, -n:] = y
        self.seen += n
        if self.seen < hist.shape[1]:
            return None
        spec = np.fft.rfft(hist * self.win, axis=1)[:, self.bins]
        psd = (spec.real ** 2 + spec.imag ** 2) * self.gain
        return psd.sum(axis=1) * self.scale

    def car_output(self):
        """The last chunk after CAR."""
        return self.last


class ScipyPeriodogram(ScipyStream):
    """The same with the textbook calls: ``scipy.signal.periodogram`` over the last 256
    samples, kept by concatenation (more Python and allocation per chunk)."""

    name = "scipy periodogram"

    def __init__(self, n_channels, sfreq, dtype, chunk):
        super().__init__(n_channels, sfreq, dtype, chunk)
        self.sfreq = sfreq
        self.hist = np.zeros((n_channels, 0))

    def step(self, chunk):
        """One chunk; returns the band-power vector, or None before the window is full."""
        y, self.zi_bp = signal.sosfilt(self.sos_bp, chunk, axis=-1, zi=self.zi_bp)
        y, self.zi_notch = signal.sosfilt(self.sos_notch, y, axis=-1, zi=self.zi_notch)
        y = y - y.mean(axis=0, keepdims=True)
        self.last = y
        self.hist = np.concatenate([self.hist, y], axis=1)[:, -wl.WINDOW:]
        if self.hist.shape[1] < wl.WINDOW:
            return None
        freqs, psd = signal.periodogram(self.hist, fs=self.sfreq, window="hann", detrend=False)
        band = (freqs >= wl.BANDS[0]) & (freqs < wl.BANDS[1])
        return psd[:, band].sum(axis=1) * (freqs[1] - freqs[0])


def offline(x, sfreq):
    """Band-pass, notch, CAR over a whole recording: ``sosfilt`` over the whole duration
    of a group of channels at a time (rows of a C array are contiguous, no state to
    carry), into an output of the input's dtype, then CAR in place. Memory stays at
    input + output + one group; measured as fast as one call over the whole array,
    and faster than time blocks with carried ``zi``."""
    sos_bp, sos_notch = wl.design(sfreq)
    out = np.empty_like(x)
    for c in range(0, x.shape[0], OFFLINE_ROWS):
        rows = slice(c, c + OFFLINE_ROWS)
        out[rows] = signal.sosfilt(sos_notch, signal.sosfilt(sos_bp, x[rows]))
    out -= out.mean(axis=0)
    return out
