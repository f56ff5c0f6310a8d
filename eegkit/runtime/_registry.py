"""The live pipelines of this process (weakly held): hot reload, the file watcher and
the notebook find them here.

A pipeline that takes over a name (``Pipeline(name=...)``), or the place it was
built (a notebook cell run again), stops the pipeline that had it: a background
run nobody can reach any more would otherwise go on unseen.
"""

from __future__ import annotations

import logging
import weakref

from .._errors import EegkitError, PipelineError

log = logging.getLogger("eegkit")
_PIPELINES = weakref.WeakSet()
_ORIGINS = weakref.WeakKeyDictionary()  # pipeline → (place, run) where it was built
# called with each replaced pipeline (the notebook closes its dashboard)
REPLACED_HOOKS = []


def register(pipeline) -> None:
    """Remember ``pipeline`` for as long as something else keeps it alive."""
    _PIPELINES.add(pipeline)


def pipelines() -> list:
    """Every live pipeline of this process."""
    return list(_PIPELINES)


def named(name: str):
    """The live pipeline called ``name``, or None."""
    return next((p for p in pipelines() if getattr(p, "name", None) == name), None)


def claim_name(pipeline, name: str) -> list:
    """Give ``name`` to ``pipeline``; the pipeline that had it is stopped and loses it."""
    if not isinstance(name, str) or not name:
        raise PipelineError(f"Pipeline(name=...) must be a non-empty string, got {name!r}")
    old = [p for p in pipelines() if p is not pipeline and getattr(p, "name", None) == name]
    pipeline.name = name
    for p in old:
        p.name = None
        _replace(p, f"pipeline '{name}' was built again")
    return old


def claim_origin(pipeline, place, run) -> list:
    """Note that ``pipeline`` was built at ``place`` (a notebook cell) during ``run`` (its
    execution); pipelines built there during an earlier run are stopped."""
    old = [p for p, (where, when) in list(_ORIGINS.items())
           if p is not pipeline and where == place and when != run]
    _ORIGINS[pipeline] = (place, run)
    for p in old:
        del _ORIGINS[p]
        _replace(p, "the cell that built it ran again")
    return old


def _replace(old, why):
    """Stop a replaced pipeline and tell the hooks; a failure is logged, not raised (the
    new pipeline is already built)."""
    try:
        old.stop()
    except EegkitError as exc:
        log.warning("eegkit: could not stop a replaced pipeline (%s): %s", why, exc)
    else:
        log.info("eegkit: stopped a replaced pipeline (%s)", why)
    for hook in REPLACED_HOOKS:
        try:
            hook(old)
        except Exception as exc:  # noqa: BLE001 - a display hook must not break building
            log.debug("eegkit: replace hook failed: %r", exc)


def running() -> list:
    """Pipelines whose background run (``start()``) is going on."""
    from ._runner import active

    found = {id(p): p for p in pipelines() if getattr(p, "runner", None) is not None}
    for runner in active():
        found.setdefault(id(runner.pipeline), runner.pipeline)
    return [p for p in found.values() if p.runner is not None and p.runner.running]


def stop_all() -> list:
    """Stop the background run of every pipeline of this process.

    Returns
    -------
    list of Pipeline
        The pipelines that were running and are now stopped.

    Raises
    ------
    PipelineError
        When some run did not end in time (after every other one was stopped).

    Examples
    --------
    >>> import eegkit
    >>> eegkit.stop_all()  # e.g. after re-running cells left runs going
    []
    """
    stopped, failed = [], []
    for p in running():
        try:
            p.stop()
        except EegkitError as exc:
            failed.append(str(exc))
        else:
            stopped.append(p)
    if failed:
        raise PipelineError(f"stop_all(): {len(failed)} run(s) did not stop: " + "; ".join(failed))
    return stopped
