"""Source: where a pipeline's samples come from."""

from __future__ import annotations

import numpy as np

from .._errors import ParameterError, PipelineError
from .._info import StreamInfo


class Source:
    """Base class of every data source.

    A source has a fixed :attr:`info`, and hands out ``(n_channels, k)`` C-contiguous
    arrays of ``info.dtype`` through :meth:`read`.

    Attributes
    ----------
    info : StreamInfo
        Metadata of the samples it produces.
    n_samples : int or None
        Total length when known (files, arrays, fixed-duration synthetic), else None.
    live : bool
        True when samples arrive in real time by themselves (LSL, boards); a runner
        then never paces it. Replayable sources are False and are paced on request.
    ended : bool
        True once a finite source has handed out its last sample.
    """

    type_name = "?"
    info: StreamInfo
    n_samples: int | None = None
    live = False
    ended = False

    def read(self, n: int) -> np.ndarray:
        """Return up to ``n`` next samples as ``(n_channels, k)``; ``k == 0`` at the end
        (then :attr:`ended` is True) or when a live source has nothing yet."""
        raise NotImplementedError

    def reset(self) -> None:
        """Rewind to the first sample (replayable sources)."""
        raise NotImplementedError(f"source '{self.type_name}' cannot be rewound")

    def markers(self) -> list:
        """Drain markers seen so far: list of ``(sample_index, description)``."""
        return []

    def close(self) -> None:
        """Release files, sockets, devices."""

    def to_spec(self) -> dict:
        """``{"type": ..., "params": {...}}`` for pipeline JSON."""
        raise PipelineError(f"source '{self.type_name}' cannot be written to pipeline JSON")

    def read_all(self) -> np.ndarray:
        """Read every remaining sample (finite sources only)."""
        if self.n_samples is None:
            raise ParameterError(f"source '{self.type_name}' is unbounded; give a duration")
        parts = []
        while True:
            block = self.read(65536)
            if block.shape[1] == 0 and self.ended:
                break
            parts.append(block)
        if not parts:
            return np.zeros((self.info.n_channels, 0), dtype=self.info.dtype)
        return np.ascontiguousarray(np.concatenate(parts, axis=1))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ArraySource(Source):
    """A numpy array, replayed as a finite stream.

    Parameters
    ----------
    data : array, shape (n_channels, n_samples)
    sfreq : float
    ch_names : list of str, optional
        Default ``ch0, ch1, ...``.
    """

    type_name = "array"

    def __init__(self, data, sfreq, ch_names=None, ch_types=None, units=None, dtype=None):
        data = np.asarray(data)
        if data.ndim != 2:
            raise ParameterError(
                f"data must be 2-D (n_channels, n_samples), got shape {data.shape}")
        if not np.issubdtype(data.dtype, np.floating) and not np.issubdtype(data.dtype, np.integer):
            raise ParameterError(f"data must be numeric, got dtype {data.dtype}")
        dtype = np.dtype(dtype or (data.dtype if data.dtype in (np.float32, np.float64) else np.float64))
        if ch_names is None:
            ch_names = [f"ch{i}" for i in range(data.shape[0])]
        if len(ch_names) != data.shape[0]:
            raise ParameterError(
                f"ch_names has {len(ch_names)} names but data has {data.shape[0]} channels (rows)")
        self.info = StreamInfo(sfreq=sfreq, ch_names=tuple(ch_names), ch_types=ch_types,
                               units=units, dtype=dtype.name)
        self._data = np.ascontiguousarray(data, dtype=dtype)
        self.n_samples = data.shape[1]
        self._pos = 0
        self.ended = self.n_samples == 0

    def read(self, n):
        stop = min(self._pos + int(n), self.n_samples)
        block = self._data[:, self._pos:stop]
        self._pos = stop
        self.ended = stop >= self.n_samples
        return np.ascontiguousarray(block)

    def reset(self):
        self._pos = 0
        self.ended = self.n_samples == 0
