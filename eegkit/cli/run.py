"""``eegkit run PIPELINE.json``: run a pipeline headless on its source."""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np


def add_parser(sub):
    p = sub.add_parser("run", help="run a pipeline JSON headless",
                       description="Run a pipeline exported with Pipeline.to_json() on its source "
                       "(or --source), print progress and a per-stage summary.")
    p.add_argument("pipeline", help="pipeline JSON file")
    p.add_argument("--duration", type=_seconds, default=None,
                   help="seconds of data to process (default: whole source; 10 s for unbounded sources)")
    p.add_argument("--chunk", type=int, default=32, help="samples per streaming step (default 32)")
    p.add_argument("--output", "-o", default=None,
                   help="write stage outputs to this .npz (arrays named by stage id)")
    p.add_argument("--stage", action="append", default=None, metavar="ID",
                   help="stage whose output --output keeps (repeatable; default: every stage)")
    p.add_argument("--source", default=None,
                   help="override the source: synthetic[,key=value...], file:PATH, lsl:NAME, brainflow:ID")
    p.add_argument("--overwrite", action="store_true",
                   help="let the pipeline's file sinks (record, npz, features) replace existing "
                   "files (default: refuse to start)")
    p.add_argument("--realtime", action="store_true", help="pace a recorded source to real time")
    p.add_argument("--watch", action="store_true",
                   help="hot reload: apply edits to plugin files while running")
    p.add_argument("--trust-local", action="store_true",
                   help="let plugins in ./plugins replace bundled or installed plugins of the "
                   "same name (same as EEGKIT_TRUST_LOCAL_PLUGINS=1); refused otherwise")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    p.set_defaults(func=main)


def _seconds(text):
    """argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def main(args) -> int:
    from ..notebook._pipeline import Pipeline
    from .._check import did_you_mean, positive_int
    from .._errors import PipelineError
    from ..plugin._discovery import TRUST_ENV
    from ..runtime._document import load
    from ..sinks import check_target, output_path
    from ..sources import parse_source_arg

    if args.trust_local:
        os.environ[TRUST_ENV] = "1"  # before the first discovery
    positive_int(args.chunk, "--chunk", what="a positive number of samples")
    doc, where = load(args.pipeline)
    if args.overwrite:
        _allow_overwrite(doc)
    pipeline = Pipeline.from_dict(doc, where=where)
    if args.source:
        pipeline.set_source(parse_source_arg(args.source))
    for id in args.stage or ():
        if id not in pipeline.stage_ids():
            raise PipelineError(f"--stage {id!r}: no such stage in {where}; stages are "
                                f"{', '.join(pipeline.stage_ids()) or '(none)'}."
                                f"{did_you_mean(id, pipeline.stage_ids())}")
    if args.output:  # fail now, not after the whole run
        check_target(output_path(args.output, "--output"), "--output", overwrite=True)
    source = pipeline.source
    duration = args.duration
    if duration is None and source.n_samples is None:
        duration = 10.0
    info = source.info
    print(f"eegkit run {args.pipeline}: source {source.type_name}, {info.n_channels} channels "
          f"at {info.sfreq:g} Hz, {len(pipeline.stages)} stages, chunk {args.chunk}",
          file=sys.stderr)
    print(plugins_used(pipeline), file=sys.stderr)
    t0 = time.perf_counter()
    progress = None if args.quiet else _progress(info.sfreq, t0)
    watcher = None
    if args.watch:
        from ..live._watch import Watcher, describe_event

        watcher = Watcher(pipelines=[pipeline],
                          on_event=lambda e: print(describe_event(e), file=sys.stderr, flush=True))
        watcher.start()
        print(f"watching {', '.join(map(str, watcher.roots()))} for plugin edits", file=sys.stderr)
    try:
        out = _run_interruptibly(pipeline, progress, duration=duration, chunk=args.chunk,
                                 realtime=args.realtime, outputs=args.stage,
                                 collect=args.output is not None)
    finally:
        if watcher is not None:
            watcher.stop()
    elapsed = time.perf_counter() - t0
    if progress is not None:
        print(file=sys.stderr)
    done = pipeline.first_sample / info.sfreq
    if out is None:  # Ctrl-C: stopped between two chunks
        print(f"interrupted after {done:.1f} s of data; nothing written", file=sys.stderr)
        print(summary_table(pipeline))
        return 130
    timing = getattr(pipeline, "last_run", {})
    busy = timing.get("process_s", elapsed)
    print(f"processed {done:.1f} s of data in {busy:.2f} s ({done / max(busy, 1e-9):.0f} x real "
          f"time); set-up (open, compile or cache load) {timing.get('setup_s', 0.0):.2f} s")
    print(summary_table(pipeline))
    if args.output:
        _save(Path(args.output), out, pipeline)
    failed = [s for s in pipeline.stages if s.status != "ok"]
    for s in failed:
        print(f"stage '{s.id}' ({s.type}) disabled: {s.error}", file=sys.stderr)
    from . import EXIT_OK, EXIT_PARTIAL

    return EXIT_PARTIAL if failed else EXIT_OK


def _allow_overwrite(doc):
    """Add ``overwrite: true`` to the document's sinks whose type takes it."""
    import inspect

    from ..sinks import SINK_TYPES, sink_class

    sinks = doc.get("sinks") if isinstance(doc, dict) else None
    for sink in sinks if isinstance(sinks, list) else ():
        if not (isinstance(sink, dict) and sink.get("type") in SINK_TYPES
                and isinstance(sink.setdefault("params", {}), dict)):
            continue  # validation reports it
        if "overwrite" in inspect.signature(sink_class(sink["type"]).__init__).parameters:
            sink["params"].setdefault("overwrite", True)


