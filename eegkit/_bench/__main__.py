"""``python -m eegkit._bench [options]``: the benchmark suite (see ``eegkit bench --help``)."""

from .runner import main

raise SystemExit(main())
