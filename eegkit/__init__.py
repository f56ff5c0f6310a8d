"""eegkit: a Jupyter-first, interactive DSP toolkit for EEG.

Plugins (``plugins/<name>/plugin.toml`` + a numba-compiled ``process``) provide
stage types; a :class:`Pipeline` chains stages and runs them offline or live.
"""

from ._errors import (ApiVersionError, EegkitError, EegkitIOError, ManifestError, MissingExtraError,
                      ParameterError, PipelineError, PluginLoadError, SourceError, StageError)
from ._info import StreamInfo
from ._version import __version__
from ._numba import jit
from .notebook._pipeline import Pipeline
from .runtime._registry import stop_all
from .runtime._stage import Stage
from .plugin import PluginManager, PluginRecord, list_plugins
from .plugin._setup import Setup
from .sinks import Sink
from .sources import ArraySource, Source, make_source

# imported on first use, so `import eegkit` stays light (scipy.signal, optional extras)
_LAZY = {
    "SyntheticSource": ".sources._synthetic", "FileSource": ".sources._file",
    "LSLSource": ".sources._lsl", "BrainFlowSource": ".sources._brainflow",
    "RecordSink": ".sinks._record", "LSLSink": ".sinks._lsl", "FeatureSink": ".sinks._features",
    "StreamView": ".notebook._widget", "batch": ".batching._client", "BatchSummary": ".batching._client",
    "reload": ".live._reload", "watch": ".live._watch",
}


def __getattr__(name):
    """Lazy public names (see ``_LAZY``) and ``prange``."""
    if name == "prange":
        # a loop over independent items (channels): numba.prange, or range when jit is off
        from ._numba import prange_object

        return prange_object()
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'eegkit' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)




def load_ipython_extension(ipython):
    """``%load_ext eegkit``: register the ``%eegkit`` and ``%%eegkit_stage`` magics."""
    from .notebook._magics import load_ipython_extension as load

    load(ipython)


__all__ = [
    "Pipeline", "Stage", "Setup", "StreamInfo", "jit", "prange", "list_plugins", "PluginManager", "PluginRecord",
    "Source", "ArraySource", "SyntheticSource", "FileSource", "LSLSource", "BrainFlowSource",
    "make_source", "Sink", "RecordSink", "LSLSink", "FeatureSink", "StreamView",
    "batch", "BatchSummary", "reload", "watch", "stop_all",
    "EegkitError", "ManifestError", "ApiVersionError", "PluginLoadError", "ParameterError",
    "PipelineError", "StageError", "SourceError", "EegkitIOError", "MissingExtraError", "__version__",
]
