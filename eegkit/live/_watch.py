"""Watch plugin folders with ``watchfiles`` and hot-reload what changes (see ``eegkit.live._reload``).

``Pipeline.watch()`` watches for one pipeline, :func:`watch` for every live pipeline of
a plugin manager, and ``eegkit run --watch`` for a headless run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from pathlib import Path

from ..runtime import _registry
from ._reload import reload_pipeline
from ..runtime._stage import log_error
from .._paths import is_skipped
from ..plugin._discovery import MANIFEST, default_paths

log = logging.getLogger("eegkit")


class Watcher:
    """Watch plugin folders (with ``watchfiles``) and hot-reload what changes.

    Parameters
    ----------
    pipelines : list of Pipeline, optional
        Pipelines to reload; default: every live pipeline using ``plugins``.
    plugins : PluginManager, optional
        Whose plugin folders are watched; default: the first pipeline's, else the
        process-wide manager.
    on_event : callable, optional
        Called with each event dict (from the watcher thread).
    step_ms : int
        Quiet time after a change before it is handled (editors write in bursts).

    Notes
    -----
    Events (``watcher.events``, newest last) are dicts with ``kind``:

    - ``"reload"``: ``plugin``, ``results`` (ReloadResult list), ``ok``,
      ``latency_s`` (change seen → every stage of the plugin live, all at one chunk
      boundary), ``detect_s`` (file mtime → seen; None when the mtime is not recent);
    - ``"added"`` / ``"removed"``: a plugin folder appeared or went away;
    - ``"ui"``: a plugin's ``ui/`` file changed. Views re-render by themselves when
      ``ANYWIDGET_HMR=1`` was set before they were created (each StreamView follows
      its view file); :meth:`start` sets it when it is unset, so views created
      after hot reload is turned on follow their bundle. Otherwise display the view again.
    """

    def __init__(self, pipelines=None, plugins=None, on_event=None, step_ms: int = 50):
        from ..plugin import default_manager

        pipelines = None if pipelines is None else list(pipelines)
        self.plugins = plugins or (pipelines[0].plugins if pipelines else default_manager())
        # weak: a watcher must not keep a discarded pipeline alive
        self._pipelines = None if pipelines is None else weakref.WeakSet(pipelines)
        self.on_event = on_event
        self.step_ms = int(step_ms)
        self.events = deque(maxlen=500)
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self._roots = []
        self._plugin_roots = set()  # watched folders that are one plugin (entry points)

    # -- control ---------------------------------------------------------------------------
    def start(self) -> "Watcher":
        """Start watching in a background thread; returns once the watch is in place."""
        from .._optional import require

        require("watchfiles", "watch", "hot reload")
        os.environ.setdefault("ANYWIDGET_HMR", "1")  # plugin views follow their ui/bundle.js
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self.ready.clear()
            self._thread = threading.Thread(target=self._run, name="eegkit-watch", daemon=True)
            self._thread.start()
            self.ready.wait(10.0)
        return self

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._thread = None

    @property
    def running(self) -> bool:
        """True while the watcher thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def targets(self) -> list:
        """The pipelines this watcher reloads."""
        if self._pipelines is not None:
            return list(self._pipelines)
        return [p for p in _registry.pipelines() if p.plugins is self.plugins]

    def roots(self) -> list:
        """Folders watched: the plugin paths that exist, and entry-point plugin folders."""
        paths = self.plugins.paths
        roots = [Path(p) for p in paths] if paths is not None else [p for p, _ in default_paths()]
        self._plugin_roots = {r.path.resolve() for r in self.plugins.records or ()
                              if r.origin == "entry-point" and r.path.is_dir()}
        roots += sorted(self._plugin_roots)
        out = []
        for r in roots:
            if r.is_dir():
                r = r.resolve()
                if not any(r == o or o in r.parents for o in out):
                    out = [o for o in out if r not in o.parents] + [r]
        return out

    # -- the thread ----------------------------------------------------------------------
    def _run(self):
        from watchfiles import DefaultFilter, watch

        while not self._stop.is_set():
            self._roots = self.roots()
            if not self._roots:
                self.ready.set()
                self._stop.wait(1.0)
                continue
            checked = time.monotonic()
            try:
                for changes in watch(*self._roots, watch_filter=DefaultFilter(),
                                     step=self.step_ms, stop_event=self._stop, rust_timeout=200,
                                     yield_on_timeout=True, raise_interrupt=False):
                    self.ready.set()  # the first (empty) yield: the watch is in place
                    if changes:
                        self._handle(changes)
                    if time.monotonic() - checked > 2.0:  # a plugin path created meanwhile
                        checked = time.monotonic()
                        if self.roots() != self._roots:
                            break
            except Exception as exc:  # noqa: BLE001 - keep watching after any failure
                log_error(("watcher",), "eegkit: file watcher error: %r", exc)
                self._stop.wait(1.0)

    def _handle(self, changes):
        """One batch of file changes: refresh discovery, reload edited plugins."""
        noticed = time.time()
        before = {r.path.resolve(): r for r in self.plugins.records or ()
                  if r.status != "shadowed"}
        touched, saved_at = {}, {}
        for _, raw in changes:
            path = Path(raw).resolve()
            folder = self._plugin_folder(path)
            if folder is None:
                continue
            touched.setdefault(folder, set()).add(_kind(path.relative_to(folder)))
            try:
                saved_at[folder] = max(saved_at.get(folder, 0.0), path.stat().st_mtime)
            except OSError:
                pass
        if not touched:
            return
        self.plugins.refresh()
        after = {r.path.resolve(): r for r in self.plugins.records if r.status != "shadowed"}
        for name in self.plugins.changes["added"]:
            rec = self.plugins.record(name)
            self._event({"kind": "added", "plugin": name, "status": rec.status if rec else None,
                         "message": rec.message if rec else ""})
        for name in self.plugins.changes["removed"]:
            self._event({"kind": "removed", "plugin": name})
            for pipe in self.targets():
                for stage in pipe.stages:
                    if stage.code.manifest.name == name:
                        stage.last_error = (f"plugin '{name}' was removed from disk; this stage "
                                            f"keeps running the code it loaded")
        for folder, kinds in touched.items():
            rec = after.get(folder) or before.get(folder)
            if rec is None:
                continue
            name = rec.name
            old = before.get(folder)
            if old is not None and folder in after and old.status != rec.status:
                self._event({"kind": "status", "plugin": name, "status": rec.status,
                             "message": rec.message})
            if "ui" in kinds:
                self._event({"kind": "ui", "plugin": name, "folder": str(folder)})
            if kinds & {"code", "manifest"} and folder in after:
                results = self._reload(name)
                if results:
                    saved = saved_at.get(folder)
                    done = max(r.swapped_at for r in results) if all(r.ok for r in results) else None
                    # latency runs from when the change was seen: an mtime may be old or
                    # restored (a checkout, cp -p, an editor that keeps it)
                    detect = None if saved is None or not 0 <= noticed - saved < 60 else noticed - saved
                    self._event({"kind": "reload", "plugin": name, "results": results,
                                 "ok": all(r.ok for r in results), "saved_at": saved,
                                 "seen_at": noticed, "detect_s": detect,
                                 "latency_s": None if done is None else done - noticed})

    def _reload(self, name):
        results = []
        for pipe in self.targets():
            results += reload_pipeline(pipe, name, refresh=False)
        return results

    def _plugin_folder(self, path: Path):
        """The plugin folder holding ``path``: a sub-folder of a watched plugin path, or a
        watched entry-point plugin folder itself."""
        for root in self._roots:
            if root == path or root in path.parents:
                if root in self._plugin_roots:
                    return root
                rel = path.relative_to(root)
                return root / rel.parts[0] if rel.parts else None
        return None

    def _event(self, event):
        event["time"] = time.time()
        self.events.append(event)
        kind = event["kind"]
        if kind == "reload" and event["ok"]:
            log.info("eegkit: reloaded plugin '%s' %.2f s after the change was seen", event["plugin"],
                     event["latency_s"])
        elif kind == "added":
            log.info("eegkit: new plugin '%s' is available", event["plugin"])
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception as exc:  # noqa: BLE001 - a broken callback must not stop watching
                log_error(("watcher", "callback"), "eegkit: watcher callback failed: %r", exc)


