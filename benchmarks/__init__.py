"""eegkit's benchmark suite: ``python -m benchmarks`` from the repository root (see README.md).

Kept outside the package (never in the wheel); ``eegkit bench`` runs it from a source
checkout. Modules: ``workloads`` (data, parameters), ``scipy_ref`` and ``numba_ref``
(baselines), ``streaming``, ``overhead``, ``offline``, ``coldstart``, ``report``,
``runner``; ``hooks`` runs the measurements of other parts of eegkit, each in its own
module: ``widget``, ``isolation``, ``reload``, ``batch``.
"""
