"""``python -m eegkit`` = the ``eegkit`` command."""

from .cli import main

raise SystemExit(main())
