"""``eegkit bench``: run the benchmark suite of a source checkout (``benchmarks/``).

The suite is not part of the package: it lives in the repository's top-level
``benchmarks/`` folder, beside ``eegkit/``. From an installed wheel this command says
so and exits 2.
"""

from __future__ import annotations

import sys

from .._paths import ROOT

HINT = ("eegkit bench: the benchmarks live in the source repository's benchmarks/ folder, not in "
        "the installed package; from a checkout's root run: python -m benchmarks [--quick]")


def add_parser(sub):
    # every argument goes to the suite's own parser (its --help lists the options): a
    # prefix no argument starts with makes "--quick" and "-h" plain strings here
    p = sub.add_parser("bench", help="measure eegkit against scipy and hand-written numba "
                       "(source checkout only)", add_help=False, prefix_chars="\0",
                       description="Run the benchmark suite of a source checkout "
                       "(benchmarks/run.py); `eegkit bench --help` lists its options.")
    p.add_argument("argv", nargs="*", help="options of the suite (see eegkit bench --help)")
    p.set_defaults(func=main)


def main(args) -> int:
    """Run ``benchmarks.run.main`` with the arguments, or say where the suite is."""
    # pyproject.toml too: in site-packages a stray top-level "benchmarks" of another
    # distribution may sit beside eegkit
    if not ((ROOT / "benchmarks" / "run.py").is_file() and (ROOT / "pyproject.toml").is_file()):
        print(HINT, file=sys.stderr)
        return 2
    if sys.path[:1] != [str(ROOT)]:  # this checkout's benchmarks/, not one in the working directory
        sys.path.insert(0, str(ROOT))
    from benchmarks.run import main as run_suite

    return run_suite(args.argv)
