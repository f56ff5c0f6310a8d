"""The version of eegkit (one place; the package, the CLI and batch outputs read it)."""

__version__ = "0.1.0"
