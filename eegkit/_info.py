"""StreamInfo: immutable metadata of a stream."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ._errors import ParameterError

KINDS = ("timeseries", "spectrum", "features")
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class StreamInfo:
    """Immutable metadata of a stream of ``(n_channels, n_samples)`` blocks.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the blocks' last axis, in Hz. For spectrum and feature
        streams this is the rate of windows (``input sfreq / step``).
    ch_names : tuple of str
        One name per row of a block.
    ch_types : tuple of str, optional
        MNE channel types, one per row (default ``"eeg"``).
    units : tuple of str, optional
        Physical unit per row (default ``"V"``, as in MNE).
    dtype : {"float64", "float32"}
        Sample type of blocks.
    kind : {"timeseries", "spectrum", "features"}
        What the rows are. For ``spectrum`` and ``features`` the rows are
        ``(channel, axis item)`` pairs, channel-major: row ``c * len(axis) + k``.
    axis : tuple of str
        Labels of the second axis of spectrum/feature streams (frequencies, bands).
    axis_values : tuple of float
        Numeric values of ``axis`` (bin frequency in Hz, or band centre).
    """

    sfreq: float
    ch_names: tuple
    ch_types: tuple = None
    units: tuple = None
    dtype: str = "float64"
    kind: str = "timeseries"
    axis: tuple = ()
    axis_values: tuple = ()

    def __post_init__(self):
        set_ = object.__setattr__
        names = tuple(str(c) for c in self.ch_names)
        set_(self, "ch_names", names)
        n = len(names)
        set_(self, "ch_types", _per_channel(self.ch_types, "eeg", n, "ch_types"))
        set_(self, "units", _per_channel(self.units, "V", n, "units"))
        try:
            sfreq = float(self.sfreq)
        except (TypeError, ValueError):
            raise ParameterError(f"StreamInfo: sfreq must be a positive number, got {self.sfreq!r}") from None
        if not sfreq > 0 or not np.isfinite(sfreq):
            raise ParameterError(f"StreamInfo: sfreq must be a positive number, got {self.sfreq!r}")
        set_(self, "sfreq", sfreq)
        dtype = np.dtype(self.dtype).name
        if dtype not in DTYPES:
            raise ParameterError(f"StreamInfo: dtype must be one of {DTYPES}, got {self.dtype!r}")
        set_(self, "dtype", dtype)
        if self.kind not in KINDS:
            raise ParameterError(f"StreamInfo: kind must be one of {KINDS}, got {self.kind!r}")
        set_(self, "axis", tuple(str(a) for a in self.axis))
        set_(self, "axis_values", tuple(float(v) for v in self.axis_values))
        if len(names) != len(set(names)):
            dup = sorted({c for c in names if names.count(c) > 1})
            raise ParameterError(f"StreamInfo: channel names must be unique, got duplicates {dup}")

    @property
    def n_channels(self) -> int:
        """Number of rows of a block."""
        return len(self.ch_names)

    def replace(self, **changes) -> "StreamInfo":
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def expand(self, kind, axis, axis_values, sfreq, unit=None) -> "StreamInfo":
        """Info of a stream whose rows are every (channel, axis item) pair of this one.

        Used by spectrum and feature stages: ``Fz`` with axis ``("alpha", "beta")``
        gives rows ``Fz:alpha, Fz:beta``.
        """
        axis = tuple(str(a) for a in axis)
        names = tuple(f"{c}:{a}" for c in self.ch_names for a in axis)
        types = tuple(t for t in self.ch_types for _ in axis)
        units = (unit,) * len(names) if unit else tuple(u for u in self.units for _ in axis)
        return StreamInfo(sfreq=sfreq, ch_names=names, ch_types=types, units=units,
                          dtype=self.dtype, kind=kind, axis=axis, axis_values=tuple(axis_values))

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "StreamInfo":
        """Inverse of :meth:`to_dict`."""
        return cls(**d)

    def same_layout(self, other: "StreamInfo") -> bool:
        """True when blocks of both streams have the same rows, rate and dtype."""
        return (self.sfreq, self.ch_names, self.dtype) == (other.sfreq, other.ch_names, other.dtype)


def _per_channel(value, default, n, field):
    if value is None:
        return (default,) * n
    if isinstance(value, str):
        return (value,) * n
    value = tuple(str(v) for v in value)
    if len(value) != n:
        raise ParameterError(f"StreamInfo: {field} needs one entry per channel ({n}), got {len(value)}")
    return value
