"""The live pipelines of this process (weakly held): hot reload, the file watcher and
the notebook find them here."""

from __future__ import annotations

import weakref

_PIPELINES = weakref.WeakSet()


def register(pipeline) -> None:
    """Remember ``pipeline`` for as long as something else keeps it alive."""
    _PIPELINES.add(pipeline)


def pipelines() -> list:
    """Every live pipeline of this process."""
    return list(_PIPELINES)

