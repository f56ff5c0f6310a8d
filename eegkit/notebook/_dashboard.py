"""Dashboard: a pipeline in a notebook — one live view per stage, start/stop/reset,
statistics refreshed about once a second, and parameter controls made from the
plugins' manifests.

In a kernel nothing here blocks the kernel for long: the first compilation of the
stages (up to a minute with an empty cache) and Start run in background threads while
the header counts the stages compiled. Each card wraps: the view takes the width and
the controls sit beside it when there is room, under it when there is not.
"""

from __future__ import annotations

import html
import logging
import math
import threading
import weakref

import ipywidgets as w

from .._errors import EegkitError, ParameterError
from ..runtime import _registry

log = logging.getLogger("eegkit")
VIEW_BY_KIND = {"timeseries": "scope", "spectrum": "spectrum", "features": "bars"}
VIEW_MIN = "560px"   # narrower than view + controls: the controls wrap under the view
SIDE_WIDTH = "340px"
DESCRIPTION_WIDTH = "92px"
SLIDER_SPAN = 1000  # int parameters with a wider range get a number box, not a slider
MUTED = "color: var(--jp-ui-font-color2, #616161)"
ERROR = "color: var(--jp-error-color1, #d32f2f)"


_BOARDS = weakref.WeakKeyDictionary()  # pipeline → its dashboard


def _close_board(pipeline):
    """A replaced pipeline's dashboard stops refreshing (its cell output is gone)."""
    board = _BOARDS.pop(pipeline, None)
    if board is not None:
        board.close()


_registry.REPLACED_HOOKS.append(_close_board)

def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets can be displayed)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def dashboard_for(pipeline) -> "Dashboard":
    """The pipeline's dashboard: the last one while its stages are unchanged, else a new one."""
    board = _BOARDS.get(pipeline)
    if board is None or board.closed or board.stages != pipeline.stages:
        if board is not None:
            board.close()
        board = _BOARDS[pipeline] = Dashboard(pipeline)
    return board


def view_for(stage):
    """What shows a stage's output: a built-in view name, a bundle path, or None."""
    spec = stage.code.spec
    view = spec.view
    if view == "none":
        return None
    if view == "ui":
        return str(stage.code.manifest.ui_bundle)
    return view or VIEW_BY_KIND.get(stage.out_info.kind, "scope")


