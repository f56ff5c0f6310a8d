"""Sliding-window power spectra and band powers of EEG rhythms.

Windows are defined on the stream's global sample index: window ``k`` covers input
samples ``k * step ... k * step + window - 1`` and is emitted by the chunk that
contains its last sample. Each channel keeps a ring buffer of its last ``window``
samples and the stream keeps a sample counter, so a recording processed whole and
the same recording pushed in chunks of any sizes give bit-identical outputs.

The spectrum of a window is the one-sided periodogram density of
``scipy.signal.periodogram(seg, fs, window="hann", detrend=False, scaling="density")``.
numba has no FFT, so the kernel evaluates the DFT of the wanted bins directly, with
cos/sin tables made in ``setup``: ``O(window * n_bins)`` per channel and window, and
plain loops (no BLAS) so the result does not depend on how samples were chunked.

Output blocks: when a chunk completes ``n`` windows, the kernel returns an
``(n_rows, n)`` array written into an output buffer made in ``setup`` (room for
``OUT_WINDOWS`` windows; a block completing more gets a new array), so streaming
allocates nothing per chunk. Like every stage output, it is valid until the next
call: the pipeline copies what it keeps. A chunk that completes no window returns
a ``(n_rows, 0)`` array.
"""

import numpy as np
from scipy import signal

from eegkit import ParameterError, jit

BAND_NAMES = ("delta", "theta", "alpha", "beta", "gamma")
OUT_WINDOWS = 4  # windows per call the preallocated output holds (streaming: chunk <= 4 steps)


def setup_spectrum(info, window=256, step=32, fmin=0.0, fmax=0.0):
    """Power spectral density of each window, for the bins in ``[fmin, fmax]``.

    Parameters
    ----------
    info : StreamInfo
        Input stream (a time series).
    window : int
        Samples per window (Hann, periodic).
    step : int
        Samples between the starts of consecutive windows.
    fmin, fmax : float
        Frequency range in Hz (both ends included); ``fmax`` 0 (the manifest's default)
        or None means Nyquist.

    Returns
    -------
    tuple
        ``(state, output_info)``; the output is a ``"spectrum"`` stream with one row per
        (channel, bin), unit ``<unit>²/Hz``, at ``sfreq / step`` windows per second.
    """
    stage = "brain_fft.spectrum"
    window, step = _check_windowing(info, window, step, stage)
    freqs = np.fft.rfftfreq(window, 1.0 / info.sfreq)
    nyquist = info.sfreq / 2.0
    if fmax is None or fmax == 0:
        fmax = nyquist
    if fmin < 0:
        raise ParameterError(f"{stage}: 'fmin' must be >= 0 Hz, got {fmin!r}")
    if fmax > nyquist:
        raise ParameterError(f"{stage}: 'fmax' = {float(fmax)} Hz must be at most Nyquist "
                             f"({nyquist} Hz) for sfreq {info.sfreq}; use 0 for Nyquist")
    if not fmin <= fmax:
        raise ParameterError(f"{stage}: 'fmin' ({fmin} Hz) must not exceed 'fmax' ({fmax} Hz)")
    bins = np.flatnonzero((freqs >= fmin) & (freqs <= fmax))
    if bins.size == 0:
        raise ParameterError(f"{stage}: no frequency bin lies in [{fmin}, {fmax}] Hz; bins are "
                             f"{info.sfreq / window:g} Hz apart for window={window} at sfreq "
                             f"{info.sfreq}: widen the range or lengthen the window")
    # every bin is its own group, summed once and scaled by 1: the density itself
    starts = np.arange(bins.size, dtype=np.int64)
    state = _state(info, window, step, bins, starts, starts + 1, 1.0)
    labels = [f"{f:g}" for f in freqs[bins]]
    out = info.expand("spectrum", labels, freqs[bins], sfreq=info.sfreq / step)
    return state, out.replace(units=tuple(f"{u}²/Hz" for u in out.units))


