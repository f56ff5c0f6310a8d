"""One exception hierarchy, rooted at EegkitError.

Each error subclasses the matching builtin as well, so callers may catch either.
"""

from __future__ import annotations


class EegkitError(Exception):
    """Base class of every error eegkit raises on purpose."""


class ManifestError(EegkitError, ValueError):
    """A plugin manifest (``plugin.toml``) is malformed or breaks a rule."""


class ApiVersionError(ManifestError):
    """A plugin targets a plugin-API major version the host does not speak."""


class PluginLoadError(EegkitError, ImportError):
    """A plugin's module failed to import, lacks a function, or failed to compile."""


class ParameterError(EegkitError, ValueError):
    """A stage or source parameter has the wrong type or an out-of-range value."""


class PipelineError(EegkitError, ValueError):
    """A pipeline (in Python or JSON) is malformed: unknown stage type, bad input, ..."""


class StageError(EegkitError, RuntimeError):
    """Plugin code raised while a stage was being set up or run."""


class SourceError(EegkitError, RuntimeError):
    """A data source could not be opened or read."""


class EegkitIOError(EegkitError, OSError):
    """A file, folder or service could not be used: disk full, permission denied, a
    folder where a file was expected, an existing file not to be overwritten, a
    scheduler that does not answer. The message names the path or address."""


class MissingExtraError(EegkitError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


def missing_extra(package: str, extra: str, feature: str) -> MissingExtraError:
    """Build the error raised when an optional package is missing."""
    return MissingExtraError(
        f"{feature} needs the optional package '{package}', which is not installed. "
        f"Install it with: pip install 'eegkit[{extra}]'"
    )