def _save(path, out, pipeline):
    """Write the collected outputs as .npz, naming the file on failure."""
    from .._errors import EegkitIOError

    arrays = dict(out)
    for id in out:
        arrays[f"{id}__sfreq"] = np.float64(pipeline[id].out_info.sfreq)
        arrays[f"{id}__ch_names"] = np.array(pipeline[id].out_info.ch_names)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)
    except OSError as exc:
        raise EegkitIOError(f"--output: cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {', '.join(out)} to {path}")


class _Stopped(Exception):
    """Raised between two chunks to end a run the user interrupted."""


def _run_interruptibly(pipeline, progress, **kwargs):
    """``pipeline.run`` in a worker thread, so Ctrl-C is seen even while a compiled
    kernel runs (signals reach only the main thread, and only between bytecodes).

    The first Ctrl-C stops the run between two chunks (returns None); a second one
    quits at once with status 130, without a summary, for a kernel that never returns.
    """
    stop, done, result = threading.Event(), threading.Event(), {}

    def report(done, total):
        if stop.is_set():
            raise _Stopped
        if progress is not None:
            progress(done, total)

    def work():
        try:
            result["out"] = pipeline.run(progress=report, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="eegkit-run", daemon=True).start()
    while not done.is_set():
        try:
            time.sleep(0.05)  # not join(): a Ctrl-C inside join() can leave the thread looking ended
        except KeyboardInterrupt:
            if stop.is_set():
                print("\neegkit run: interrupted again while a stage was still running; "
                      "quitting now (no summary, sinks not closed)", file=sys.stderr, flush=True)
                sys.stdout.flush()
                os._exit(130)
            stop.set()
            print("\neegkit run: stopping after the current chunk (Ctrl-C again to quit at once)",
                  file=sys.stderr, flush=True)
    error = result.get("error")
    if isinstance(error, _Stopped):
        return None
    if error is not None:
        raise error
    return result["out"]


def plugins_used(pipeline) -> str:
    """Which plugin folder each plugin of ``pipeline`` comes from, and local plugins refused."""
    lines, seen = ["plugins used:"], set()
    for stage in pipeline.stages:
        manifest = getattr(stage.code, "manifest", None)
        if manifest is None:
            continue
        if manifest.name in seen:
            continue
        seen.add(manifest.name)
        rec = pipeline.plugins.record(manifest.name)
        origin = rec.origin if rec is not None else "?"
        lines.append(f"  {manifest.name} {manifest.version} ({origin}) {manifest.path}")
    for rec in pipeline.plugins.records:
        if rec.shadows is not None and rec.name in seen:
            lines.append(f"  refused: {rec.message}")
    return "\n".join(lines)


def _progress(sfreq, t0):
    tty = sys.stderr.isatty()

    def report(done, total):
        secs = done / sfreq
        pct = 100.0 * done / total if total else 100.0
        rate = secs / max(time.perf_counter() - t0, 1e-9)
        line = f"  {secs:8.1f} s / {total / sfreq:.1f} s  ({pct:5.1f} %, {rate:7.0f} x real time)"
        print(("\r" if tty else "") + line, end="" if tty else "\n", file=sys.stderr, flush=True)

    return report


def summary_table(pipeline) -> str:
    """Per-stage summary: id, type, status, calls, median/p99 µs, output shape."""
    rows = [("stage", "type", "status", "calls", "median µs", "p99 µs", "out")]
    for st in pipeline.stats():
        info = pipeline[st["id"]].out_info
        rows.append((st["id"], st["type"], st["status"], str(st["calls"]),
                     _num(st["median_us"]), _num(st["p99_us"]),
                     f"{info.n_channels} ch {info.kind} @ {info.sfreq:g} Hz"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _num(v):
    return "-" if v is None else f"{v:.1f}"