def _kind(rel: Path) -> str:
    """What a changed file is to its plugin: manifest, code, ui, tests or other."""
    parts = rel.parts
    if not parts:
        return "folder"
    if parts == (MANIFEST,):
        return "manifest"
    if parts[0] == "ui":
        return "ui"
    if is_skipped(parts[:-1]):
        return "tests" if "tests" in parts[:-1] else "other"
    if rel.suffix == ".py":
        return "code"
    if len(parts) == 1 and rel.suffix == "":
        return "folder"
    return "other"


_WATCHERS: dict = {}
_WATCH_LOCK = threading.Lock()


def watch_pipeline(pipeline, enable: bool = True):
    """Start (or stop) the watcher of one pipeline; see :meth:`Pipeline.watch`."""
    with _WATCH_LOCK:
        watcher = _WATCHERS.pop(id(pipeline), None)
        if watcher is not None and (not enable or watcher.running):
            if not enable:
                watcher.stop()
                return None
            _WATCHERS[id(pipeline)] = watcher
            return watcher
        if not enable:
            return None
        watcher = Watcher(pipelines=[pipeline]).start()
        _WATCHERS[id(pipeline)] = watcher
        weakref.finalize(pipeline, _forget, id(pipeline), watcher)
        return watcher


def watch(enable: bool = True, plugins=None):
    """Process-wide hot reload: one watcher for every live pipeline using ``plugins``
    (default: the process-wide plugin manager). Returns it (None when disabling)."""
    global _GLOBAL
    with _WATCH_LOCK:
        if _GLOBAL is not None and (not enable or plugins not in (None, _GLOBAL.plugins)):
            _GLOBAL.stop()
            _GLOBAL = None
        if enable and _GLOBAL is None:
            _GLOBAL = Watcher(plugins=plugins).start()
        return _GLOBAL


