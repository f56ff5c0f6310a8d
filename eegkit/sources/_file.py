"""FileSource: any recording MNE reads (EDF, BDF, FIF, BrainVision, EEGLAB, GDF)."""

from __future__ import annotations

import os
import time

import numpy as np

from .._errors import EegkitError, ParameterError, SourceError
from .._info import StreamInfo
from .._optional import require
from ._base import Source

_UNITS = {"FIFF_UNIT_V": "V", "FIFF_UNIT_T": "T", "FIFF_UNIT_T_M": "T/m", "FIFF_UNIT_MOL": "M",
          "FIFF_UNIT_CEL": "C", "FIFF_UNIT_S": "S", "FIFF_UNIT_AM": "Am", "FIFF_UNIT_NONE": "NA"}


class FileSource(Source):
    """A recorded file, read through ``mne.io.read_raw`` in chunks.

    Parameters
    ----------
    path : str or path-like
        Any format :func:`mne.io.read_raw` reads: EDF, BDF, FIF, BrainVision (``.vhdr``),
        EEGLAB (``.set``), GDF, ...
    preload : bool
        Load the whole recording into memory at open. The default reads each chunk
        from disk with ``raw.get_data(start, stop)``, so big files are never loaded whole.
    channels : None, str or list of str
        ``None``: every channel except stimulus channels (their events come out as
        :meth:`markers`). A string is an MNE pick: a channel type (``"eeg"``), ``"data"``
        or ``"all"``. A list picks channels by name, in that order.
    replay_speed : float, optional
        ``None`` (default): samples are handed out as fast as they are read and
        :attr:`live` is False (a runner paces the source when asked). A number makes
        the source pace itself against the wall clock (1.0 = real time, 2.0 = twice
        as fast): :meth:`read` never blocks but only returns the samples due by now,
        and :attr:`live` is True.

    Attributes
    ----------
    raw : mne.io.Raw
        The opened recording (channels already picked).
    mixed_rates : bool
        True for EDF/BDF/GDF files whose signals have different sampling rates. MNE
        upsamples the slower ones to the fastest rate with an FFT over whatever span
        it reads, so chunk-wise reads would not join up exactly: such files are
        loaded whole (as with ``preload=True``).

    Notes
    -----
    Markers are annotations (description as written in the file) and, when the file
    has stimulus channels, the events :func:`mne.find_events` finds on them
    (description: the event value, prefixed by ``"CHANNEL="`` when there are several
    stimulus channels). Each marker is released by :meth:`markers` once :meth:`read`
    has passed its sample.
    """

    type_name = "file"

    def __init__(self, path, preload=False, channels=None, replay_speed=None):
        mne = require("mne", "io", "FileSource")
        self.path = os.fspath(path)
        self.preload = bool(preload)
        self.channels = list(channels) if isinstance(channels, (list, tuple)) else channels
        if replay_speed is not None and not float(replay_speed) > 0:
            raise ParameterError(f"FileSource: replay_speed must be a positive number or None, "
                                 f"got {replay_speed!r}")
        self.replay_speed = None if replay_speed is None else float(replay_speed)
        self.live = self.replay_speed is not None
        if not os.path.exists(self.path):
            raise SourceError(f"FileSource: file not found: {self.path}")
        try:
            raw = mne.io.read_raw(self.path, preload=self.preload, verbose="warning")
        except Exception as exc:  # MNE raises many types for unreadable files
            raise SourceError(f"FileSource: MNE could not read {self.path}: "
                              f"{type(exc).__name__}: {exc}") from exc
        try:
            self._describe(mne, raw)
        except EegkitError:
            raise
        except Exception as exc:  # a header MNE opened but cannot make sense of
            raise SourceError(f"FileSource: {self.path} has a header MNE cannot interpret "
                              f"(corrupt channel kinds, coil types or names?): "
                              f"{type(exc).__name__}: {exc}") from exc
        self.n_samples = int(self.raw.n_times)
        self._pos = 0
        self._next_marker = 0
        self._released = 0
        self._t0 = None
        self.ended = self.n_samples == 0

    def _describe(self, mne, raw):
        """Markers, channel selection and StreamInfo of an opened recording."""
        all_markers = _annotation_markers(raw) + _stim_markers(mne, raw, self.path)
        all_markers.sort(key=lambda m: m[0])
        self._markers = all_markers
        self.raw = _pick(raw, self.channels, self.path)
        self.mixed_rates = _mixed_rates(raw)
        if self.mixed_rates and not self.preload:
            # MNE resamples slower channels over the whole span it reads, so chunks
            # would not join up exactly; only a whole-file read is exact
            self.raw.load_data(verbose="error")
        info = self.raw.info
        try:
            self.info = StreamInfo(
                sfreq=info["sfreq"], ch_names=tuple(self.raw.ch_names),
                ch_types=tuple(self.raw.get_channel_types()),
                units=tuple(_unit_name(mne, ch["unit"]) for ch in info["chs"]), dtype="float64")
        except ParameterError as exc:  # the file's channels, not the caller's parameters
            raise SourceError(f"FileSource: {self.path}: {exc}") from None

    def read(self, n):
        n = int(n)
        if self.replay_speed is not None:
            n = min(n, self._due())
        stop = min(self._pos + max(n, 0), self.n_samples)
        if stop <= self._pos:
            self.ended = self._pos >= self.n_samples
            return np.zeros((self.info.n_channels, 0))
        if self.raw is None:
            raise SourceError(f"FileSource: {self.path} was closed; open a new FileSource")
        try:
            block = self.raw.get_data(start=self._pos, stop=stop)
        except Exception as exc:
            raise SourceError(f"FileSource: reading samples {self._pos}..{stop} of {self.path} "
                              f"failed: {type(exc).__name__}: {exc}") from exc
        self._pos = stop
        self.ended = stop >= self.n_samples
        return np.ascontiguousarray(block, dtype=np.float64)

    def _due(self):
        """Samples the wall clock allows now, when pacing itself."""
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        return int((now - self._t0) * self.info.sfreq * self.replay_speed) - self._pos

    def markers(self):
        out = []
        # a marker at n_samples (e.g. "Recording ends") is released at the end
        limit = self._pos + 1 if self.ended else self._pos
        while self._next_marker < len(self._markers) and self._markers[self._next_marker][0] < limit:
            out.append(self._markers[self._next_marker])
            self._next_marker += 1
        return out

    def reset(self):
        self._pos = 0
        self._next_marker = 0
        self._t0 = None
        self.ended = self.n_samples == 0

    def close(self):
        # MNE opens the file per get_data call: dropping raw frees preloaded data
        self.raw = None

    def to_spec(self):
        params = {"path": self.path}
        if self.preload:
            params["preload"] = True
        if self.channels is not None:
            params["channels"] = self.channels
        if self.replay_speed is not None:
            params["replay_speed"] = self.replay_speed
        return {"type": "file", "params": params}

    def __repr__(self):
        return (f"FileSource({self.path!r}, {self.info.n_channels} channels, "
                f"{self.info.sfreq:g} Hz, {self.n_samples} samples)")


