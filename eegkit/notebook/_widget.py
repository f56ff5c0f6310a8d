"""StreamView: one anywidget that binds any stream to any view.

Samples travel as custom messages with one float32 binary buffer, decimated in
Python, paced to ``fps`` by a background thread, and dropped (never queued) while
the browser has not acknowledged the frames already in flight. A window frame
carries only the points that scrolled in since the last one (the browser keeps the
window), and nothing is sent while no output of the view is on screen.

The widget's front end is always the view host ``widgets/protocol.js``, which speaks
that protocol; the view itself (``widgets/scope.js``... or a plugin's ``ui/bundle.js``)
travels as source text in a trait and only draws (see ``widgets/README.md``).
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import anywidget
import numpy as np
import traitlets as t

from .._check import check_option, did_you_mean, ensure_int, option_error
from .._errors import ParameterError
from .._info import StreamInfo
from .._paths import package_dir
from ._frames import LatestBuffer, WindowBuffer
from ._sources import view_source
from ._topomap import topomap_positions

from ..plugin._manifest import VIEWS as MANIFEST_VIEWS

# the built-in views (a manifest may also say "ui", its own bundle, or "none")
VIEWS = tuple(v for v in MANIFEST_VIEWS if v not in ("ui", "none"))
FRAME_MODES = ("window", "latest")
# frames in flight before the pacer stops sending: window frames are deltas of a few kB,
# so four in flight queue nothing and cover an ack round trip of 4/fps (133 ms at 30 fps)
MAX_UNACKED = 4


def widgets_dir() -> Path:
    """Folder of the built-in view files (``scope.js``, ``spectrum.js``, ``bars.js``, ``topomap.js``).

    ``<package>/_bundled/widgets`` in an installed wheel, else ``<repo>/widgets``
    in an editable checkout.
    """
    return package_dir("widgets")


class StreamView(anywidget.AnyWidget):
    """Live view of a stream (a pipeline stage's output) in a notebook.

    Parameters
    ----------
    info : StreamInfo or dict
        Metadata of the stream the view will be fed.
    view : {"scope", "spectrum", "bars", "topomap"} or path
        A built-in view, or the path of a view module (a plugin's
        ``ui/bundle.js``): an ES module whose default export makes a view that
        draws frames (``widgets/README.md``). With ``ANYWIDGET_HMR=1`` an edit to
        the file replaces the view in every open output (hot reload).
    title : str
        Shown above the plot.
    fps : float
        Frames per second sent to the browser at most.
    seconds : float
        Length of the time window kept for ``"window"`` frames (the scope).
    frames : {"window", "latest"}, optional
        What a frame holds: the last ``seconds`` of samples, min/max-decimated
        (default for ``scope``), or the newest column reshaped to
        ``(channels, axis items)`` (default for the other built-in views). For a
        bundle path the default follows ``info.kind``.
    max_points : int
        Most points per channel in one frame.
    **traits
        Initial values of the settings traits: ``scale``, ``log_scale``,
        ``height``, ``paused``, ``params``, ``positions``. A ``topomap`` view
        computes ``positions`` from the channel names (:func:`topomap_positions`)
        unless given.

    Notes
    -----
    ``window`` frames are min/max-decimated: the window is cut into buckets of
    ``step`` samples aligned to the absolute sample index (so traces do not
    shimmer as they scroll), and each bucket sends its minimum and maximum, which
    keeps every spike visible. A frame's data has shape ``(channels, buckets, 2)``
    (``layout="minmax"``), or ``(channels, samples)`` when the window already fits
    in ``max_points`` (``layout="raw"``). Only complete buckets are sent, so the
    newest ``step - 1`` samples wait for the next frame.

    The browser side is one module for every view, ``widgets/protocol.js`` (the
    widget's ``_esm``): it listens for frames from ``initialize``, shifts delta frames
    into its window, acks each frame as it arrives while an output is on screen (the
    pacer keeps at most ``MAX_UNACKED`` frames in flight and drops the rest), draws
    at most once per animation frame, tells the kernel when no output is visible
    (nothing is sent then), follows the container's size, shows the title, the
    display controls and a disabled stage's error. It imports the view's
    source from the ``_view_js`` trait and hands it the drawing helpers of
    ``widgets/draw.js`` (the ``_api_js`` trait) as ``api``.
    """

    _esm = package_dir("widgets") / "protocol.js"
    _css = package_dir("widgets") / "views.css"

    #: unique per widget: views key their per-model state by it (anywidget gives
    #: ``initialize`` and each ``render`` different proxies of one model)
    stream_id = t.Unicode("").tag(sync=True)
    info = t.Dict().tag(sync=True)
    title = t.Unicode("").tag(sync=True)
    view = t.Unicode("").tag(sync=True)
    status = t.Dict({"state": "ok", "error": None}).tag(sync=True)
    fps = t.Float(30.0).tag(sync=True)
    seconds = t.Float(5.0).tag(sync=True)
    #: amplitude per channel lane (scope) in the stream's unit; 0 = automatic
    scale = t.Float(0.0).tag(sync=True)
    #: logarithmic value axis (spectrum, bars)
    log_scale = t.Bool(False).tag(sync=True)
    #: plot height in CSS pixels; 0 = automatic
    height = t.Int(0).tag(sync=True)
    #: stop sending frames (the view keeps its last picture)
    paused = t.Bool(False).tag(sync=True)
    #: the bound stage's parameters, for plugin bundles (e.g. band edges)
    params = t.Dict().tag(sync=True)
    #: 2-D channel positions for the topomap: ``topomap_positions(info)``, sent once
    positions = t.Dict().tag(sync=True)
    #: source text of the view module, and of the helpers it receives as ``api``
    _view_js = t.Unicode("").tag(sync=True)
    _api_js = t.Unicode("").tag(sync=True)

    _autostart = True  # start the pacer on the first feed (tests that call _tick turn it off)

    def __init__(self, info, view="scope", title="", fps=30.0, seconds=5.0, *,
                 frames=None, max_points=1000, **traits):
        self._closed = False
        self._stop = threading.Event()
        self._pacer = None
        info = info if isinstance(info, StreamInfo) else StreamInfo.from_dict(dict(info))
        path = _view_path(view)
        _check_traits(traits)
        self._sources = {"_view_js": view_source(path), "_api_js": view_source(widgets_dir() / "draw.js")}
        if frames is None:
            timeseries = view == "scope" or (view not in VIEWS and info.kind == "timeseries")
            frames = "window" if timeseries else "latest"
        self.frames = check_option("frames", frames, FRAME_MODES, "StreamView")
        self.max_points = ensure_int(max_points, "max_points", "StreamView", min=2,
                                     what="an integer of at least 2")
        self._lock = threading.Lock()       # buffer: feed vs frame building
        self._send_lock = threading.Lock()  # one frame at a time on the comm
        self._seq = 0        # last frame number sent
        self._acked = 0      # last frame number the browser drew
        self._sent = 0
        self._dropped = 0
        self._costs = []     # thread CPU seconds per sent frame (last 600)
        self._pacer_error = None
        self._buf = None
        self._visible = True  # some output of the view is on screen (the browser says)
        self._full = True     # next window frame whole (a new frontend has no window to shift)
        traits.setdefault("log_scale", view == "spectrum")
        if view == "topomap" and "positions" not in traits:
            traits["positions"] = topomap_positions(info)
        traits.update({name: src.text for name, src in self._sources.items()})
        super().__init__(info=info.to_dict(), view=str(view), title=str(title), fps=float(fps),
                         seconds=float(seconds), stream_id=uuid.uuid4().hex, **traits)
        for name, src in self._sources.items():  # hot reload: a new text re-imports the view
            src.subscribe(self, name)
        self._alloc()
        self.on_msg(self._on_msg)

    # -- feeding (pipeline thread) ------------------------------------------------
    def feed(self, block, first_sample: int) -> None:
        """Keep what the view needs of one block; cheap and thread-safe.

        Parameters
        ----------
        block : ndarray, shape (n_channels, n_samples)
            A block of the stream (not kept: copied into a preallocated buffer).
        first_sample : int
            Absolute index of the block's first sample. A jump (a restarted or
            reset stream) clears the window.
        """
        if self._closed:
            return
        if block.ndim != 2 or block.shape[1] == 0:
            if block.ndim == 2:
                return
            raise ParameterError(f"StreamView {self.title or self.view!r}: expected a 2-D block "
                                 f"(n_channels, n_samples), got shape {block.shape}")
        with self._lock:
            if block.shape[0] != self._buf.n_rows:
                raise ParameterError(f"StreamView {self.title or self.view!r}: expected blocks of shape "
                                     f"({self._buf.n_rows}, n_samples), got {block.shape}")
            self._buf.write(block, int(first_sample))
            if self._pacer is None and self._autostart and not self._stop.is_set():
                self._pacer = threading.Thread(target=self._run, name=f"eegkit-view-{self.model_id[:8]}",
                                               daemon=True)
                self._pacer.start()

    def set_status(self, state: str, error=None) -> None:
        """Show the bound stage's health: ``"ok"``, or ``"disabled"`` with its error.

        Parameters
        ----------
        state : {"ok", "disabled"}
        error : str or BaseException, optional
            Shown in the view while the stage is disabled.
        """
        check_option("state", state, ("ok", "disabled"), "StreamView.set_status")
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        self.status = {"state": state, "error": None if error is None else str(error)}

    def set_info(self, info) -> None:
        """Rebind the view to a stream with new metadata (clears its buffer)."""
        info = info if isinstance(info, StreamInfo) else StreamInfo.from_dict(dict(info))
        self.info = info.to_dict()

    def stats(self) -> dict:
        """Counters: frames sent, dropped (browser behind), acked, CPU per frame."""
        costs = np.asarray(self._costs[-600:]) * 1e3
        return {"sent": self._sent, "dropped": self._dropped, "acked": self._acked,
                "in_flight": self._seq - self._acked,
                "median_ms": float(np.median(costs)) if costs.size else None,
                "p99_ms": float(np.percentile(costs, 99)) if costs.size else None,
                "error": self._pacer_error}

    def close(self) -> None:
        """Stop the pacer thread and close the widget."""
        self._closed = True
        self._stop.set()
        for src in getattr(self, "_sources", {}).values():
            src.unsubscribe(self)
        pacer = self._pacer
        if pacer is not None and pacer is not threading.current_thread():
            pacer.join(timeout=2.0)
        super().close()

    # -- internals -----------------------------------------------------------------
    @t.observe("info", "seconds")
    def _layout_changed(self, change):
        """Reallocate buffers when the stream or the window length changes."""
        if getattr(self, "_buf", None) is not None:
            self._alloc()
            if change["name"] == "info" and self.view == "topomap":
                self.positions = topomap_positions(self.info)

    def _alloc(self):
        """Allocate the frame buffer for the current info/seconds."""
        info = StreamInfo.from_dict(self.info)
        if self.frames == "window":
            buf = WindowBuffer(info.n_channels, info.sfreq, self.seconds, self.max_points)
        else:
            n_axis = len(info.axis) if info.kind != "timeseries" and info.axis else 1
            buf = LatestBuffer(info.n_channels, n_axis, self.max_points)
        with self._lock:
            self._buf = buf
            self._full = True

    def _on_msg(self, _widget, content, _buffers):
        """Browser → kernel: acks, a fresh frontend's hello, visibility, a resync request."""
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ack":
            self._acked = max(self._acked, min(int(content.get("seq", 0)), self._seq))
        elif kind == "ready":
            self._acked = self._seq  # frames sent to an earlier frontend will never be acked
            self._full = True
        elif kind == "visibility":
            visible = bool(content.get("visible", True))
            if visible:  # frames sent while no output was on screen are not acked: start afresh
                self._acked = self._seq
                self._full = True
            self._visible = visible
        elif kind == "resync":  # the browser's window does not continue: send it whole
            self._acked = max(self._acked, min(int(content.get("seq", 0)), self._seq))
            self._full = True

    def _tick(self) -> bool:
        """Build and send one frame if there is news and room in flight; True if sent."""
        with self._send_lock:
            return self._send_frame()

    def _send_frame(self) -> bool:
        """Body of :meth:`_tick` (caller holds the send lock)."""
        if self.paused or not self._visible:
            return False
        if self._seq - self._acked >= MAX_UNACKED:
            if self._buf.has_news():
                self._dropped += 1
            return False
        t0 = time.thread_time()
        with self._lock:
            frame = self._buf.build(full=self._full)
        if frame is None:
            return False
        self._full = False
        content, data = frame
        self._seq += 1
        content.update(type="frame", seq=self._seq)
        self.send(content, buffers=[memoryview(data)])
        self._sent += 1
        self._costs.append(time.thread_time() - t0)
        if len(self._costs) > 1200:
            del self._costs[:600]
        return True

    def _run(self):
        """Pacer loop: one tick per 1/fps s; never catches up on missed ticks."""
        next_t = time.monotonic()
        while True:
            next_t += 1.0 / max(self.fps, 0.1)
            delay = next_t - time.monotonic()
            if delay < 0:
                next_t, delay = time.monotonic(), 0.0
            if self._stop.wait(delay):
                return
            try:
                self._tick()
            except Exception as exc:  # a closed comm or a bug: stop sending, keep the reason
                self._pacer_error = f"{type(exc).__name__}: {exc}"
                return


def _view_path(view) -> Path:
    """File of a built-in view name or of a bundle path."""
    if isinstance(view, str) and view in VIEWS:
        return widgets_dir() / f"{view}.js"
    path = Path(view) if isinstance(view, (str, Path)) else None
    if path is None or path.suffix not in (".js", ".mjs"):
        raise option_error("view", view, VIEWS, "StreamView", others="the path of a .js bundle")
    if not path.is_file():
        raise ParameterError(f"StreamView: view bundle {str(path)!r} does not exist")
    return path.resolve()


_SETTINGS = ("scale", "log_scale", "height", "paused", "params", "positions")


def _check_traits(traits):
    """Reject unknown keyword arguments with a spelling hint."""
    for key in traits:
        if key not in _SETTINGS:
            raise TypeError(f"StreamView got an unexpected keyword argument {key!r}."
                            + did_you_mean(key, _SETTINGS + ("frames", "max_points")))
