"""Run eegkit's benchmark suite: ``python benchmarks/run.py [--quick] [options]``.

Same as ``python -m benchmarks`` and ``eegkit bench``; results go to
``benchmarks/results/latest.{json,md}`` (``latest-quick.*`` for ``--quick``).
``--help`` lists the options.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(ROOT)]:  # run as a script: this checkout's benchmarks and eegkit first
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    """Parse the options and run the suite in a child process (threads set before numpy loads)."""
    from benchmarks.runner import main as run_suite

    return run_suite(argv)


if __name__ == "__main__":
    raise SystemExit(main())
