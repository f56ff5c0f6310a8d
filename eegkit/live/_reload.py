"""Hot reload: new plugin code is imported and compiled off the streaming path, then
swapped in between two chunks (under the pipeline's lock), so no chunk is lost or
processed twice.

State policy
    When the old and the new ``setup`` both return ``eegkit.Setup``, running state
    is carried by name: an array of the same name, shape and dtype is copied into
    the new state; any other starts fresh, and the ReloadResult's notes say which
    and why. Coefficients and scratch always come from the new ``setup``, so an
    edit to ``setup`` takes effect.

    Plain tuples (plugin API 1.0) name nothing, so the host guesses: arrays that
    ``process`` has changed since ``setup`` (compared with what the old ``setup``
    gives now) are carried over when the new ``setup`` returns arrays of the same
    shape in the same positions; arrays ``process`` never changed and scalars come
    from the new ``setup``. If a changed array has no fitting counterpart, the
    whole state is re-initialised by the new ``setup``.

A broken edit (syntax error, import error, compile error, an exception in the
new ``setup``) leaves the previous version running; the error is kept in
``stage.last_error`` (shown by ``Pipeline.status()``) and logged. Saving a fixed
file reloads again. A disabled stage whose new code works is enabled again.

Watching files for edits lives in ``eegkit.live._watch``.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field

import numpy as np

from ..runtime import _registry
from .._errors import StageError
from ..runtime._stage import Stage, log_error
from ..plugin._loader import cache_dir, load_stage_code
from ..plugin._setup import Prepared
from ..plugin._params import validate_params

log = logging.getLogger("eegkit")
KEEP_CACHES = 8  # numba cache folders (code versions) kept per plugin


@dataclass
class ReloadResult:
    """What a reload did to one stage.

    ``state`` is ``"kept"`` (running state carried over), ``"reset"`` (re-initialised:
    shapes no longer fit, or the stage was disabled), ``"none"`` (nothing to carry)
    or None (not reloaded). ``swapped_at`` is the wall-clock time of the swap.
    ``notes`` say what changed on the way: dropped parameters, and for state carried
    by name (``eegkit.Setup``) each array that started fresh, and why.
    """

    stage: str
    plugin: str
    ok: bool
    state: str | None = None
    error: str | None = None
    prepare_s: float = 0.0
    swapped_at: float = 0.0
    notes: list = field(default_factory=list)

    def __str__(self):
        if not self.ok:
            return f"stage '{self.stage}' ({self.plugin}): reload rejected: {self.error}"
        return (f"stage '{self.stage}' ({self.plugin}): reloaded, state {self.state}, "
                f"prepared in {self.prepare_s:.2f} s" + "".join(f"; {n}" for n in self.notes))


def reload(plugin: str | None = None, pipelines=None) -> list:
    """Reload the code of ``plugin`` (or of every plugin) in running pipelines.

    Parameters
    ----------
    plugin : str, optional
        Plugin name; default: every stage of every pipeline.
    pipelines : list of Pipeline, optional
        Default: every live pipeline of this process.

    Returns
    -------
    list of ReloadResult
        One per stage reloaded; failures leave the previous code running.
    """
    targets = _registry.pipelines() if pipelines is None else list(pipelines)
    refreshed, results = set(), []
    for pipe in targets:
        if id(pipe.plugins) not in refreshed:
            pipe.plugins.refresh()
            refreshed.add(id(pipe.plugins))
        results += reload_pipeline(pipe, plugin, refresh=False)
    return results


def reload_pipeline(pipeline, plugin: str | None = None, ids=None, refresh: bool = True) -> list:
    """Reload the stages of one pipeline (of ``plugin``, or all; or the stage ``ids``)."""
    with pipeline.between_chunks():
        targets = [s for s in pipeline.stages
                   if (plugin is None or s.code.manifest.name == plugin)
                   and (ids is None or s.id in ids)]
    if not targets:
        return []
    if refresh:
        pipeline.plugins.refresh()
    fresh, groups, results = set(), {}, []
    for stage in targets:
        groups.setdefault(stage.code.manifest.name, []).append(stage)
    for stages in groups.values():
        results += _reload_plugin(pipeline, stages, fresh)
    for stage in {id(s.code.manifest): s for s in targets}.values():
        prune_cache(stage.code.manifest, stage.code.digest)
    return results


def prune_cache(manifest, current: str | None = None, keep: int = KEEP_CACHES) -> None:
    """Delete the numba caches of all but the ``keep`` newest versions of a plugin's code
    (each edit compiles into a new folder, named by the code's digest)."""
    root = cache_dir(manifest)
    try:
        folders = sorted((d for d in root.iterdir() if d.is_dir() and d.name != current),
                         key=lambda d: d.stat().st_mtime, reverse=True)
    except OSError:
        return
    for folder in folders[max(keep - 1, 0):]:
        shutil.rmtree(folder, ignore_errors=True)


def _reload_plugin(pipeline, stages, fresh) -> list:
    """Reload the ``stages`` of one plugin together: every stage's new code is imported,
    compiled, set up and warmed up off the streaming path, then all are swapped under
    one hold of the pipeline's lock, so no chunk sees two versions of the plugin. If one
    stage's new code fails, none is swapped."""
    t0 = time.perf_counter()
    jobs = [_Job(stage) for stage in stages]
    failed = None
    try:
        for job in jobs:
            failed = job
            job.prepare(pipeline, fresh)
        prepare_s = time.perf_counter() - t0
        with pipeline.between_chunks():
            for job in jobs:  # every set-up first: a failure here swaps nothing
                failed = job
                job.refresh_if_stale()
            failed = None
            old_outs = [job.stage.out_info for job in jobs]
            for job in jobs:
                job.swap()
            # downstream stages set up again if a layout changed; fused chains hold the
            # old kernels: one re-plan for the whole plugin, in the same hold
            pipeline.reconfigure(layout_changed=any(
                job.stage.out_info is not old for job, old in zip(jobs, old_outs)))
            swapped_at = time.time()
    except KeyboardInterrupt:
        _close_new(jobs)
        raise
    except BaseException as exc:  # noqa: BLE001 - plugin code: any error rejects the reload
        if failed is None:
            raise  # the swap itself failed: a bug of the host, not of the plugin
        _close_new(jobs)
        for job in jobs:
            if job is failed:
                _reject(job.stage, job.result, exc)
            else:
                _reject(job.stage, job.result, StageError(
                    f"not swapped: stage '{failed.stage.id}' of the same plugin failed to "
                    f"reload ({type(exc).__name__}: {exc}); a plugin's stages switch together"))
        return [job.result for job in jobs]
    for job in jobs:
        if job.old_code is not job.stage.code:
            _close(job.old_code)
        job.result.ok, job.result.swapped_at, job.result.prepare_s = True, swapped_at, prepare_s
        log.info("eegkit: %s", job.result)
    return [job.result for job in jobs]


class _Job:
    """The reload of one stage: new code prepared off the streaming path, swapped later."""

    def __init__(self, stage):
        self.stage, self.old_code = stage, stage.code
        self.where = f"stage '{stage.id}' ({stage.type})"
        self.result = ReloadResult(stage.id, stage.code.manifest.name, ok=False)
        self.code = self.new = self.old_initial = self.spec = None

    def prepare(self, pipeline, fresh):
        """Import, compile, set up and warm up the new code (no lock held)."""
        stage = self.stage
        rec, self.spec = pipeline.plugins.spec(stage.type, self.where)
        with pipeline.between_chunks():
            self.base_params, self.in_info = dict(stage.params), stage.in_info
        self.params = _carry_params(self.spec, self.base_params, self.where, self.result)
        self.code = _new_code(stage, rec.manifest, self.spec, fresh)
        self.new = _prepare(stage, self.code, self.params, self.in_info)
        self.old_initial = _initial_state(stage, self.new)

    def refresh_if_stale(self):
        """Under the lock: set up again if the stream was re-opened or parameters changed."""
        stage = self.stage
        if self.new is not None and (stage.in_info is not self.in_info
                                     or stage.params != self.base_params):
            self.params = _carry_params(self.spec, stage.params, self.where, self.result)
            self.new = _prepare(stage, self.code, self.params, stage.in_info)
            self.old_initial = _initial_state(stage, self.new)

    def swap(self):
        """Under the lock: install the new code."""
        _swap(self.stage, self.code, self.params, self.new, self.old_initial, self.result)


def _close_new(jobs):
    """Close the new code of every job that has some (an isolated stage's new child)."""
    for job in jobs:
        if job.code is not None and job.code is not job.stage.code:
            _close(job.code)


def _carry_params(spec, params, where, result):
    """The stage's parameters, checked against the (possibly edited) manifest."""
    dropped = [k for k in params if k not in spec.params]
    if dropped:
        result.notes.append(f"parameters {dropped} no longer exist and were dropped")
    return validate_params(spec.params, {k: v for k, v in params.items() if k in spec.params},
                           where)


def _new_code(stage, manifest, spec, fresh):
    """Import (once per module per reload) and compile; isolated stages get a new child."""
    if stage.isolation == "process":
        from ..runtime._isolate import IsolatedCode

        return IsolatedCode(manifest, spec, timeout=stage.code.timeout)
    key = (manifest.name, spec.module)
    code = load_stage_code(manifest, spec, reload=key not in fresh)
    fresh.add(key)
    return code


def _prepare(stage, code, params, in_info):
    """A throw-away Stage holding the new code's setup and warm-up (or None when the
    stage has no stream yet)."""
    if in_info is None:
        return None
    new = Stage(code, id=stage.id, input=stage.input, params=params)
    new.prepare(in_info)
    return new


def _initial_state(stage, new):
    """What the running code's setup gives now: the reference for "changed by process"
    (only needed to guess which plain-tuple arrays are running state)."""
    if new is None or stage.status != "ok" or stage.code.isolated or new.code.isolated:
        return None  # nothing to carry, or asked from the child at swap time
    if stage.state_names is not None and new.state_names is not None:
        return None  # carried by name
    try:
        return stage.setup_result().args
    except Exception:  # noqa: BLE001 - then every array counts as running state
        return None


def merge_state(current, initial, new):
    """Carry the running state over (see the module docstring).

    Returns
    -------
    (tuple, str)
        The state to use and ``"kept"``, ``"reset"`` or ``"none"``.
    """
    new = tuple(new)
    if initial is None or len(initial) != len(current):
        initial = (None,) * len(current)
    carry = {}
    for i, (cur, ini) in enumerate(zip(current, initial)):
        if not isinstance(cur, np.ndarray) or not cur.flags.writeable:
            continue  # read-only: a handle to state outside the array (native, wasm stages)
        if (isinstance(ini, np.ndarray) and ini.shape == cur.shape and ini.dtype == cur.dtype
                and np.array_equal(ini, cur, equal_nan=True)):
            continue  # untouched by process: a coefficient, or state still at its start
        target = new[i] if i < len(new) else None
        if not isinstance(target, np.ndarray) or target.shape != cur.shape:
            return new, "reset"
        carry[i] = cur
    for i, cur in carry.items():
        np.copyto(new[i], cur, casting="same_kind")
    return new, "kept" if carry else "none"


def carry_by_name(current, names, new, new_names, notes):
    """Carry running state by name (see the module docstring); notes say what started fresh.

    Returns
    -------
    (tuple, str)
        The state to use and ``"kept"`` (at least one array carried), ``"reset"`` (none
        could be) or ``"none"`` (no running state).
    """
    new = tuple(new)
    kept = fresh = 0
    for name, j in new_names.items():
        target = new[j]
        i = names.get(name)
        cur = current[i] if i is not None and i < len(current) else None
        if cur is None:
            notes.append(f"state '{name}' is new: it starts fresh")
        elif cur.shape != target.shape or cur.dtype != target.dtype:
            notes.append(f"state '{name}' started fresh: it was {cur.dtype}{list(cur.shape)}, "
                         f"the new setup gives {target.dtype}{list(target.shape)}")
        else:
            np.copyto(target, cur)
            kept += 1
            continue
        fresh += 1
    dropped = [n for n in names if n not in new_names]
    if dropped:
        notes.append(f"state {dropped} no longer exists and was dropped")
    if not kept:
        return new, "reset" if fresh or dropped else "none"
    return new, "kept"


def _swap(stage, code, params, new, old_initial, result):
    """Between two chunks (caller holds the pipeline's lock and re-plans after): install
    the new code."""
    if new is None:
        stage.code, stage.params, stage.isolation = code, params, code_isolation(code)
        result.state = "none"
        return
    if stage.status != "ok":
        state, result.state = new.state, "reset"
    elif stage.code.isolated or code.isolated:
        state, result.state = _merge_isolated(stage, code, new, result.notes)
    elif stage.state_names is not None and new.state_names is not None:
        state, result.state = carry_by_name(stage.state, stage.state_names, new.state,
                                            new.state_names, result.notes)
    else:
        state, result.state = merge_state(stage.state, old_initial, new.state)
    old_out = stage.out_info
    stage.code, stage.params, stage.isolation = code, new.params, code_isolation(code)
    stage.install(Prepared(state, old_out if new.out_info == old_out else new.out_info,
                           new.state_names))
    stage.in_place = new.in_place
    if stage.kernel is not None:  # a multi-threaded build is in use
        stage.kernel = code.parallel
    stage.status, stage.error, stage.traceback, stage.last_error = "ok", None, None, None


def _merge_isolated(stage, code, new, notes):
    """State across child processes: fetched and sent as pickles (rare, control path)."""
    old = stage.code.get_state() or (stage.state, None, stage.state_names)
    target, _, new_names = code.get_state() or (new.state, None, new.state_names)
    current, initial, names = old
    target = tuple(np.array(s, copy=True) if isinstance(s, np.ndarray) else s for s in target)
    if names is not None and new_names is not None:
        merged, how = carry_by_name(current, names, target, new_names, notes)
    else:
        merged, how = merge_state(current, initial, target)
    if code.isolated:
        if how == "kept":
            code.set_state({i: s for i, s in enumerate(merged) if isinstance(s, np.ndarray)})
        return (), how
    return merged, how


def code_isolation(code) -> str:
    """``"process"`` for isolated code, else ``"none"``."""
    return code.isolation


def _reject(stage, result, exc):
    """The reload failed: the previous code keeps running; say why."""
    text = f"{type(exc).__name__}: {exc}"
    result.error = text
    stage.last_error = f"reload rejected, the previous version keeps running: {text}"
    log_error((stage._where(), "reload"), "eegkit: %s: %s", stage._where(), stage.last_error)
    return result


def _close(code):
    code.close()

