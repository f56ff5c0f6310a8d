"""``eegkit batch PIPELINE.json INPUT...``: one pipeline over many recordings on Dask."""

from __future__ import annotations

import sys


def add_parser(sub):
    p = sub.add_parser(
        "batch", help="run a pipeline over many recordings (Dask)",
        description="Run a pipeline JSON over many recordings, one Dask task per recording, on "
        "a local cluster (default) or a running scheduler. Writes OUT/<recording>/<stage>.npy, "
        "OUT/<recording>/meta.json and OUT/summary.csv; recordings already done with the same "
        "pipeline are skipped.")
    p.add_argument("pipeline", help="pipeline JSON file")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="recording files, globs (quote them: 'data/**/*.edf'), folders (BIDS "
                   "sub-*/eeg/*_eeg.*) or manifests (.txt one path per line; .csv/.tsv with a "
                   "path column)")
    p.add_argument("--out", "-o", default="eegkit-batch",
                   help="output folder, writable by every worker (default ./eegkit-batch)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running Dask scheduler, e.g. tcp://scheduler-host:8786 "
                   "(default: start a local cluster)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the local cluster (default: cores)")
    p.add_argument("--retries", type=int, default=1, metavar="K",
                   help="retries of a task whose worker was lost (default 1)")
    p.add_argument("--stage", action="append", default=None, metavar="ID",
                   help="stage whose output is written (repeatable or comma-separated; "
                   "default: every stage)")
    p.add_argument("--ship-plugins", action="store_true",
                   help="send the pipeline's plugin folders with the tasks (for workers that "
                   "do not share the plugins path)")
    p.add_argument("--force", action="store_true", help="re-run recordings already done")
    p.add_argument("--block", type=int, default=65536, metavar="SAMPLES",
                   help="samples read and processed per step (default 65536)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--verbose", "-v", action="store_true", help="show Dask's own log messages")
    p.set_defaults(func=main)


def main(args) -> int:
    import logging

    from ..batching._client import batch

    if not args.verbose:
        from .._optional import require

        # importing distributed sets its logger to INFO: the in-process scheduler
        # would then log every worker and client connection
        require("distributed", "batch", "eegkit batch")
        logging.getLogger("distributed").setLevel(logging.WARNING)

    stages = None
    if args.stage:
        stages = [s.strip() for item in args.stage for s in item.split(",") if s.strip()]
    summary = batch(args.pipeline, args.inputs, out=args.out, scheduler=args.scheduler,
                    workers=args.workers, retries=args.retries, stages=stages,
                    ship_plugins=args.ship_plugins, force=args.force, block=args.block,
                    progress=not args.quiet)
    counts = summary.counts()
    print(f"{len(summary)} recordings: {counts.get('ok', 0)} done, {counts.get('skipped', 0)} "
          f"skipped (already done), {counts.get('error', 0)} failed; summary: {summary.path}")
    for row in summary.failed:
        print(f"failed: {row['recording']}: {row['error']}", file=sys.stderr)
    return 1 if summary.failed else 0