_GLOBAL = None


def _forget(key, watcher):
    """A watched pipeline was garbage-collected: stop its watcher."""
    watcher.stop()
    with _WATCH_LOCK:
        if _WATCHERS.get(key) is watcher:
            del _WATCHERS[key]


def describe_event(event: dict) -> str:
    """One line for a watcher event (used by ``eegkit run --watch``)."""
    kind, name = event["kind"], event.get("plugin")
    if kind == "reload":
        if event["ok"]:
            states = ", ".join(f"{r.stage}: state {r.state}" for r in event["results"])
            return (f"reloaded plugin '{name}' ({states}) {event['latency_s']:.2f} s after the "
                    f"change was seen")
        errors = "; ".join(r.error for r in event["results"] if not r.ok)
        return f"reload of plugin '{name}' rejected, the previous version keeps running: {errors}"
    if kind == "added":
        extra = f" ({event['status']}: {event['message']})" if event.get("message") else ""
        return f"new plugin '{name}' is available{extra}"
    if kind == "removed":
        return f"plugin '{name}' was removed; its stages keep running the code they loaded"
    if kind == "status":
        return f"plugin '{name}' is now {event['status']}" + (
            f": {event['message']}" if event.get("message") else "")
    if kind == "ui":
        return (f"plugin '{name}': UI bundle changed (views refresh when ANYWIDGET_HMR=1 was set "
                f"before they were created)")
    return f"{kind}: {name}"
