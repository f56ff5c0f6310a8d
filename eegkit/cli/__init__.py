"""The ``eegkit`` command line. Each sub-command lives in its own module with
``add_parser(subparsers)`` and ``main(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .._errors import EegkitError

# sub-command modules, in help order
COMMANDS = ("run", "plugins", "new-plugin", "batch", "bench")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="eegkit", description="Interactive DSP toolkit for EEG: run pipelines headless, "
        "manage plugins.")
    parser.add_argument("--version", action="version", version=f"eegkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".{name.replace('-', '_')}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name.replace('-', '_')}":
                raise
            continue  # that command is not part of this build
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of ``eegkit``; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EegkitError as exc:
        print(f"eegkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eegkit: interrupted", file=sys.stderr)
        return 130
