"""Import optional dependencies, turning their absence into MissingExtraError."""

from __future__ import annotations

import importlib

from ._errors import MissingExtraError, missing_extra


def require(module: str, extra: str, feature: str):
    """Import and return ``module``, or raise :class:`~eegkit.MissingExtraError`.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"pylsl"`` or ``"pyarrow.parquet"``.
    extra : str
        The eegkit extra that installs it (``pip install 'eegkit[EXTRA]'``).
    feature : str
        What needs it, for the message (e.g. ``"LSLSource"``).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingExtraError
        When the module cannot be imported; the message names the package and
        the extra to install.
    """
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # sys.modules[name] = None (how tests hide a package) also lands here
        raise missing_extra(package, extra, feature) from exc
    except (ImportError, OSError, RuntimeError) as exc:
        # installed but broken, e.g. a wheel whose bundled shared library fails to load
        raise MissingExtraError(
            f"{feature} needs the optional package '{package}', which is installed but "
            f"failed to import ({type(exc).__name__}: {exc}). Reinstall it with: "
            f"pip install --force-reinstall 'eegkit[{extra}]'") from exc