class Dashboard(w.VBox):
    """Live dashboard of a pipeline (an ipywidgets ``VBox``).

    One card per stage: its live view (``StageSpec.view``, else chosen from the
    output kind; ``"ui"`` is the plugin's own bundle), its health and kernel
    timing, and a control per declared parameter. A control change calls
    ``stage.set_params``, which the pipeline applies between two chunks without
    stopping the stream; a rejected value shows its error beside the control.

    Parameters
    ----------
    pipeline : Pipeline
    fps : float
        Frames per second of each view.
    seconds : float
        Time window of the scopes.
    refresh : float
        Seconds between two statistics refreshes (done by a background thread,
        never on the chunk path).
    background : bool, optional
        Compile the stages (first :meth:`Pipeline.open`) and run Start in background
        threads, so the dashboard shows at once with progress in its header. Default:
        inside a Jupyter kernel; elsewhere both happen before returning.
    """

    def __init__(self, pipeline, fps: float = 20.0, seconds: float = 5.0, refresh: float = 1.0,
                 background: bool | None = None):
        self.pipeline = pipeline
        self.closed = False
        self.stages = pipeline.stages
        self.background = in_kernel() if background is None else bool(background)
        self.cards = []
        self.ready = threading.Event()  # set once the cards are built
        self._options = (fps, seconds)
        self._busy = None  # the thread of a background Start, while it runs
        self._notice = None  # the last button error, shown until an action succeeds
        self.start_button = _button("Start", "play", "success", self._on_start)
        self.stop_button = _button("Stop", "stop", "", self._on_stop)
        self.reset_button = _button("Reset", "undo", "", self._on_reset)
        self.run_status = w.HTML(layout=w.Layout(margin="0 0 0 12px"))
        info = pipeline.source.info
        title = w.HTML(f"<b style='font-size:14px'>Pipeline</b> <span style='{MUTED}'>· "
                       f"{html.escape(pipeline.source.type_name)} · {info.n_channels} ch @ "
                       f"{info.sfreq:g} Hz · {len(self.stages)} stages</span>",
                       layout=w.Layout(margin="0 16px 0 0"))
        header = w.HBox([title, self.start_button, self.stop_button, self.reset_button,
                         self.run_status], layout=w.Layout(align_items="center", flex_flow="row wrap",
                                                           padding="4px 0 8px 0"))
        self.header = header
        super().__init__([header], layout=w.Layout(width="100%", padding="4px"))
        self.add_class("eegkit-dashboard")
        self._stop = threading.Event()
        if self.background and not pipeline.is_open:
            threading.Thread(target=self._build, daemon=True, name="eegkit-compile").start()
        else:
            self._build()
        self.refresh()
        self._thread = threading.Thread(target=self._loop, args=(refresh,), daemon=True,
                                        name="eegkit-dashboard")
        self._thread.start()

    def _build(self):
        """Open (compile) the pipeline if needed, then make one card per stage."""
        try:
            if not self.pipeline.is_open:
                self.pipeline.open()
            if not self.closed:
                self.cards = [_StageCard(self, stage, *self._options) for stage in self.stages]
                self.children = [self.header, *[c.box for c in self.cards]]
        except EegkitError as exc:
            self._notice = str(exc)
        finally:
            self.ready.set()
        if self.background:
            self.refresh()

    def card(self, id: str, timeout: float = 600.0) -> "_StageCard":
        """The card of stage ``id`` (its ``view``, ``controls``, labels); waits while the
        stages compile."""
        self.ready.wait(timeout)
        for card in self.cards:
            if card.stage.id == id:
                return card
        raise KeyError(f"no stage '{id}' in this dashboard")

    # -- buttons -------------------------------------------------------------------
    def _on_start(self, _=None):
        """Start (continuing from the last stop, or from the start after the source ended)."""
        runner = getattr(self.pipeline, "runner", None)
        options = {}
        if runner is not None:
            options = dict(chunk=runner.chunk, realtime=runner.realtime, duration=runner.duration,
                           overrun=runner.overrun, queue_chunks=runner.queue_chunks)
        resume = runner is None or runner.state not in ("finished", "error")
        self._guard(lambda: self.pipeline.start(resume=resume, **options), background=True)

    def _on_stop(self, _=None):
        self._guard(self.pipeline.stop)

    def _on_reset(self, _=None):
        """Rewind the source and reset every stage; keep running if it was."""
        runner = getattr(self.pipeline, "runner", None)
        if runner is not None and runner.running:
            self._guard(lambda: self._restart(runner))
            return

        self._guard(self.pipeline.rewind)

    def _restart(self, runner):
        """Restart from the beginning with the options of ``runner``."""
        self.pipeline.stop()
        self.pipeline.start(chunk=runner.chunk, realtime=runner.realtime, duration=runner.duration,
                            overrun=runner.overrun, queue_chunks=runner.queue_chunks)

    def _guard(self, fn, background=False):
        """Run a button action; show its error in the header instead of raising. With
        ``background`` (and a background dashboard) it runs in a thread: a Start that
        compiles must not hold the kernel, whose main thread handles the widgets."""
        if background and self.background:
            if self._busy is not None and self._busy.is_alive():
                return
            self._busy = threading.Thread(target=self._guard, args=(fn,), daemon=True,
                                          name="eegkit-start")
            self._busy.start()
            self.refresh()
            return
        try:
            fn()
        except EegkitError as exc:
            self._notice = str(exc)
        else:
            self._notice = None
        self.refresh()

    # -- statistics ----------------------------------------------------------------
    def _loop(self, interval):
        # faster while compiling, so the stage count moves
        while not self._stop.wait(min(interval, 0.25) if self._compiling() else interval):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - never let a display refresh kill the thread
                log.debug("eegkit: dashboard refresh failed: %r", exc)

    def _compiling(self):
        """True while the stages compile (opening the stream) or a Start is on its way."""
        return (getattr(self.pipeline, "opening", None) is not None or not self.ready.is_set()
                or (self._busy is not None and self._busy.is_alive()))

    def refresh(self) -> None:
        """Update the run status, per-stage statistics, health and controls."""
        runner = getattr(self.pipeline, "runner", None)
        notice = (f"<br><span style='{ERROR}'>{html.escape(self._notice)}</span>"
                  if self._notice else "")
        running = runner is not None and runner.running
        progress = self._progress_text()
        self.run_status.value = (progress or _run_text(runner)) + notice
        running = running or (self._busy is not None and self._busy.is_alive())
        self.start_button.disabled = running
        self.stop_button.disabled = not running
        stats = {s["id"]: s for s in self.pipeline.stats()}
        for card in self.cards:
            card.refresh(stats.get(card.stage.id))

    def _progress_text(self):
        """'compiling 3/5 stages…' while the stages compile, else ''."""
        opening = getattr(self.pipeline, "opening", None)
        if opening is None and self.ready.is_set() and not (self._busy and self._busy.is_alive()):
            return ""
        done, total = opening if opening is not None else (0, len(self.stages))
        what = "compiling" if opening is not None or not self.ready.is_set() else "starting"
        text = f"{what} {done}/{total} stages…" if what == "compiling" else "starting…"
        return f"<span class='eegkit-progress' style='{MUTED}'>⏳ {text}</span>"

    def close(self):
        """Stop the refresh thread, detach and close every view."""
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        for card in self.cards:
            card.close()
        super().close()


