"""Run eegkit's benchmark suite: ``python benchmarks/run.py [--quick] [options]``.

Same as ``eegkit bench``; results go to ``benchmarks/results/latest.{json,md}``
(``latest-quick.*`` for ``--quick``). ``--help`` lists the options.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    """Parse the options and run the suite in a child process (threads set before numpy loads)."""
    from eegkit._bench import main as bench_main

    return bench_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