def setup_band_power(info, window=256, step=32, bands=(1.0, 4.0, 8.0, 13.0, 30.0, 45.0),
                     band_names=BAND_NAMES):
    """Power in frequency bands for each window.

    Band ``i`` is ``[bands[i], bands[i + 1])``: its power is the sum of the periodogram
    density over the bins with ``lo <= f < hi``, times the bin spacing ``sfreq / window``.

    Parameters
    ----------
    info : StreamInfo
        Input stream (a time series).
    window, step : int
        As in :func:`setup_spectrum`.
    bands : list of float
        Increasing band edges in Hz, at most Nyquist.
    band_names : list of str
        One name per band (``len(bands) - 1``).

    Returns
    -------
    tuple
        ``(state, output_info)``; the output is a ``"features"`` stream whose axis is the
        band names (axis values: band centres), one row per (channel, band), unit ``<unit>²``.
    """
    stage = "brain_fft.band_power"
    window, step = _check_windowing(info, window, step, stage)
    edges = np.asarray(bands, dtype=np.float64)
    names = [str(n) for n in band_names]
    nyquist = info.sfreq / 2.0
    if edges.ndim != 1 or edges.size < 2:
        raise ParameterError(f"{stage}: 'bands' needs at least two edges, got {list(bands)!r}")
    if not np.all(np.diff(edges) > 0):
        raise ParameterError(f"{stage}: 'bands' edges must increase strictly, got {list(bands)!r}")
    if edges[0] < 0 or edges[-1] > nyquist:
        raise ParameterError(f"{stage}: 'bands' edges must lie in [0, {nyquist}] Hz (Nyquist "
                             f"for sfreq {info.sfreq}), got {list(bands)!r}")
    if len(names) != edges.size - 1:
        raise ParameterError(f"{stage}: 'band_names' needs one name per band: {edges.size - 1} "
                             f"for bands={list(bands)!r}, got {len(names)} ({names!r})")
    if len(set(names)) != len(names) or any(not n or ":" in n for n in names):
        raise ParameterError(f"{stage}: 'band_names' must be distinct, non-empty and without ':', "
                             f"got {names!r}")
    freqs = np.fft.rfftfreq(window, 1.0 / info.sfreq)
    bins = np.flatnonzero((freqs >= edges[0]) & (freqs < edges[-1]))
    # bins ascend, so band i is the run of bins in [edges[i], edges[i + 1])
    starts = np.searchsorted(freqs[bins], edges[:-1], side="left").astype(np.int64)
    stops = np.searchsorted(freqs[bins], edges[1:], side="left").astype(np.int64)
    for name, lo, hi, a, b in zip(names, edges[:-1], edges[1:], starts, stops):
        if a == b:
            raise ParameterError(f"{stage}: band '{name}' [{lo:g}, {hi:g}) Hz contains no "
                                 f"frequency bin; bins are {info.sfreq / window:g} Hz apart for "
                                 f"window={window} at sfreq {info.sfreq}: widen the band or "
                                 f"lengthen the window")
    state = _state(info, window, step, bins, starts, stops, info.sfreq / window)
    centres = (edges[:-1] + edges[1:]) / 2.0
    out = info.expand("features", names, centres, sfreq=info.sfreq / step)
    return state, out.replace(units=tuple(f"{u}²" for u in out.units))


def process_windows(x, ring, count, step, win, cos_table, sin_table, bins, gain,
                    acc, psd, starts, stops, scale, outbuf, empty):
    """Feed ``x`` into the ring buffers; return one column per window completed.

    Row ``c * n_groups + g`` of the output is ``scale * sum(psd[starts[g]:stops[g]])``
    for channel ``c``, where ``psd`` is the periodogram density of the selected ``bins``.

    Parameters
    ----------
    x : ndarray, shape (n_channels, n_samples)
        Input block (not modified).
    ring : ndarray, shape (window, n_channels)
        Last ``window`` samples; sample ``i`` of the stream lives at row ``i % window``.
    count : ndarray of int64, shape (1,)
        Samples seen before this block.
    step : int
        Samples between window starts.
    win, cos_table, sin_table : ndarray, shape (window,)
        Hann window and ``cos``/``sin`` of ``2 pi m / window``.
    bins : ndarray of int64
        DFT bins computed.
    gain : ndarray
        Density scaling per bin (one-sided doubling included).
    acc, psd : ndarray, shapes (2, n_channels) and (n_channels, n_bins)
        Scratch: real and imaginary sums, and density of the ``bins``.
    starts, stops : ndarray of int64
        Groups of consecutive entries of ``psd`` summed into one output row each.
    scale : float
        Factor applied to every sum (1 for a spectrum, the bin width for band powers).
    outbuf : ndarray, shape (n_rows * OUT_WINDOWS,)
        Output buffer (output dtype): the returned block is a view of it when it fits.
    empty : ndarray, shape (n_rows, 0)
        Returned when no window completes; its dtype is the output dtype.

    Returns
    -------
    ndarray, shape (n_channels * n_groups, n_windows)
        Valid until the next call (a view of ``outbuf`` when it fits).
    """
    n_channels, n_samples = x.shape
    n_window = ring.shape[0]
    n_groups = starts.shape[0]
    first = count[0]
    last = first + n_samples - 1
    # window k ends at global sample n_window - 1 + k * step
    if last < n_window - 1:
        k_first, k_last = 0, -1
    else:
        k_first = 0 if first <= n_window - 1 else (first - (n_window - 1) + step - 1) // step
        k_last = (last - (n_window - 1)) // step
    n_out = k_last - k_first + 1
    n_rows = empty.shape[0]
    if n_out <= 0:
        out = empty
    elif n_rows * n_out <= outbuf.shape[0]:
        out = outbuf[:n_rows * n_out].reshape((n_rows, n_out))
    else:  # a long offline block: more windows than the buffer holds
        out = np.empty((n_rows, n_out), empty.dtype)
    end = n_window - 1 + k_first * step  # global index of the next window's last sample
    t = 0
    j = 0
    while t < n_samples:
        stop = min(end - first + 1, n_samples)
        for i in range(t, stop):
            row = (first + i) % n_window
            for c in range(n_channels):
                ring[row, c] = x[c, i]
        t = stop
        if end <= last:
            _window_psd(ring, end - n_window + 1, win, cos_table, sin_table, bins, gain, acc, psd)
            for c in range(n_channels):
                for g in range(n_groups):
                    total = 0.0
                    for b in range(starts[g], stops[g]):
                        total += psd[c, b]
                    out[c * n_groups + g, j] = total * scale
            j += 1
            end += step
    count[0] = first + n_samples
    return out