class _StageCard:
    """One stage: the view, then name, health, timing and controls (beside the view when
    the card is wide enough, under it otherwise)."""

    def __init__(self, board, stage, fps, seconds):
        self.board, self.stage = board, stage
        self.view, self.feed = None, None
        view = view_for(stage)
        left = w.HTML(f"<div style='{MUTED};padding:8px'>no view (view = \"none\")</div>")
        if view is not None:
            from ._widget import StreamView

            try:
                self.view = StreamView(stage.out_info, view=view, fps=fps, seconds=seconds,
                                       title=stage.id, params=_plain(stage.params))
            except (EegkitError, OSError) as exc:
                left = w.HTML(f"<div style='{ERROR};padding:8px'>view unavailable: "
                              f"{html.escape(str(exc))}</div>")
            else:
                self.feed = _Feed(stage, self.view)
                board.pipeline.tap(stage.id, self.feed)
                left = self.view
        # grows far more than the controls: on a wide card nearly all spare width is the view's
        left.layout.flex = f"100 1 {VIEW_MIN}"
        left.layout.min_width = "0"
        left.add_class("eegkit-card-view")
        self.title = w.HTML()
        self.timing = w.HTML()
        self.error = w.HTML(layout=w.Layout(display="none"))
        self.enable_button = _button("Re-enable", "refresh", "warning", self._on_enable)
        self.enable_button.tooltip = "set the stage up again (its state is reset) and run it"
        self.enable_button.layout.display = "none"
        self.spec = stage.code.spec
        self.controls = {}
        self.control_box = w.VBox(layout=w.Layout(margin="6px 0 0 0"))
        self._build_controls()
        side = w.VBox([self.title, self.timing, self.error, self.enable_button, self.control_box],
                      layout=w.Layout(flex=f"1 1 {SIDE_WIDTH}", min_width="0",
                                      padding="2px 6px 0 12px"))
        side.add_class("eegkit-card-side")
        self.box = w.HBox([left, side], layout=w.Layout(
            width="100%", flex_flow="row wrap", align_items="flex-start", margin="0 0 10px 0",
            padding="0 0 10px 0", border_bottom="1px solid var(--jp-border-color2, #e0e0e0)"))
        self.box.add_class("eegkit-card")
        self._state = None

    def _on_enable(self, _=None):
        """Re-enable the disabled stage between two chunks; a new failure shows on the card."""
        self.board._guard(self.enable)

    def enable(self) -> None:
        """Set the stage up again between two chunks (``stage.enable()``) and re-plan."""
        pipeline = self.board.pipeline
        with pipeline.between_chunks():
            old = self.stage.out_info
            self.stage.enable()
            if pipeline.is_open:
                new = self.stage.out_info
                changed = old is None or (new is not None and not new.same_layout(old))
                pipeline.reconfigure(layout_changed=changed)  # stages after it see its output again

    def _build_controls(self):
        in_info = self.stage.in_info
        nyquist = in_info.sfreq / 2 if in_info is not None else None
        self.controls = {name: _Control(self, spec, self.stage.params[name], nyquist)
                         for name, spec in self.spec.params.items()}
        self.control_box.children = [c.box for c in self.controls.values()]

    def set_param(self, name, value) -> None:
        """Ask the stage for a new value (applied between two chunks); raise if rejected."""
        # on top of a change still waiting for a chunk boundary, so two quick edits both count
        self.stage.set_params(**{name: value})

    def refresh(self, stats):
        """Health, timing and parameters, from the stage's counters."""
        stage = self.stage
        if stage.code.spec is not self.spec:  # hot reload: new declarations
            self.spec = stage.code.spec
            self._build_controls()
        ok = stage.status == "ok"
        dot = "#2e7d32" if ok else "#d32f2f"
        desc = html.escape(self.spec.description)
        flag = "" if ok else f" <b style='{ERROR}'>disabled</b>"
        self.title.value = (f"<div style='line-height:1.35'><span style='color:{dot}'>●</span> "
                            f"<b>{html.escape(stage.id)}</b> <code style='font-size:11px'>"
                            f"{html.escape(stage.type)}</code>{flag}<br>"
                            f"<span style='{MUTED};font-size:11px'>{desc}</span></div>")
        self.timing.value = _timing_text(stats, stage)
        problem = stage.error if not ok else stage.last_error
        self.error.value = (f"<div style='{ERROR};font-size:12px;white-space:pre-wrap'>"
                            f"{html.escape(problem)}</div>" if problem else "")
        self.error.layout.display = None if problem else "none"
        self.enable_button.layout.display = None if not ok else "none"
        if self.view is not None:
            state = (stage.status, stage.error)
            if state != self._state:
                self._state = state
                self.view.set_status("ok" if ok else "disabled", None if ok else stage.error)
            params = _plain(stage.params)
            if params != self.view.params:
                self.view.params = params
        if not stage.has_pending:
            for name, control in self.controls.items():
                if name in stage.params:
                    control.show(stage.params[name])

    def close(self):
        pipeline = self.board.pipeline
        if self.feed is not None and self.stage.id in pipeline:
            pipeline.untap(self.stage.id, self.feed)
        if self.view is not None:
            self.view.close()


