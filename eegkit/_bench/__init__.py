"""The benchmark suite of eegkit (``eegkit bench``, ``python -m benchmarks``).

Measures, on one deterministic workload (64 channels at 1 kHz: band-pass, notch,
common average reference, alpha band power), eegkit against scipy and hand-written
numba: streaming latency per chunk, offline throughput, cold start, and the
measurements other modules offer (widget frame cost, isolation, reload, batch).
Results go to ``<out>/latest.json`` and ``<out>/latest.md``.

Modules: ``workloads`` (data, parameters), ``scipy_ref`` and ``numba_ref``
(baselines), ``streaming``, ``overhead``, ``offline``, ``coldstart``, ``hooks``,
``report``, ``runner``.
"""

from .runner import add_arguments, launch, main

__all__ = ["add_arguments", "launch", "main"]
