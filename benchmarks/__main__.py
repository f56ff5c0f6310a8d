"""``python -m benchmarks [--quick] [options]`` from the repository root."""

from .run import main

raise SystemExit(main())
