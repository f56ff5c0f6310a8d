"""Hand-written numba baselines: what a numba user would write for the workload.

These call numba directly instead of through ``eegkit._numba.jit``: they stand for code
written without eegkit, so they must not depend on eegkit's jit switch or options
(``EEGKIT_DISABLE_JIT`` turns eegkit's kernels into Python; the baselines stay compiled).
Their machine code is cached under eegkit's cache root, never inside the package.

Streaming:

* :class:`NumbaStages` — one compiled call per stage (band-pass, notch, CAR, band power),
  on a working buffer owned by the pipeline, output written to a preallocated vector;
* :class:`NumbaFused` — the whole chain in one compiled call.

Offline: :func:`offline_stages` (three whole-array passes, one thread) and
:func:`offline_fused_parallel` (both filters per channel in one pass, channels spread
over numba's threads, then a parallel CAR).
"""

from __future__ import annotations

import numba
import numpy as np

from eegkit import _numba

from . import workloads as wl

TILE = 16  # samples per tile of the biquad kernel

with _numba.cache_dir(_numba.cache_root() / "numba" / "bench"):
    _jit = numba.njit(nogil=True, cache=True)
    _pjit = numba.njit(nogil=True, cache=True, parallel=True)

    @_jit
    def sos_inplace(x, sos, z0, z1, tile):
        """Biquad cascade (direct form II transposed) over x, in place. The state halves
        z0, z1 are separate channel-minor (n_sections, n_channels) arrays (one shared
        array keeps LLVM from vectorising); samples go through a sample-major 16-sample
        tile so the innermost loop runs over channels and vectorises."""
        n_ch, n = x.shape
        n_sec = sos.shape[0]
        n_tile = tile.shape[0]
        for t0 in range(0, n, n_tile):
            m = min(n_tile, n - t0)
            for c in range(n_ch):
                for i in range(m):
                    tile[i, c] = x[c, t0 + i]
            for i in range(m):
                for s in range(n_sec):
                    b0 = sos[s, 0]
                    b1 = sos[s, 1]
                    b2 = sos[s, 2]
                    a1 = sos[s, 4]
                    a2 = sos[s, 5]
                    for c in range(n_ch):
                        v = tile[i, c]
                        y = b0 * v + z0[s, c]
                        z0[s, c] = b1 * v - a1 * y + z1[s, c]
                        z1[s, c] = b2 * v - a2 * y
                        tile[i, c] = y
            for c in range(n_ch):
                for i in range(m):
                    x[c, t0 + i] = tile[i, c]

    @_jit
    def car_inplace(x):
        """Subtract the mean over channels from every sample, in place."""
        n_ch, n = x.shape
        for t in range(n):
            total = 0.0
            for c in range(n_ch):
                total += x[c, t]
            mean = total / n_ch
            for c in range(n_ch):
                x[c, t] -= mean

    @_jit
    def _psd_band(ring, head, win, cos_t, sin_t, bins, gain, scale, acc, out):
        """Band power of every channel over the ring (sample-major) whose oldest sample
        is at head; the inner loop runs over channels, so it vectorises."""
        n, n_ch = ring.shape
        for c in range(n_ch):
            out[c] = 0.0
        re = acc[0]
        im = acc[1]
        for b in range(bins.shape[0]):
            k = bins[b]
            for c in range(n_ch):
                re[c] = 0.0
                im[c] = 0.0
            m = 0
            for i in range(n):
                j = head + i
                if j >= n:
                    j -= n
                w = win[i]
                cm = cos_t[m]
                sm = sin_t[m]
                for c in range(n_ch):
                    v = w * ring[j, c]
                    re[c] += v * cm
                    im[c] += v * sm
                m += k
                if m >= n:
                    m -= n
            for c in range(n_ch):
                out[c] += (re[c] * re[c] + im[c] * im[c]) * gain[b]
        for c in range(n_ch):
            out[c] *= scale

    @_jit
    def band_power(x, ring, count, win, cos_t, sin_t, bins, gain, scale, seg, out):
        """Push x into the ring; when the ring is full, write each channel's band power
        into out and return True (one window per chunk: 256 % chunk == 0)."""
        n_ch, n = x.shape
        size = ring.shape[0]
        first = count[0]
        for t in range(n):
            row = (first + t) % size
            for c in range(n_ch):
                ring[row, c] = x[c, t]
        count[0] = first + n
        if count[0] < size:
            return False
        _psd_band(ring, count[0] % size, win, cos_t, sin_t, bins, gain, scale, seg, out)
        return True

    @_jit
    def fused_chunk(x, buf, sos, z0, z1, tile, ring, count, win, cos_t, sin_t, bins, gain, scale, seg,
                    out):
        """Band-pass + notch (one cascade), CAR and band power of one chunk, in one call."""
        n_ch, n = x.shape
        for c in range(n_ch):
            for t in range(n):
                buf[c, t] = x[c, t]
        sos_inplace(buf, sos, z0, z1, tile)
        size = ring.shape[0]
        first = count[0]
        for t in range(n):
            total = 0.0
            for c in range(n_ch):
                total += buf[c, t]
            mean = total / n_ch
            slot = (first + t) % size
            for c in range(n_ch):
                buf[c, t] -= mean
                ring[slot, c] = buf[c, t]
        count[0] = first + n
        if count[0] < size:
            return False
        _psd_band(ring, count[0] % size, win, cos_t, sin_t, bins, gain, scale, seg, out)
        return True

    @_pjit
    def _filter_channels_parallel(x, out, sos):
        """Every channel through the cascade from zero state, channels in parallel."""
        n_ch, n = x.shape
        n_sec = sos.shape[0]
        for c in numba.prange(n_ch):
            z0 = np.zeros(n_sec)
            z1 = np.zeros(n_sec)
            for t in range(n):
                v = np.float64(x[c, t])
                for s in range(n_sec):
                    y = sos[s, 0] * v + z0[s]
                    z0[s] = sos[s, 1] * v - sos[s, 4] * y + z1[s]
                    z1[s] = sos[s, 2] * v - sos[s, 5] * y
                    v = y
                out[c, t] = v

    @_pjit
    def _car_parallel(x):
        """CAR in place, time split in blocks over the threads."""
        n_ch, n = x.shape
        block = 4096
        for b in numba.prange((n + block - 1) // block):
            acc = np.zeros(block)
            start = b * block
            stop = min(start + block, n)
            for c in range(n_ch):
                for t in range(start, stop):
                    acc[t - start] += x[c, t]
            for c in range(n_ch):
                for t in range(start, stop):
                    x[c, t] -= acc[t - start] / n_ch


class _BandState:
    """Ring buffer and tables of the band-power stage."""

    def __init__(self, n_channels, sfreq):
        tab = wl.band_tables(sfreq)
        self.ring = np.zeros((wl.WINDOW, n_channels))  # sample-major, as the plugin
        self.count = np.zeros(1, dtype=np.int64)
        self.args = (tab["win"], tab["cos"], tab["sin"], tab["bins"], tab["gain"],
                     float(tab["scale"]), np.zeros((2, n_channels)))
        self.out = np.zeros(n_channels)


class NumbaStages:
    """Streaming, one compiled call per stage on a buffer this pipeline owns."""

    name = "numba per-stage"

    def __init__(self, n_channels, sfreq, dtype, chunk):
        self.sos_bp, self.sos_notch = wl.design(sfreq)
        self.zi_bp = (np.zeros((self.sos_bp.shape[0], n_channels)),
                      np.zeros((self.sos_bp.shape[0], n_channels)))
        self.zi_notch = (np.zeros((self.sos_notch.shape[0], n_channels)),
                         np.zeros((self.sos_notch.shape[0], n_channels)))
        self.tile = np.empty((TILE, n_channels))
        self.buf = np.empty((n_channels, chunk), dtype=dtype)
        self.band = _BandState(n_channels, sfreq)

    def step(self, chunk):
        """One chunk; returns the band-power vector, or None before the window is full."""
        buf = self.buf
        np.copyto(buf, chunk)
        sos_inplace(buf, self.sos_bp, *self.zi_bp, self.tile)
        sos_inplace(buf, self.sos_notch, *self.zi_notch, self.tile)
        car_inplace(buf)
        b = self.band
        if band_power(buf, b.ring, b.count, *b.args, b.out):
            return b.out
        return None

    def car_output(self):
        """The last chunk after CAR."""
        return self.buf


class NumbaFused:
    """Streaming, the whole chain in one compiled call."""

    name = "numba fused"

    def __init__(self, n_channels, sfreq, dtype, chunk):
        bp, notch = wl.design(sfreq)
        self.sos = np.ascontiguousarray(np.concatenate([bp, notch]))
        self.zi = (np.zeros((self.sos.shape[0], n_channels)),
                   np.zeros((self.sos.shape[0], n_channels)))
        self.tile = np.empty((TILE, n_channels))
        self.buf = np.empty((n_channels, chunk), dtype=dtype)
        self.band = _BandState(n_channels, sfreq)

    def step(self, chunk):
        """One chunk; returns the band-power vector, or None before the window is full."""
        b = self.band
        if fused_chunk(chunk, self.buf, self.sos, *self.zi, self.tile, b.ring, b.count, *b.args, b.out):
            return b.out
        return None

    def car_output(self):
        """The last chunk after CAR."""
        return self.buf


def offline_stages(x, sfreq):
    """Band-pass, notch, CAR over a whole recording: copy, then three in-place passes."""
    bp, notch = wl.design(sfreq)
    out = x.copy()
    tile = np.empty((TILE, x.shape[0]))
    n = x.shape[0]
    sos_inplace(out, bp, np.zeros((bp.shape[0], n)), np.zeros((bp.shape[0], n)), tile)
    sos_inplace(out, notch, np.zeros((notch.shape[0], n)), np.zeros((notch.shape[0], n)), tile)
    car_inplace(out)
    return out


def offline_fused_parallel(x, sfreq):
    """Both filters per channel in one pass over numba's threads, then a parallel CAR."""
    bp, notch = wl.design(sfreq)
    out = np.empty_like(x)
    _filter_channels_parallel(x, out, np.ascontiguousarray(np.concatenate([bp, notch])))
    _car_parallel(out)
    return out


def warm_up(dtypes=("float64", "float32")) -> None:
    """Compile (or load from cache) every kernel for every dtype, outside any timing."""
    for dtype in dtypes:
        x = wl.EegGenerator(4).make(300, dtype)
        for cls in (NumbaStages, NumbaFused):
            impl = cls(4, wl.SFREQ, dtype, 300)
            impl.step(x)
        offline_stages(x, wl.SFREQ)
        offline_fused_parallel(x, wl.SFREQ)