@jit
def _window_psd(ring, start, win, cos_table, sin_table, bins, gain, acc, psd):
    """Periodogram density of every channel over the window starting at global ``start``.

    The innermost loop runs over channels: their sums are independent, so it
    vectorises instead of waiting on one long chain of additions. Each channel is
    still summed over the window's samples in order, so results do not depend on it.
    """
    n, n_channels = ring.shape
    head = start % n
    re = acc[0]
    im = acc[1]
    for b in range(bins.shape[0]):
        k = bins[b]
        for c in range(n_channels):
            re[c] = 0.0
            im[c] = 0.0
        m = 0  # (k * i) mod n, kept exact by stepping instead of multiplying
        j = head
        for i in range(n):
            w = win[i]
            cm = cos_table[m]
            sm = sin_table[m]
            # ring[j, c] indexed directly: a row view per sample measured 1.7x slower
            for c in range(n_channels):
                v = w * ring[j, c]
                re[c] += v * cm
                im[c] += v * sm
            m = _wrap(m + k, n)
            j = _wrap(j + 1, n)
        for c in range(n_channels):
            psd[c, b] = (re[c] * re[c] + im[c] * im[c]) * gain[b]


@jit
def _wrap(m, n):
    """``m mod n`` for ``0 <= m < 2 n``."""
    return m - n if m >= n else m


def _state(info, window, step, bins, starts, stops, scale):
    """Tables, scratch and ring buffer handed to :func:`process_windows`."""
    win = signal.get_window("hann", window).astype(np.float64)
    density = 1.0 / (info.sfreq * np.sum(win * win))
    gain = np.full(bins.size, density)
    # one-sided: every bin but DC (and Nyquist for an even window) carries its mirror's power
    mirrored = (bins > 0) & ~((window % 2 == 0) & (bins == window // 2))
    gain[mirrored] *= 2.0
    phase = 2.0 * np.pi * np.arange(window) / window
    n_rows = info.n_channels * starts.size
    return (np.zeros((window, info.n_channels)), np.zeros(1, dtype=np.int64), int(step), win,
            np.cos(phase), np.sin(phase), bins.astype(np.int64), gain,
            np.zeros((2, info.n_channels)), np.zeros((info.n_channels, bins.size)), starts, stops,
            float(scale), np.zeros(n_rows * OUT_WINDOWS, dtype=info.dtype),
            np.zeros((n_rows, 0), dtype=info.dtype))


def _check_windowing(info, window, step, stage):
    """Validate the input kind, ``window`` and ``step``; return them as ints."""
    if info.kind != "timeseries":
        raise ParameterError(f"{stage}: input must be a timeseries stream, got a {info.kind!r} "
                             f"stream")
    if int(window) != window or window < 2:
        raise ParameterError(f"{stage}: 'window' must be an integer >= 2 samples, got {window!r}")
    if int(step) != step or step < 1:
        raise ParameterError(f"{stage}: 'step' must be an integer >= 1 sample, got {step!r}")
    return int(window), int(step)
