"""eegkit: a Jupyter-first, interactive DSP toolkit for EEG.

Plugins (``plugins/<name>/plugin.toml`` + a numba-compiled ``process``) provide
stage types; a :class:`Pipeline` chains stages and runs them offline or live.
"""

from ._errors import (ApiVersionError, EegkitError, ManifestError, MissingExtraError,
                      ParameterError, PipelineError, PluginLoadError, SourceError, StageError)
from ._info import StreamInfo
from ._numba import jit
from ._pipeline import Pipeline
from ._stage import Stage
from .plugin import PluginManager, PluginRecord, list_plugins
from .sources import ArraySource, Source, make_source

__version__ = "0.1.0"


def load_ipython_extension(ipython):
    """``%load_ext eegkit``: register the ``%eegkit`` and ``%%eegkit_stage`` magics."""
    from ._magics import load_ipython_extension as load

    load(ipython)


__all__ = [
    "Pipeline", "Stage", "StreamInfo", "jit", "list_plugins", "PluginManager", "PluginRecord",
    "Source", "ArraySource", "make_source",
    "EegkitError", "ManifestError", "ApiVersionError", "PluginLoadError", "ParameterError",
    "PipelineError", "StageError", "SourceError", "MissingExtraError", "__version__",
]
