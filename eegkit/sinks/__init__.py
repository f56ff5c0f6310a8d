"""Sinks: where a stage's output goes besides the notebook (files, LSL, tables).

In pipeline JSON: ``{"type": NAME, "input": STAGE_ID, "params": {...}}``.
"""

from __future__ import annotations

import importlib
import inspect
import os

import numpy as np

from .._check import did_you_mean
from .._errors import EegkitError, EegkitIOError, ParameterError, PipelineError
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

    # A run opens its sinks in three steps so that a failing sink leaves every other
    # target untouched: check all, prepare all (files under temporary names), commit all.
    def check(self, info: StreamInfo) -> None:
        """Raise if :meth:`open` would fail for ``info`` (no side effects)."""

    def prepare(self, info: StreamInfo) -> None:
        """Open without replacing anything the user can see yet (default: :meth:`open`)."""
        self.open(info)

    def commit(self) -> None:
        """Put what :meth:`prepare` made in place."""

    def discard(self) -> None:
        """Undo :meth:`prepare` (default: :meth:`close`)."""
        self.close()

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
        Output file, ending in ``.npz``.
    overwrite : bool
        Replace an existing file (default False: refuse to start).
    """

    type_name = "npz"

    def __init__(self, path, overwrite=False):
        self.path = output_path(path, "NpzSink", (".npz",))
        self.overwrite = overwrite_flag(overwrite, "NpzSink")
        self._parts = []

    def check(self, info):
        check_target(self.path, "NpzSink", self.overwrite)

    def open(self, info):
        self.check(info)
        self.info = info
        self._parts = []

    def write(self, block, first_sample):
        self._parts.append(np.array(block, copy=True))

    def close(self):
        from pathlib import Path

        data = (np.concatenate(self._parts, axis=1) if self._parts
                else np.zeros((self.info.n_channels, 0), self.info.dtype))
        self._parts = []
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{self.path}.part.npz"  # savez would add .npz to any other name
            np.savez(tmp, data=data, sfreq=self.info.sfreq,
                     ch_names=np.array(self.info.ch_names), kind=self.info.kind)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise io_error("NpzSink", self.path, exc) from None


def output_path(path, who: str, suffixes: tuple = ()) -> str:
    """``path`` as a string, refused when empty, unencodable or of the wrong suffix."""
    try:
        text = os.fspath(path)
    except TypeError:
        raise ParameterError(f"{who}: path must be a string or path-like, got "
                             f"{type(path).__name__}") from None
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise ParameterError(f"{who}: path is empty; give a file name")
    try:
        if "\0" in text:
            raise ValueError("NUL byte")
        os.fsencode(text)
    except (UnicodeError, ValueError) as exc:
        raise ParameterError(f"{who}: path {text!r} cannot be a file name on this system "
                             f"({exc})") from None
    if suffixes and not text.lower().endswith(suffixes):
        raise ParameterError(f"{who}: path must end in {' or '.join(suffixes)}, got {text!r}")
    return text


def overwrite_flag(value, who: str) -> bool:
    """``overwrite`` checked to be a bool (the string "no" would otherwise be true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{who}: overwrite must be true or false, got {value!r}")
    return bool(value)


def check_target(path: str, who: str, overwrite: bool) -> None:
    """Raise EegkitIOError when ``path`` cannot be (over)written as a file."""
    if os.path.isdir(path):
        raise EegkitIOError(f"{who}: {path} is a folder; give a file name")
    if os.path.lexists(path) and not overwrite:
        raise EegkitIOError(f"{who}: {path} exists; pass overwrite=True (eegkit run --overwrite) "
                        f"to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # the first existing ancestor must be a writable folder
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise EegkitIOError(f"{who}: cannot create {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EegkitIOError(f"{who}: cannot create {path}: folder {parent} is not writable")


def io_error(who: str, path: str, exc: OSError) -> EegkitIOError:
    """A EegkitIOError naming the file and the OS's reason (disk full, permission, ...)."""
    # only the message: errno or filename set on an OSError would replace it in str()
    return EegkitIOError(f"{who}: cannot write {path}: {exc.strerror or exc}")


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


__all__ = ["Sink", "NpzSink", "make_sink", "sink_class", "SINK_TYPES", "output_path", "check_target",
           "io_error", "overwrite_flag"]