class _Feed:
    """Tap that feeds a view, rebinding it when the stage's output layout changes."""

    def __init__(self, stage, view):
        self.stage, self.view, self.info = stage, view, stage.out_info

    def __call__(self, block, first_sample):
        info = self.stage.out_info
        if info is not self.info:
            if info != self.info:
                self.view.set_info(info)
            self.info = info
        self.view.feed(block, first_sample)


class _Control:
    """One parameter control (from its ParamSpec) with its error line."""

    def __init__(self, card, spec, value, nyquist):
        self.card, self.spec = card, spec
        self._quiet = False
        self.widget = _input_for(spec, value, nyquist)
        self.widget.tooltip = spec.description or None
        self.widget.layout.flex = "1 1 auto"
        self.widget.layout.width = "100%"
        self.widget.style.description_width = DESCRIPTION_WIDTH
        unit = w.HTML(f"<span style='{MUTED};font-size:12px'>{html.escape(spec.unit)}</span>",
                      layout=w.Layout(width="54px", flex="0 0 auto", margin="0 0 0 4px"))
        self.message = w.HTML(layout=w.Layout(display="none", margin=f"0 0 4px {DESCRIPTION_WIDTH}"))
        self.box = w.VBox([w.HBox([self.widget, unit], layout=w.Layout(align_items="center",
                                                                       width="100%")),
                           self.message], layout=w.Layout(width="100%"))
        self.widget.observe(self._changed, names="value")

    def _changed(self, change):
        if self._quiet:
            return
        try:
            value = _parse(self.spec, change["new"])
            self.card.set_param(self.spec.name, value)
        except ParameterError as exc:
            self._error(_short(str(exc), self.card.stage))
            self.show(self.card.stage.params[self.spec.name])  # back to what runs
            return
        self._error(None)

    def _error(self, text):
        self.message.value = (f"<span style='{ERROR};font-size:11px;line-height:1.3'>"
                              f"{html.escape(text)}</span>" if text else "")
        self.message.layout.display = None if text else "none"

    @property
    def error(self) -> str:
        """The error shown beside the control ('' when none)."""
        return html.unescape(_strip_tags(self.message.value))

    def show(self, value):
        """Display ``value`` without calling set_params."""
        shown = _format(self.spec, value)
        if self.widget.value != shown:
            self._quiet = True
            try:
                self.widget.value = shown
            finally:
                self._quiet = False