def _pick(raw, channels, path):
    """Pick channels on ``raw`` (in place), with errors naming what exists."""
    if channels is None:
        types = raw.get_channel_types()
        keep = [name for name, t in zip(raw.ch_names, types) if t != "stim"]
        if not keep:
            raise SourceError(f"FileSource: {path} has only stimulus channels")
        return raw.pick(keep)
    if isinstance(channels, str):
        try:
            return raw.pick(channels)
        except ValueError as exc:
            raise ParameterError(
                f"FileSource: channels={channels!r} picks nothing in {path} (channel types "
                f"there: {sorted(set(raw.get_channel_types()))}): {exc}") from None
    missing = [c for c in channels if c not in raw.ch_names]
    if missing:
        raise ParameterError(f"FileSource: channels {missing} are not in {path}; "
                             f"available are {raw.ch_names}")
    return raw.pick(list(channels))


def _mixed_rates(raw):
    """True when an EDF-family file holds signals at different rates."""
    # only MNE's EDF/BDF/GDF reader keeps per-signal sample counts (private, read defensively)
    extras = getattr(raw, "_raw_extras", None) or [{}]
    n_samps = extras[0].get("n_samps") if isinstance(extras[0], dict) else None
    if n_samps is None:
        return False
    tal = set(np.atleast_1d(extras[0].get("tal_idx", [])).tolist())
    rates = {int(n) for i, n in enumerate(np.atleast_1d(n_samps)) if i not in tal}
    return len(rates) > 1


def _annotation_markers(raw):
    """Annotations as ``(sample_index, description)`` inside the recording."""
    ann = raw.annotations
    if len(ann) == 0:
        return []
    idx = raw.time_as_index(ann.onset, use_rounding=True, origin=ann.orig_time)
    return [(int(i), str(d)) for i, d in zip(idx, ann.description) if 0 <= i <= raw.n_times]


def _stim_markers(mne, raw, path):
    """Events found on stimulus channels as ``(sample_index, value)`` markers."""
    stim = [n for n, t in zip(raw.ch_names, raw.get_channel_types()) if t == "stim"]
    out = []
    for name in stim:
        try:
            events = mne.find_events(raw, stim_channel=name, shortest_event=1,
                                     initial_event=True, verbose="error")
        except Exception as exc:
            raise SourceError(f"FileSource: finding events on stimulus channel {name!r} of "
                              f"{path} failed: {type(exc).__name__}: {exc}") from exc
        prefix = f"{name}=" if len(stim) > 1 else ""
        out += [(int(s) - raw.first_samp, f"{prefix}{int(v)}") for s, _, v in events]
    return out


def _unit_name(mne, code):
    """Human unit of a FIFF unit code ("V", "T", ...; "NA" when unknown)."""
    FIFF = mne.io.constants.FIFF
    for key, name in _UNITS.items():
        if code == getattr(FIFF, key, None):
            return name
    return "NA"
