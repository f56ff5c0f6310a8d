"""Sinks: where a stage's output goes besides the notebook (files, LSL, tables).

In pipeline JSON: ``{"type": NAME, "input": STAGE_ID, "params": {...}}``.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np

from .._check import did_you_mean
from .._errors import EegkitError, ParameterError, PipelineError
from .._info import StreamInfo

# type name -> "module:Class"; modules import lazily so optional extras stay optional.
SINK_TYPES = {
    "npz": "eegkit.sinks:NpzSink",
    "record": "eegkit.sinks._record:RecordSink",
    "lsl": "eegkit.sinks._lsl:LSLSink",
    "features": "eegkit.sinks._features:FeatureSink",
}


class Sink:
    """Base class of sinks. A sink is opened once per run with the stream info of
    its input, gets every block in order, and is closed at the end (also on error)."""

    type_name = "?"
    #: True for sinks that must never skip data (a recording): a background run then
    #: stops with an error instead of dropping a chunk (see eegkit.runtime._runner)
    lossless = False

    def open(self, info: StreamInfo) -> None:
        """Start a run of blocks described by ``info``."""

    def write(self, block: np.ndarray, first_sample: int) -> None:
        """Take one ``(n_channels, n)`` block whose first sample has index ``first_sample``."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release."""


class NpzSink(Sink):
    """Collect a stream in memory and write it as ``.npz`` (``data``, ``sfreq``,
    ``ch_names``, ``kind``) on close.

    Parameters
    ----------
    path : str
        Output file.
    """

    type_name = "npz"

    def __init__(self, path):
        self.path = str(path)
        self._parts = []

    def open(self, info):
        self.info = info
        self._parts = []

    def write(self, block, first_sample):
        self._parts.append(np.array(block, copy=True))

    def close(self):
        from pathlib import Path

        data = (np.concatenate(self._parts, axis=1) if self._parts
                else np.zeros((self.info.n_channels, 0), self.info.dtype))
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, data=data, sfreq=self.info.sfreq,
                 ch_names=np.array(self.info.ch_names), kind=self.info.kind)


def sink_class(type_name: str):
    """Return the class registered for ``type_name``."""
    if type_name not in SINK_TYPES:
        raise PipelineError(f"unknown sink type {type_name!r}; known types are "
                            f"{', '.join(sorted(SINK_TYPES))}.{did_you_mean(type_name, SINK_TYPES)}")
    module, cls = SINK_TYPES[type_name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_sink(type_name: str, params: dict, where: str = "sink") -> Sink:
    """Build a sink, rejecting unknown parameters with the allowed names."""
    cls = sink_class(type_name)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in params:
        if key not in allowed:
            raise ParameterError(f"{where}: unknown parameter {key!r} for sink type "
                                 f"'{type_name}'; allowed are {', '.join(allowed)}."
                                 f"{did_you_mean(key, allowed)}")
    try:
        return cls(**params)
    except ParameterError as exc:
        raise ParameterError(f"{where} ({type_name}): {exc}") from None
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:  # a missing,
        if isinstance(exc, EegkitError):  # mistyped or absurdly nested parameter
            raise
        raise ParameterError(f"{where} ({type_name}): invalid parameters: "
                             f"{type(exc).__name__}: {exc}") from None


__all__ = ["Sink", "NpzSink", "make_sink", "sink_class", "SINK_TYPES"]