def _input_for(spec, value, nyquist):
    """An ipywidget for a ParamSpec: slider, number box, dropdown, checkbox or text."""
    name, kind = spec.name, spec.type
    common = dict(description=name, continuous_update=False)
    if spec.choices is not None:
        return w.Dropdown(options=list(spec.choices), value=value, description=name)
    if kind == "bool":
        return w.Checkbox(value=bool(value), description=name, indent=False)
    if kind in ("int", "float"):
        lo, hi = spec.min, spec.max
        if hi is None and spec.unit == "Hz" and nyquist is not None:
            hi = nyquist  # frequencies: the Nyquist frequency bounds the slider
        if lo is not None and hi is not None and hi > lo and lo <= value <= hi:
            if kind == "int":
                if hi - lo > SLIDER_SPAN:
                    return w.BoundedIntText(value=int(value), min=int(lo), max=int(hi), **common)
                return w.IntSlider(value=int(value), min=int(lo), max=int(hi), **common)
            step = _nice_step((hi - lo) / 1000)
            return w.FloatSlider(value=float(value), min=float(lo), max=float(hi), step=step,
                                 readout_format=".4g", **common)
        return (w.IntText if kind == "int" else w.FloatText)(value=value, **common)
    return w.Text(value=_format(spec, value), **common)


def _format(spec, value):
    """Python value → what the control shows."""
    if spec.type.startswith("list["):
        return ", ".join(str(v) for v in value)
    return value


def _parse(spec, shown):
    """What the control shows → Python value (lists are comma-separated text)."""
    if not spec.type.startswith("list["):
        return shown
    item = spec.type[5:-1]
    parts = [p.strip().strip("'\"") for p in str(shown).split(",") if p.strip()]
    out = []
    for i, p in enumerate(parts):
        try:
            out.append(int(p) if item == "int" else float(p) if item == "float" else p)
        except ValueError:
            raise ParameterError(f"parameter '{spec.name}' expects a comma-separated list of "
                                 f"{item}, got {p!r} at position {i}") from None
    return out


def _nice_step(x):
    """Smallest 1-2-5 × 10^k >= x."""
    if not x > 0:
        return 0.1
    p = 10 ** math.floor(math.log10(x))
    return next(m * p for m in (1, 2, 5, 10) if m * p >= x * (1 - 1e-9))


def _short(message, stage):
    """A parameter error without the ``stage 'x' (type): `` prefix (the card says it)."""
    prefix = f"stage '{stage.id}' ({stage.type}): "
    return message[len(prefix):] if message.startswith(prefix) else message


def _strip_tags(text):
    import re

    return re.sub(r"<[^>]+>", "", text)


def _plain(params):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _button(label, icon, style, callback):
    button = w.Button(description=label, icon=icon, button_style=style,
                      layout=w.Layout(width="auto", margin="0 4px 0 0"))
    button.on_click(callback)
    return button


def _run_text(runner):
    """One line about the background run."""
    if runner is None:
        return f"<span style='{MUTED}'>not running — press Start or call <code>start()</code></span>"
    s = runner.stats()
    colour = {"running": "#2e7d32", "error": "#d32f2f"}.get(s["state"], "#616161")
    lag = "-" if s["lag_ms"] is None else f"{s['lag_ms']:.1f} ms"
    parts = [f"<b style='color:{colour}'>{s['state']}</b>", f"{s['seconds']:.1f} s of data",
             f"{s['chunks']} chunks", f"lag {lag}", f"{s['dropped_chunks']} dropped"]
    text = f"<span style='{MUTED}'>" + " · ".join(parts) + "</span>"
    if s["error"]:
        text += f"<br><span style='{ERROR}'>{html.escape(s['error'])}</span>"
    return text


def _timing_text(stats, stage):
    """Kernel timing line of a stage."""
    if not stats or not stats["calls"]:
        body = "no chunks yet"
    elif stats.get("median_us") is None:
        fused = [f for f in stats.get("fused_with") or [] if f != stage.id]
        body = (f"fused with {', '.join(fused)} (timed there)" if fused else "not timed") + \
            f" · {stats['calls']} chunks"
    else:
        body = (f"{stats['median_us']:.0f} µs median · {stats['p99_us']:.0f} µs p99 per chunk · "
                f"{stats['calls']} chunks")
    return f"<div style='{MUTED};font-size:11px;line-height:1.4'>{body}<br>{_shape_text(stage.out_info)}</div>"


def _shape_text(info):
    """'out: 8 ch · 250 Hz' or 'out: 8 ch × 129 bins · 7.81 per s'."""
    if info is None:
        return ""
    if info.kind == "timeseries" or not info.axis:
        return f"out: {info.n_channels} ch · {info.sfreq:.4g} Hz"
    n_axis = len(info.axis)
    noun = ("bin" if info.kind == "spectrum" else "feature") + ("s" if n_axis != 1 else "")
    return (f"out: {info.n_channels // n_axis} ch × {n_axis} {noun} · "
            f"{info.sfreq:.3g} {'spectra' if info.kind == 'spectrum' else 'values'} per s")
