"""The ``eegkit`` command line. Each sub-command lives in its own module with
``add_parser(subparsers)`` and ``main(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .._errors import EegkitError, EegkitIOError

#: exit codes, documented in the README ("Exit codes"); one per class of failure
EXIT_OK = 0
EXIT_PARTIAL = 1    # ran to the end, but a stage was disabled or a recording failed
EXIT_INPUT = 2      # bad input: arguments, pipeline document, parameters, data
EXIT_IO = 3         # a file could not be read or written (disk full, permissions)
EXIT_BUG = 70       # an unexpected exception: a bug in eegkit or a plugin (traceback shown)
EXIT_INTERRUPTED = 130

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
        return EXIT_INPUT
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("eegkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the one place failures become exit codes
        code = exit_code(exc)
        if code == EXIT_BUG:
            return _bug(args.command)  # the traceback is the report
        print(f"eegkit {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return code


def exit_code(exc: BaseException) -> int:
    """The exit code of the CLI for an exception (README, "Exit codes")."""
    if isinstance(exc, (EegkitIOError, OSError, MemoryError)):
        return EXIT_IO
    if isinstance(exc, EegkitError):
        return EXIT_INPUT
    return EXIT_BUG


def _one_line(exc):
    """An OSError not wrapped by eegkit still names its file; other text as is."""
    if isinstance(exc, EegkitError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _bug(command):
    import traceback

    traceback.print_exc()
    print(f"eegkit {command}: internal error (exit {EXIT_BUG}); please report it with the "
          f"traceback above", file=sys.stderr)
    return EXIT_BUG
