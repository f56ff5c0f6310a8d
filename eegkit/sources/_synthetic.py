"""SyntheticSource: deterministic, realistic-looking EEG without hardware.

The signal is built in fixed blocks (about one second each). Block ``b`` draws its
random numbers from ``np.random.default_rng([seed, 1, b])`` and continues the filter
states left by block ``b - 1``, so the samples never depend on how they are read.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from numbers import Real

import numpy as np
from scipy import signal

from .._check import ensure_int, short_repr
from .._errors import ParameterError
from .._info import DTYPES, StreamInfo
from ._base import Source

# Channels in the order they are added as n_channels grows, chosen so that small
# counts spread over the head: 2 = Fz + Oz, 4 = midline, 8 = + C3/C4/O1/O2, 20 = 10-20 + Oz,
# 64 = the BioSemi-64 10-10 set, then the rest of the 10-10 system.
CHANNEL_PRIORITY = (
    "Fz", "Oz", "Cz", "Pz", "C3", "C4", "O1", "O2",
    "Fp1", "Fp2", "F3", "F4", "P3", "P4", "F7", "F8", "T7", "T8", "P7", "P8",
    "AF3", "AF4", "FC1", "FC2", "FC5", "FC6", "CP1", "CP2", "CP5", "CP6", "PO3", "PO4",
    "Fpz", "AFz", "FCz", "CPz", "POz", "Iz", "FC3", "FC4", "CP3", "CP4",
    "AF7", "AF8", "F1", "F2", "F5", "F6", "FT7", "FT8", "C1", "C2", "C5", "C6",
    "TP7", "TP8", "P1", "P2", "P5", "P6", "PO7", "PO8", "P9", "P10",
    "TP9", "TP10", "FT9", "FT10", "F9", "F10", "T9", "T10", "PO9", "PO10", "O9", "O10",
    "AF5", "AF6", "AF1", "AF2", "PO5", "PO6", "PO1", "PO2", "AF9", "AF10",
)
# 10-10 name prefix -> row from front (0) to back (9), in steps of about 10 % nasion-inion
_ROWS = {"Fp": 0, "AF": 1, "F": 2, "FC": 3, "FT": 3, "C": 4, "T": 4,
         "CP": 5, "TP": 5, "P": 6, "PO": 7, "O": 8, "I": 9}

# Amplitudes in volts; the shapes are typical of resting scalp EEG.
BACKGROUND_STD = 10e-6       # 1/f background, per channel
SPATIAL_SHARE = 0.5          # share of background variance common to neighbours
SPATIAL_WIDTH = 1.5          # grid steps over which neighbours correlate
ALPHA_AMP = 20e-6            # alpha amplitude where the weight is 1 (occipital)
ALPHA_ENV_CORNER = 0.25      # Hz: how fast alpha waxes and wanes
ALPHA_FREQ_JITTER = 0.15     # Hz std of the slow wander of the alpha frequency
ALPHA_FREQ_CORNER = 0.1      # Hz: how fast that wander goes
LINE_AMP = (1.5e-6, 3e-6)    # per-channel range
DRIFT_STD, DRIFT_CORNER = 15e-6, 0.05
BLINK_AMP = (100e-6, 200e-6)  # at Fp1/Fp2
BLINK_DURATION = (0.25, 0.35)  # seconds
BLINK_MIN_INTERVAL = 0.5
MAX_BLOCK = 4096
MAX_CHANNELS = 1024  # the spatial mixing is an n x n Cholesky factor: keep it bounded
MAX_SFREQ = 100_000.0  # above any EEG amplifier; sinks allocate per second of data

# Pink-noise filter (-10 dB/decade) of J. O. Smith, "Spectral Audio Signal Processing".
_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])


@functools.lru_cache(maxsize=1)
def _pink_gain() -> float:
    """RMS gain of the pink filter for unit white noise."""
    impulse = np.zeros(40000)
    impulse[0] = 1.0
    return float(np.sqrt(np.sum(signal.lfilter(_PINK_B, _PINK_A, impulse) ** 2)))


def channel_names(n_channels: int) -> tuple:
    """Standard 10-10 names for ``n_channels`` (front to back, left to right), or
    ``EEG001, ...`` when there are more channels than names."""
    if n_channels > len(CHANNEL_PRIORITY):
        return tuple(f"EEG{i + 1:03d}" for i in range(n_channels))
    return tuple(sorted(CHANNEL_PRIORITY[:n_channels], key=lambda c: _grid_position(c)[::-1]))


def _grid_position(name: str) -> tuple:
    """(lateral, row) of a 10-10 name on a flat grid: left negative, front row 0."""
    prefix = name.rstrip("0123456789z")
    suffix = name[len(prefix):]
    if suffix == "z":
        lateral = 0.0
    else:
        k = int(suffix)
        lateral = -(k + 1) / 2 if k % 2 else k / 2
    return lateral, float(_ROWS[prefix])


def _positions(names: tuple) -> np.ndarray:
    """(n, 2) grid positions; generic names get a spread-out pseudo layout."""
    if names and names[0].startswith("EEG"):
        i = np.arange(len(names))
        return np.column_stack([5 * np.sin(i * 2.399963), 9 * i / max(len(names) - 1, 1)])
    return np.array([_grid_position(c) for c in names])


def _smoother(corner: float, sfreq: float) -> tuple:
    """(b, a) of a double-pole low-pass whose output has unit variance for unit white
    input; two poles keep the modulations it drives smooth at the sample scale."""
    p = math.exp(-2 * math.pi * corner / sfreq)
    return np.array([math.sqrt((1 - p * p) ** 3 / (1 + p * p))]), np.array([1.0, -2 * p, p * p])


def _smoother_zi(a, rng, shape=()) -> np.ndarray:
    """Filter state of :func:`_smoother` drawn from its stationary distribution."""
    p = -a[1] / 2
    rho = 2 * p / (1 + p * p)  # lag-1 autocorrelation of the output
    older = rng.standard_normal(shape)
    last = rho * older + math.sqrt(1 - rho * rho) * rng.standard_normal(shape)
    return np.stack([-a[1] * last - a[2] * older, -a[2] * last], axis=-1)


class SyntheticSource(Source):
    """Synthetic EEG in volts: 1/f background, alpha, line noise, drift, eye blinks.

    Deterministic: the same parameters give the same samples whatever the read sizes,
    and :meth:`reset` replays them.

    Parameters
    ----------
    n_channels : int
        Number of channels, at most 1024. Up to ``len(CHANNEL_PRIORITY)`` (86) they get
        standard 10-10 names (8 gives Fz, C3, Cz, C4, Pz, O1, Oz, O2), beyond that EEG001, ...
    sfreq : float
        Sampling rate in Hz, at most 100 kHz.
    seed : int
        Seed of every random choice (non-negative).
    duration : float or None
        Length in seconds; None (default) for an endless stream.
    line_freq : float
        Mains frequency in Hz (50 or 60); 0 disables line noise. A frequency at or
        above Nyquist (``sfreq / 2``) is left out, as an amplifier's anti-aliasing
        filter would, so the defaults work at any sampling rate.
    alpha_freq : float
        Centre of the alpha rhythm in Hz, strongest over occipital and parietal
        channels; 0 disables it.
    blink_interval : float
        Mean seconds between eye blinks (large frontal deflections, ~300 ms);
        0 disables blinks. Blink onsets are reported by :meth:`markers`.
    dtype : {"float64", "float32"}
        Sample type of the blocks.
    """

    type_name = "synthetic"

    def __init__(self, n_channels=8, sfreq=250.0, seed=0, duration=None, line_freq=50.0,
                 alpha_freq=10.0, blink_interval=8.0, dtype="float64"):
        self.n_channels = _check_int("n_channels", n_channels, 1,
                                     f"an integer from 1 to {MAX_CHANNELS}")
        if self.n_channels > MAX_CHANNELS:
            raise ParameterError(_invalid("n_channels", f"an integer from 1 to {MAX_CHANNELS}",
                                          n_channels))
        self.sfreq = _check_real("sfreq", sfreq, f"a number of Hz above 0 and at most {MAX_SFREQ:g}",
                                 lambda v: 0 < v <= MAX_SFREQ)
        self.seed = _check_int("seed", seed, 0, "a non-negative integer")
        nyquist = self.sfreq / 2
        if duration is not None:
            duration = _check_real("duration", duration, "None or a positive number of seconds",
                                   lambda v: v > 0)
        self.duration = duration
        # mains at or above Nyquist is accepted so defaults work at any rate (sfreq=100):
        # like a real amplifier's anti-aliasing filter, the source then leaves it out
        self.line_freq = _check_real("line_freq", line_freq, "0 (off) or a positive frequency in Hz",
                                     lambda v: v >= 0)
        self.alpha_freq = _check_real(
            "alpha_freq", alpha_freq,
            f"0 (off) or a frequency above 0 and below Nyquist ({nyquist:g} Hz at sfreq={self.sfreq:g})",
            lambda v: v == 0 or 0 < v < nyquist)
        self.blink_interval = _check_real(
            "blink_interval", blink_interval,
            f"0 (off) or at least {BLINK_MIN_INTERVAL} seconds",
            lambda v: v == 0 or v >= BLINK_MIN_INTERVAL)
        dtype_name = str(getattr(dtype, "__name__", dtype))
        try:
            dtype_name = np.dtype(dtype_name).name
        except TypeError:
            pass
        if dtype_name not in DTYPES:
            raise ParameterError(_invalid("dtype", "'float64' or 'float32'", dtype))
        self.dtype = dtype_name

        self.info = StreamInfo(sfreq=self.sfreq, ch_names=channel_names(self.n_channels),
                               ch_types="eeg", units="V", dtype=self.dtype)
        if duration is not None and not duration * self.sfreq < 2 ** 62:
            raise ParameterError(_invalid("duration", f"at most {2 ** 62 / self.sfreq:g} s at "
                                          f"sfreq={self.sfreq:g}", duration))
        self.n_samples = None if duration is None else int(round(duration * self.sfreq))
        self.block_size = int(min(max(round(self.sfreq), 16), MAX_BLOCK))
        self._setup_static()
        self.reset()

    # ---- fixed per-source quantities -------------------------------------------------
    def _setup_static(self):
        """Channel weights, gains and phases, drawn from the seed alone."""
        rng = np.random.default_rng([self.seed, 0, 0])
        n = self.n_channels
        pos = _positions(self.info.ch_names)
        lateral, row = pos[:, 0], pos[:, 1]
        dist2 = np.sum((pos[:, None, :] - pos[None, :, :]) ** 2, axis=-1)
        cov = (1 - SPATIAL_SHARE) * np.eye(n) + SPATIAL_SHARE * np.exp(-dist2 / (2 * SPATIAL_WIDTH ** 2))
        self._mix = np.linalg.cholesky(cov)
        gain = rng.uniform(0.8, 1.2, n)
        self._bg_scale = (BACKGROUND_STD / _pink_gain() * gain)[:, None]
        # alpha is posterior: a sigmoid from ~0.1 frontally to ~1 occipitally
        self._alpha_w = ALPHA_AMP * (0.1 + 0.9 / (1 + np.exp(-(row - 5.5) / 0.8)))
        phase = rng.uniform(-0.3, 0.3, n)
        self._alpha_cos, self._alpha_sin = self._alpha_w * np.cos(phase), self._alpha_w * np.sin(phase)
        line_amp = rng.uniform(*LINE_AMP, n)
        phase = rng.uniform(0, 2 * np.pi, n)
        self._line_cos, self._line_sin = line_amp * np.cos(phase), line_amp * np.sin(phase)
        # blinks fall off steeply from the eyes: ~1 at Fp, 0.2 at F, < 0.01 at P/O
        self._blink_w = np.minimum(1.0, np.exp(-0.8 * row)) * np.exp(-lateral ** 2 / 50)
        self._env_ba = _smoother(ALPHA_ENV_CORNER, self.sfreq)
        self._freq_ba = _smoother(ALPHA_FREQ_CORNER, self.sfreq)
        self._drift_ba = _smoother(DRIFT_CORNER, self.sfreq)

    def _initial_state(self):
        """Filter states at sample 0, drawn from their stationary distributions."""
        rng = np.random.default_rng([self.seed, 0, 1])
        n = self.n_channels
        # run the pink filter over a few thousand samples so it starts in steady state
        warm = self._mix @ rng.standard_normal((n, 8192))
        zi = np.zeros((n, len(_PINK_A) - 1))
        _, self._pink_zi = signal.lfilter(_PINK_B, _PINK_A, warm, axis=1, zi=zi)
        self._env_zi = _smoother_zi(self._env_ba[1], rng)
        self._freq_zi = _smoother_zi(self._freq_ba[1], rng)
        self._drift_zi = _smoother_zi(self._drift_ba[1], rng, (n,))
        self._alpha_phase = rng.uniform(0, 2 * np.pi)
        self._next_blink = (self.blink_interval * rng.uniform(0.25, 1.0)) if self.blink_interval else math.inf
        self._blinks = []          # (onset sample, amplitude, n samples) still running

    # ---- Source API ------------------------------------------------------------------
    def reset(self):
        """Rewind to sample 0; the same samples follow again."""
        self._initial_state()
        self._block_index = 0
        self._block = np.zeros((self.n_channels, 0), dtype=self.dtype)
        self._block_pos = 0
        self._pos = 0
        self._pending = deque()    # blink onsets generated but not yet handed out
        self._ready = []           # blink onsets handed out, not yet drained by markers()
        self.ended = self.n_samples == 0

    def read(self, n):
        """Return the next ``min(n, remaining)`` samples as ``(n_channels, k)``."""
        n = _check_int("n", n, 0, "a non-negative integer", where="SyntheticSource.read")
        if self.n_samples is not None:
            n = min(n, self.n_samples - self._pos)
        out = np.empty((self.n_channels, n), dtype=self.dtype)
        filled = 0
        while filled < n:
            if self._block_pos >= self._block.shape[1]:
                self._block = self._make_block().astype(self.dtype, copy=False)
                self._block_pos = 0
            k = min(n - filled, self._block.shape[1] - self._block_pos)
            out[:, filled:filled + k] = self._block[:, self._block_pos:self._block_pos + k]
            filled += k
            self._block_pos += k
        self._pos += n
        while self._pending and self._pending[0] < self._pos:
            self._ready.append((self._pending.popleft(), "blink"))
        self.ended = self.n_samples is not None and self._pos >= self.n_samples
        return out

    def markers(self):
        """Blink onsets handed out since the last call, as ``[(sample_index, "blink"), ...]``."""
        ready, self._ready = self._ready, []
        return ready

    def to_spec(self):
        """``{"type": "synthetic", "params": {...}}``; ``make_source`` rebuilds this source."""
        return {"type": self.type_name, "params": {
            "n_channels": self.n_channels, "sfreq": self.sfreq, "seed": self.seed,
            "duration": self.duration, "line_freq": self.line_freq,
            "alpha_freq": self.alpha_freq, "blink_interval": self.blink_interval,
            "dtype": self.dtype}}

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.to_spec()["params"].items())
        return f"SyntheticSource({params})"

    # ---- one block -------------------------------------------------------------------
    def _make_block(self) -> np.ndarray:
        """Generate the next fixed block (float64), advancing every state."""
        size, fs = self.block_size, self.sfreq
        start = self._block_index * size
        rng = np.random.default_rng([self.seed, 1, self._block_index])
        self._block_index += 1
        # draw order is fixed: adding or removing a component never changes the others
        white = rng.standard_normal((self.n_channels, size))
        env_noise = rng.standard_normal(size)
        freq_noise = rng.standard_normal(size)
        drift_noise = rng.standard_normal((self.n_channels, size))

        pink, self._pink_zi = signal.lfilter(_PINK_B, _PINK_A, self._mix @ white, axis=1, zi=self._pink_zi)
        block = pink
        block *= self._bg_scale
        drift, self._drift_zi = signal.lfilter(*self._drift_ba, drift_noise, axis=1, zi=self._drift_zi)
        block += DRIFT_STD * drift

        env, self._env_zi = signal.lfilter(*self._env_ba, env_noise, zi=self._env_zi)
        wander, self._freq_zi = signal.lfilter(*self._freq_ba, freq_noise, zi=self._freq_zi)
        if self.alpha_freq:
            # log-normal envelope with mean 1; phase integrates the wandering frequency
            env = np.exp(0.5 * env - 0.125)
            phase = self._alpha_phase + np.cumsum(2 * np.pi / fs * (self.alpha_freq + ALPHA_FREQ_JITTER * wander))
            self._alpha_phase = float(phase[-1] % (2 * np.pi))
            block += np.outer(self._alpha_cos, env * np.sin(phase))
            block += np.outer(self._alpha_sin, env * np.cos(phase))
        if 0 < self.line_freq < fs / 2:
            # phase from the absolute sample index, kept in [0, 1) cycles for precision
            cycles = np.mod(self.line_freq / fs * np.arange(start, start + size, dtype=np.float64), 1.0)
            block += np.outer(self._line_cos, np.sin(2 * np.pi * cycles))
            block += np.outer(self._line_sin, np.cos(2 * np.pi * cycles))
        if self.blink_interval:
            self._add_blinks(block, start, rng)
        return block

    def _add_blinks(self, block, start, rng):
        """Schedule blinks starting in this block and add every blink overlapping it."""
        size, fs = block.shape[1], self.sfreq
        stop = start + size
        while self._next_blink * fs < stop - 0.5:
            onset = int(round(self._next_blink * fs))
            length = max(int(round(rng.uniform(*BLINK_DURATION) * fs)), 2)
            self._blinks.append((onset, rng.uniform(*BLINK_AMP), length))
            self._pending.append(onset)
            self._next_blink += self.blink_interval * rng.uniform(0.5, 1.5)
        running = []
        for onset, amp, length in self._blinks:
            lo, hi = max(onset, start), min(onset + length, stop)
            if hi > lo:
                block[:, lo - start:hi - start] += np.outer(self._blink_w, amp * _blink_shape(length)[lo - onset:hi - onset])
            if onset + length > stop:
                running.append((onset, amp, length))
        self._blinks = running


def _blink_shape(length: int) -> np.ndarray:
    """Asymmetric bump of peak 1: a fast rise over a third of the blink, slower fall."""
    t = np.arange(length) / (length - 1)
    rise = 0.35
    return np.where(t < rise, 0.5 - 0.5 * np.cos(np.pi * t / rise),
                    0.5 + 0.5 * np.cos(np.pi * (t - rise) / (1 - rise)))


def _invalid(name, expected, got, where="SyntheticSource"):
    """Error sentence naming the parameter, what was expected and what was received."""
    return (f"{where}: invalid value for the '{name}' parameter: expected {expected}, "
            f"got {short_repr(got)} ({type(got).__name__})")


def _check_int(name, value, minimum, expected, where="SyntheticSource"):
    """Return ``value`` as int if it is an integer >= minimum, else raise in this module's wording."""
    try:
        return ensure_int(value, name, min=minimum)
    except ParameterError:  # same check, worded like the real-valued parameters below
        raise ParameterError(_invalid(name, expected, value, where)) from None


def _check_real(name, value, expected, ok):
    """Return ``value`` as a finite float for which ``ok`` holds, else raise."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or not ok(float(value)):
        raise ParameterError(_invalid(name, expected, value))
    return float(value)
