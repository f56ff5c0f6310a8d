"""Pipeline: a DAG of stages fed by one source, run offline or chunk by chunk."""

from __future__ import annotations

import threading

import numpy as np

from .._errors import ParameterError, PipelineError
from .._info import StreamInfo
from ._plan import Plan
from ._stage import Stage
from ..plugin import default_manager
from ._registry import claim_name, register
from ..sources import Source, make_source

SOURCE_ID = "source"
OFFLINE_BLOCK = 65536
PARALLEL_MIN = 4096  # samples per block from which multi-threaded kernels pay off


class Pipeline:
    """Stages from plugins, chained into a DAG and fed by a source.

    Parameters
    ----------
    source : Source or dict, optional
        Where samples come from when the pipeline runs by itself (:meth:`run`,
        ``eegkit run``): a Source, or a spec ``{"type": "synthetic", "params": {...}}``.
        Default: the built-in synthetic EEG.
    plugins : PluginManager, optional
        Where stage types are looked up (default: the process-wide manager).
    name : str, optional
        A name for this pipeline in the process. Building another pipeline with the
        same name stops this one's background run (:meth:`start`), so re-running the
        cell that builds it leaves one run going.

    Examples
    --------
    >>> p = Pipeline()
    >>> p.add("filters.bandpass", id="bp", low=1.0, high=40.0)  # doctest: +SKIP
    >>> out = p.process(x, sfreq=250.0)                         # doctest: +SKIP
    >>> out["bp"].shape                                         # doctest: +SKIP
    """

    def __init__(self, source=None, plugins=None, fuse: bool = True, name: str | None = None):
        self.plugins = plugins or default_manager()
        self.fuse = fuse
        self.source_spec = None
        self._source = None
        self.set_source(source)
        self._stages = {}
        self._sinks = []
        self._info = None
        self._lock = threading.RLock()
        self._changed = False
        self._plans = {}
        self._last_plan = None
        self._last_outputs = None
        self._parallel = False
        self.first_sample = 0
        self.last_run = {}  # timing of the last run(): samples, setup_s, process_s
        self.runner = None  # the background run of start(), if any
        self.name = None
        self.opening = None  # (stages set up, stages) while open() compiles, for progress displays
        register(self)  # hot reload, the file watcher and the notebook find live pipelines
        if name is not None:
            claim_name(self, name)  # the pipeline that had this name stops

    # -- building ----------------------------------------------------------------
    def set_source(self, source) -> None:
        """Set the source used by :meth:`run` (a Source, a spec dict, or None)."""
        if source is None:
            self._source, self.source_spec = None, None
        elif isinstance(source, Source):
            self._source = source
            try:
                self.source_spec = source.to_spec()
            except PipelineError:
                self.source_spec = None
        elif isinstance(source, dict):
            self._source, self.source_spec = None, dict(source)
            source = make_source(self.source_spec, connect=False)  # validate now
            if source is not None:
                source.close()
        else:
            raise PipelineError(f"source must be a Source or a spec dict, got {type(source).__name__}")

    @property
    def source(self) -> Source:
        """The pipeline's source (built from its spec on first use)."""
        if self._source is None:
            spec = self.source_spec or {"type": "synthetic", "params": {}}
            self._source = make_source(spec)
        return self._source

    def add(self, type: str, id: str | None = None, input: str | None = None,
            isolation: str | None = None, isolation_timeout: float | None = None,
            **params) -> Stage:
        """Add a stage.

        Parameters
        ----------
        type : str
            Stage type, ``"<plugin>.<stage>"`` (see ``eegkit plugins list``).
        id : str, optional
            Unique id (default: derived from the type).
        input : str, optional
            Id of an earlier stage, or ``"source"``. Default: the last stage added.
        isolation : {"none", "process"}, optional
            ``"process"`` runs the stage in a child process fed through shared memory,
            so a crash or a hang disables only this stage (README, "Isolation").
            Default: the plugin manifest's choice for that stage.
        isolation_timeout : float, optional
            Per-chunk deadline in seconds of an isolated stage (default 1 s).
        **params
            Stage parameters, checked against the plugin's declarations.

        Returns
        -------
        Stage
        """
        with self._lock:
            id = self._new_id(type, id)
            where = f"stage '{id}' ({type})"
            if input is None:
                input = next(reversed(self._stages), SOURCE_ID)
            self._check_input(input, where)
            from ._isolate import load_code

            code = load_code(self.plugins, type, where, isolation, isolation_timeout)
            stage = Stage(code, id=id, input=input, params=params)
            stage.on_change = self._mark_changed
            self._stages[id] = stage
            if self._info is not None:
                self.open(self._info)
            return stage

    def remove(self, id: str) -> None:
        """Remove a stage; stages that took it as input now take its input."""
        with self._lock:
            stage = self[id]
            del self._stages[id]
            for other in self._stages.values():
                if other.input == id:
                    other.input = stage.input
            self._sinks = [s for s in self._sinks if s["input"] != id]
            stage.code.close()  # an isolated stage's child process
            if self._info is not None:
                self.open(self._info)

    def add_sink(self, type: str, input: str, params: dict | None = None, **kwargs) -> None:
        """Send the output of stage ``input`` (or ``"source"``) to a sink while running
        (:meth:`run`, ``eegkit run``). Types: npz, record, lsl, features.

        Sink parameters are given as keywords, or as the ``params`` dict for those
        named like this method's own arguments (the LSL sink's ``type``)."""
        from ..sinks import make_sink

        params = {**(params or {}), **kwargs}

        self._check_input(input, f"sink '{type}'")
        make_sink(type, params, f"sink '{type}' on '{input}'")  # validate now
        self._sinks.append({"type": type, "input": input, "params": dict(params)})

    @property
    def sink_specs(self) -> list:
        """The sinks added with :meth:`add_sink`, as ``{"type", "input", "params"}`` dicts."""
        return [dict(spec, params=dict(spec["params"])) for spec in self._sinks]

    def _new_id(self, type, id):
        if id is None:
            base = str(type).rsplit(".", 1)[-1]
            id, n = base, 2
            while id in self._stages:
                id, n = f"{base}_{n}", n + 1
        if not isinstance(id, str) or not id or id == SOURCE_ID or not id.replace("_", "a").replace("-", "a").isalnum():
            raise PipelineError(f"stage id must be a non-empty name of letters, digits, '_' or '-', "
                                f"other than 'source'; got {id!r}")
        if id in self._stages:
            raise PipelineError(f"stage id '{id}' is already used in this pipeline")
        return id

    def _check_input(self, input, where):
        if input != SOURCE_ID and input not in self._stages:
            known = ", ".join([SOURCE_ID, *self._stages])
            raise PipelineError(f"{where}: input '{input}' is not 'source' or an earlier stage "
                                f"id; earlier ids are: {known}")

    def __getitem__(self, id) -> Stage:
        try:
            return self._stages[id]
        except KeyError:
            raise KeyError(f"no stage '{id}' in this pipeline; stages are: "
                           f"{', '.join(self._stages) or 'none'}") from None

    def __contains__(self, id):
        return id in self._stages

    @property
    def stages(self) -> list:
        """Stages in order."""
        return list(self._stages.values())

    def stage_ids(self, ids=None) -> list:
        """``ids`` checked to name stages of this pipeline (None: every stage, in order)."""
        if ids is None:
            return list(self._stages)
        for id in ids:
            self[id]
        return list(ids)

    def between_chunks(self):
        """Context manager: while held, no chunk is being processed (``with
        p.between_chunks(): ...``). Reentrant; hold it briefly."""
        return self._lock

    @property
    def is_open(self) -> bool:
        """True once a stream was opened (:meth:`open`, :meth:`push`, :meth:`run`...)."""
        return self._info is not None

    # -- streaming ---------------------------------------------------------------
    def open(self, info: StreamInfo | None = None) -> None:
        """Start a stream described by ``info`` (default: the source's): configure
        every stage and reset all state.

        The plans for every output and for the last stages only (``outputs`` naming
        the stages no other stage reads) are built and compiled now, so the first
        :meth:`push` compiles nothing."""
        with self._lock:
            self._open(info)
            self.plan(None)
            readers = {s.input for s in self._stages.values()}
            self.plan([id for id in self._stages if id not in readers])

    def _open(self, info) -> None:
        """:meth:`open` without preparing plans (an offline run plans its own)."""
        with self._lock:
            if info is None:
                info = self.source.info
            if not isinstance(info, StreamInfo):
                raise ParameterError(f"open() expects a StreamInfo, got {type(info).__name__}")
            self._info = info
            self._dtype, self._n_channels = np.dtype(info.dtype), info.n_channels
            infos = {SOURCE_ID: info}
            stages = list(self._stages.values())
            try:
                for i, stage in enumerate(stages):
                    self.opening = (i, len(stages))
                    stage.apply_pending()
                    infos[stage.id] = stage.configure(infos[stage.input])
            finally:
                self.opening = None
            self._build_plan()
            self.first_sample = 0

    def rewind(self) -> None:
        """Back to the source's first sample (a replayable source; a live one goes on)
        and a fresh stream: every stage set up again, its state reset."""
        source = self.source
        if not source.live:
            try:
                source.reset()
            except NotImplementedError:
                pass
        self.open(source.info)

    def _build_plan(self):
        """Forget cached plans; the next chunk plans again."""
        self._forget_plans()
        self._changed = False

    def _forget_plans(self):
        self._plans = {}
        self._last_plan = None

    def plan(self, outputs=None):
        """The execution plan keeping ``outputs`` (stage ids; None = every stage) intact.

        Stages nobody observes may be fused or run in place (README, "Performance").
        """
        key = (None if outputs is None else frozenset(outputs), self._parallel)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = Plan(list(self._stages.values()), key[0], fuse=self.fuse)
        return plan

    def prepare(self, outputs=None) -> None:
        """Open the stream if needed and build (and compile) the plan for ``outputs``
        now, so the first chunk pays no compile time."""
        with self._lock:
            if self._info is None:
                self.open()
            if self._changed:
                self.reconfigure()
            self.plan(outputs)

    def _mark_changed(self):
        self._changed = True

    def reconfigure(self, layout_changed: bool = False) -> None:
        """Between two chunks (hold :meth:`between_chunks`): apply waiting parameter
        changes, set up again every stage whose input description changed, plan again.

        ``layout_changed`` says a stage's output description was replaced from outside
        (hot reload), so stages downstream of it are set up again.
        """
        infos = {SOURCE_ID: self._info}
        relayout = layout_changed
        for stage in self._stages.values():
            if relayout and stage.input in infos and infos[stage.input] is not stage.in_info:
                stage.configure(infos[stage.input])
            elif stage.has_pending and stage.apply_pending():
                relayout = True
            infos[stage.id] = stage.out_info
        self._build_plan()

    def push(self, chunk, copy: bool = True, outputs=None) -> dict:
        """Run one streaming step.

        Parameters
        ----------
        chunk : array, shape (n_channels, n_samples)
        copy : bool
            Return copies (default). With False the arrays are views into buffers
            that the next call overwrites.
        outputs : list of str, optional
            Stage ids to return (default: every stage). Naming fewer lets the
            pipeline fuse and run in place the stages in between.

        Returns
        -------
        dict
            Stage id → output block of this chunk.
        """
        with self._lock:
            if self._info is None:
                self.open()
            outs = self.step(chunk, outputs)
            slots = self._last_plan.slots
            wanted = self._stages if outputs is None else outputs
            return {id: outs[slots[id]].copy() if copy else outs[slots[id]] for id in wanted}

    @property
    def slots(self) -> dict:
        """Stage id → index in the list :meth:`step` returned last."""
        return self._last_plan.slots

    def step(self, chunk, outputs=None) -> list:
        """One chunk through every stage (hold :meth:`between_chunks`); return the
        outputs by slot (see :attr:`slots`; None for stages inside a fused chain).
        The arrays are buffers that the next step overwrites. :meth:`push` is the
        convenient form."""
        if self._changed:
            self.reconfigure()
        info = self._info
        x = chunk
        dtype = self._dtype  # np.dtype: comparing with info.dtype (a str) parses it per chunk
        if type(x) is not np.ndarray or x.dtype != dtype:
            x = np.asarray(chunk, dtype=dtype)
        if x.ndim != 2 or x.shape[0] != self._n_channels:
            raise ParameterError(f"chunk must have shape ({info.n_channels}, n_samples) for this "
                                 f"stream, got {x.shape}")
        plan = self._last_plan
        if plan is None or outputs != self._last_outputs:
            plan = self._last_plan = self.plan(outputs)
            self._last_outputs = None if outputs is None else list(outputs)
        outs = plan.run(x)
        self.first_sample += x.shape[1]
        return outs

    def _forget_plans_keep_pending(self):
        self._forget_plans()
        if any(stage.has_pending for stage in self._stages.values()):
            self._changed = True  # a parameter change still waits for a chunk boundary

    def tap(self, id: str, fn) -> None:
        """Call ``fn(block, first_sample)`` with stage ``id``'s output after every chunk.

        ``block`` is a view valid only during the call: copy what you keep. A tap
        that raises is removed and the error logged.
        """
        with self._lock:
            self[id].taps.append(fn)
            self._forget_plans_keep_pending()  # re-plan: a tapped stage keeps its output

    def untap(self, id: str, fn) -> None:
        """Remove a tap added with :meth:`tap`."""
        with self._lock:
            taps = self[id].taps
            if fn in taps:
                taps.remove(fn)
            self._forget_plans_keep_pending()  # re-plan: a tapped stage keeps its output

    def info_of(self, id: str) -> StreamInfo:
        """Output StreamInfo of stage ``id`` (or of ``"source"``)."""
        if self._info is None:
            self.open()
        return self._info if id == SOURCE_ID else self[id].out_info

    # -- offline -------------------------------------------------------------------
    def process(self, data, sfreq=None, ch_names=None, outputs=None,
                block: int = OFFLINE_BLOCK) -> dict:
        """Run offline on a whole recording, from a fresh state.

        Gives the same numbers as :meth:`open` followed by :meth:`push` in chunks.

        Parameters
        ----------
        data : array (n_channels, n_samples) or mne.io.Raw
        sfreq : float
            Sampling rate (taken from ``data.info`` for an MNE Raw).
        ch_names : list of str, optional
        outputs : list of str, optional
            Stage ids to return (default: every stage).
        block : int
            Samples per kernel call; bounds memory for long recordings.

        Returns
        -------
        dict
            Stage id → output array of the whole recording.
        """
        data, info = _as_array(data, sfreq, ch_names)
        with self._lock:
            self._open(info)
            wanted = self.stage_ids(outputs)
            n = data.shape[1]
            self._use_parallel(min(block, n) >= PARALLEL_MIN and info.n_channels > 1)
            # outputs as long as the input are written in place; others are gathered
            result = {id: np.empty((self[id].out_info.n_channels, n), self[id].out_info.dtype)
                      for id in wanted if self._source_length(id)}
            parts = {id: [] for id in wanted if id not in result}
            try:
                for start in range(0, max(n, 1), block):
                    outs = self.step(data[:, start:start + block], wanted)
                    slots = self._last_plan.slots
                    for id, arr in result.items():
                        out = outs[slots[id]]
                        arr[:, start:start + out.shape[1]] = out
                    for id, p in parts.items():
                        p.append(outs[slots[id]].copy())
            finally:
                self._use_parallel(False)
            result.update({id: _concat(p, self[id].out_info) for id, p in parts.items()})
            return {id: result[id] for id in wanted}

    def _source_length(self, id) -> bool:
        """True when every block of stage ``id`` is as long as the input block (every
        stage from the source to it keeps the length)."""
        while id != SOURCE_ID:
            stage = self[id]
            if not stage.keeps_length:
                return False
            id = stage.input
        return True

    def _use_parallel(self, on: bool) -> None:
        """Switch kernels that loop with ``prange`` to their multi-threaded build (large
        offline blocks: channels spread over the cores) or back (streaming)."""
        self._parallel = on
        self._last_plan = None
        for stage in self._stages.values():
            stage.kernel = stage.code.parallel if on else None

    def run(self, duration: float | None = None, chunk: int = 32, realtime: bool = False,
            outputs=None, collect: bool = True, progress=None) -> dict:
        """Run on the pipeline's source, as a stream, in this thread.

        Parameters
        ----------
        duration : float, optional
            Seconds of data to process (default: the whole source; required for
            unbounded sources).
        chunk : int
            Samples per streaming step.
        realtime : bool
            Pace a replayable source to real time (live sources are never paced).
        outputs : list of str, optional
            Stage ids to collect (default: every stage).
        collect : bool
            Keep and return the outputs (turn off for long runs with sinks).
        progress : callable, optional
            Called about twice a second with ``(samples_done, samples_total)``.

        Returns
        -------
        dict
            Stage id → output array (empty when ``collect`` is False).
        """
        from ._run import run_source

        return run_source(self, duration=duration, chunk=chunk, realtime=realtime,
                          outputs=outputs, collect=collect, progress=progress)

    # -- live (background thread) and notebook -------------------------------------------
    def start(self, chunk: int = 32, realtime: bool = True, duration: float | None = None,
              overrun: str = "drop-oldest", queue_chunks: int = 64, resume: bool = False):
        """Run from the source in background threads (the notebook stays usable).

        Parameters
        ----------
        chunk : int
            Samples per streaming step.
        realtime : bool
            Pace a replayable source (synthetic, file, array) to real time. Live
            sources (LSL, boards) are never paced: they arrive in real time already.
        duration : float, optional
            Seconds of data after which the run ends by itself (default: until the
            source ends, or :meth:`stop`).
        overrun : {"drop-oldest", "block"}
            What happens when ``queue_chunks`` chunks wait and the source has another:
            drop the oldest waiting chunk (counted in ``runner.stats()["dropped_chunks"]``;
            right for live sources, where falling behind is worse than a gap), or make
            the reader wait (no data lost; right for replaying a recording). A run
            with a recording sink never drops: it stops with an error instead.
        queue_chunks : int
            Chunks that may wait between the source and the pipeline.
        resume : bool
            Continue from where the last run stopped (source position and stage
            state kept) instead of rewinding the source and resetting every stage.

        Returns
        -------
        Runner
            Also kept as ``pipeline.runner``: ``runner.stats()`` (chunks, drops, lag),
            ``runner.state``, ``runner.join()``, ``runner.stop()``.
        """
        from ._runner import Runner

        if self.runner is not None and self.runner.running:
            raise PipelineError("this pipeline is already running; call stop() first")
        self.runner = Runner(self, chunk=chunk, realtime=realtime, duration=duration,
                             overrun=overrun, queue_chunks=queue_chunks)
        return self.runner.start(resume=resume)

    def stop(self) -> None:
        """Stop the background run started by :meth:`start`, cleanly (no-op when none runs)."""
        if self.runner is not None:
            self.runner.stop()

    # -- reporting -------------------------------------------------------------------
    def stats(self) -> list:
        """Per-stage call count, median and p99 kernel time per chunk (µs), errors."""
        return [s.stats() for s in self._stages.values()]

    def status(self) -> list:
        """Per-stage health: status, error and traceback of disabled stages."""
        return [s.status_dict() for s in self._stages.values()]

    def __repr__(self):
        chain = ", ".join(f"{s.id}<-{s.input}:{s.type}" for s in self._stages.values())
        return f"<Pipeline [{chain}]>"

    # -- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The pipeline as a JSON-able document (see :meth:`to_json`)."""
        from ._document import pipeline_to_dict

        return pipeline_to_dict(self)

    def to_json(self, path=None) -> str:
        """Write the pipeline as JSON (to ``path`` when given); return the text."""
        from ._document import dump

        return dump(self.to_dict(), path)

    @classmethod
    def from_dict(cls, doc: dict, plugins=None, where: str = "pipeline") -> "Pipeline":
        """Build a pipeline from a document made by :meth:`to_dict`, validating it all."""
        from ._document import pipeline_from_dict

        return pipeline_from_dict(cls, doc, plugins, where)

    @classmethod
    def from_json(cls, path_or_text, plugins=None) -> "Pipeline":
        """Load a pipeline from a JSON file (or JSON text); never runs code from it."""
        from ._document import load

        doc, where = load(path_or_text)
        return cls.from_dict(doc, plugins, where)


def _concat(parts, info):
    if not parts:
        return np.zeros((info.n_channels, 0), dtype=info.dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _as_array(data, sfreq, ch_names):
    """Array and StreamInfo from an array or an mne.io.Raw."""
    if hasattr(data, "get_data") and hasattr(data, "info"):
        raw = data
        info = StreamInfo(sfreq=raw.info["sfreq"], ch_names=tuple(raw.ch_names),
                          ch_types=tuple(raw.get_channel_types()))
        return np.ascontiguousarray(raw.get_data()), info
    if sfreq is None:
        raise ParameterError("process(): give sfreq= for array input")
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ParameterError(f"process(): data must be 2-D (n_channels, n_samples), got shape {arr.shape}")
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    if ch_names is None:
        ch_names = [f"ch{i}" for i in range(arr.shape[0])]
    if len(ch_names) != arr.shape[0]:
        raise ParameterError(f"process(): {len(ch_names)} ch_names for {arr.shape[0]} channels (rows)")
    return arr, StreamInfo(sfreq=sfreq, ch_names=tuple(ch_names), dtype=np.dtype(dtype).name)
