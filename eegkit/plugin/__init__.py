"""Plugins: manifests, discovery, loading (numba), the plugin manager."""

from ._discovery import PluginRecord, discover, package_dir
from ._manager import PluginApiWarning, PluginManager, default_manager, list_plugins
from ._manifest import HOST_API, Manifest, StageSpec, check_api, read_manifest
from ._params import ParamSpec, validate_params

__all__ = ["build_native", "PluginRecord", "discover", "package_dir", "PluginApiWarning", "PluginManager",
           "default_manager", "list_plugins", "HOST_API", "Manifest", "StageSpec", "check_api",
           "read_manifest", "ParamSpec", "validate_params"]


def __getattr__(name):
    """``build_native`` on first use: native building loads numba and ctypes, which
    ``import eegkit`` (listing plugins, reading manifests) does not need."""
    if name == "build_native":
        from ._build import build_native

        return build_native
    raise AttributeError(f"module 'eegkit.plugin' has no attribute {name!r}")
