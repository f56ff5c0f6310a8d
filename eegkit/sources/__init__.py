"""Data sources: synthetic EEG, arrays, files (MNE), LSL inlets, BrainFlow boards.

Sources are named in pipeline JSON as ``{"type": NAME, "params": {...}}`` and on the
command line as ``NAME`` or ``NAME:ARG`` (see :func:`parse_source_arg`).
"""

from __future__ import annotations

import importlib
import inspect

from .._check import check_keys, did_you_mean
from .._errors import EegkitError, ParameterError, PipelineError
from ._base import ArraySource, Source

# type name -> "module:Class"; modules import lazily so optional extras stay optional.
SOURCE_TYPES = {
    "synthetic": "eegkit.sources._synthetic:SyntheticSource",
    "file": "eegkit.sources._file:FileSource",
    "lsl": "eegkit.sources._lsl:LSLSource",
    "brainflow": "eegkit.sources._brainflow:BrainFlowSource",
}
# what "TYPE:ARG" on the command line sets
SHORT_ARG = {"file": "path", "lsl": "name", "brainflow": "board_id"}


def source_class(type_name: str):
    """Return the class registered for ``type_name``."""
    if type_name not in SOURCE_TYPES:
        raise PipelineError(
            f"unknown source type {type_name!r}; known types are "
            f"{', '.join(sorted(SOURCE_TYPES))}.{did_you_mean(type_name, SOURCE_TYPES)}")
    module, cls = SOURCE_TYPES[type_name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_source(spec: dict, where: str = "source", connect: bool = True):
    """Build a source from ``{"type": ..., "params": {...}}``.

    Unknown parameters are errors naming the source type and the allowed names. With
    ``connect=False`` a live source (LSL, boards) is only checked, not opened (so
    loading a pipeline never waits for a stream), and None is returned for it.
    """
    if not isinstance(spec, dict):
        raise PipelineError(f"{where}: expected an object with 'type' and 'params', got {spec!r}")
    check_keys(spec, ("type", "params"), where, error=PipelineError)
    if not isinstance(spec.get("type"), str):
        raise PipelineError(f"{where}.type: expected a string, got {spec.get('type')!r}")
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise PipelineError(f"{where}.params: expected an object, got {params!r}")
    cls = source_class(spec["type"])
    sig = inspect.signature(cls.__init__)
    allowed = [p for p in sig.parameters if p != "self"]
    for key in params:
        if key not in allowed:
            raise ParameterError(
                f"{where}: unknown parameter {key!r} for source type '{spec['type']}'; "
                f"allowed are {', '.join(allowed)}.{did_you_mean(key, allowed)}")
    if not connect and getattr(cls, "live", False):
        return None
    try:
        return cls(**params)
    except ParameterError as exc:
        raise ParameterError(f"{where} ({spec['type']}): {exc}") from None
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:  # a missing,
        if isinstance(exc, EegkitError):  # mistyped or absurdly nested parameter
            raise
        raise ParameterError(f"{where} ({spec['type']}): invalid parameters: "
                             f"{type(exc).__name__}: {exc}") from None


def parse_source_arg(text: str) -> dict:
    """Turn a command-line ``TYPE[:ARG][,key=value...]`` into a source spec.

    ``synthetic``, ``synthetic,n_channels=16``, ``file:rec.edf``, ``lsl:MyAmp``,
    ``brainflow:-1``. Values are parsed as JSON when they parse, else kept as strings.
    """
    import json

    head, *pairs = text.split(",")
    type_name, _, arg = head.partition(":")
    params = {}
    if arg:
        if type_name not in SHORT_ARG:
            raise PipelineError(f"--source {text!r}: source type {type_name!r} takes no ':ARG'")
        params[SHORT_ARG[type_name]] = arg
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            raise PipelineError(f"--source {text!r}: expected key=value, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    if "board_id" in params and isinstance(params["board_id"], str):
        try:
            params["board_id"] = int(params["board_id"])
        except ValueError:
            pass
    return {"type": type_name, "params": params}


__all__ = ["Source", "ArraySource", "make_source", "source_class", "parse_source_arg", "SOURCE_TYPES"]
