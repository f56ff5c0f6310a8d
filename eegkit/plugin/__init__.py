"""Plugins: manifests, discovery, loading (numba), the plugin manager."""

from ._build import build_native
from ._discovery import PluginRecord, discover, package_dir
from ._manager import PluginApiWarning, PluginManager, default_manager, list_plugins
from ._manifest import HOST_API, Manifest, StageSpec, check_api, read_manifest
from ._params import ParamSpec, validate_params

__all__ = ["build_native", "PluginRecord", "discover", "package_dir", "PluginApiWarning", "PluginManager",
           "default_manager", "list_plugins", "HOST_API", "Manifest", "StageSpec", "check_api",
           "read_manifest", "ParamSpec", "validate_params"]
