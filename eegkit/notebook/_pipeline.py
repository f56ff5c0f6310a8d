"""``eegkit.Pipeline``: the runtime's pipeline plus the entry points of the layers above it.

The runtime (``eegkit.runtime``) builds and runs pipelines and knows nothing of notebooks
or file watching. This class adds the dashboard (:meth:`show`, and the notebook display),
hot reload (:meth:`reload`) and file watching (:meth:`watch`), so users meet one class
while imports keep pointing one way (leaves → plugin → runtime → live → notebook).
"""

from __future__ import annotations

import sys

from ..live._reload import reload_pipeline
from ..runtime._pipeline import Pipeline as RuntimePipeline
from ..runtime._registry import claim_origin


class Pipeline(RuntimePipeline):
    __doc__ = RuntimePipeline.__doc__

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        origin = cell_origin()
        if origin is not None:
            claim_origin(self, *origin)  # re-running the cell stops the pipeline it built before

    def show(self):
        """Dashboard: every stage's view, start/stop/reset, statistics, parameter controls.

        The same dashboard is returned while the stages stay the same.
        """
        from ._dashboard import dashboard_for  # ipywidgets and anywidget: loaded when shown

        return dashboard_for(self)

    def _repr_mimebundle_(self, include=None, exclude=None):
        """In a notebook kernel the pipeline shows as its dashboard; elsewhere as text."""
        from ._dashboard import in_kernel

        if not in_kernel():
            return {"text/plain": repr(self)}
        return self.show()._repr_mimebundle_(include=include, exclude=exclude)

    def reload(self, plugin: str | None = None) -> list:
        """Re-import the code of this pipeline's stages (of ``plugin``, or all) and swap
        it in between two chunks; a disabled stage comes back if its new code works.

        Returns
        -------
        list of ReloadResult
            One per stage: ``stage``, ``plugin``, ``ok``, ``state`` ("kept", "reset",
            "none"), ``error``, ``prepare_s``, ``swapped_at``.
        """
        return reload_pipeline(self, plugin)

    def watch(self, enable: bool = True):
        """Hot reload: watch the plugin folders and reload edited plugins while this
        pipeline runs. Returns the watcher (None when disabling); needs ``eegkit[watch]``."""
        from ..live._watch import watch_pipeline

        return watch_pipeline(self, enable)


def cell_origin():
    """(cell id, execution count) of the notebook cell running now, or None outside one."""
    if "IPython" not in sys.modules:  # never import IPython just to ask
        return None
    from IPython import get_ipython

    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None or not hasattr(kernel, "get_parent"):
        return None
    try:
        parent = kernel.get_parent("shell") or {}
    except Exception:  # noqa: BLE001 - called outside a request (e.g. from a thread)
        return None
    cell = (parent.get("metadata") or {}).get("cellId")
    msg_id = (parent.get("header") or {}).get("msg_id")
    return (cell, msg_id) if cell and msg_id else None
