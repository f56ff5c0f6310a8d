"""``eegkit bench``: the benchmark suite (streaming, offline, cold start, hooks)."""

from __future__ import annotations


def add_parser(sub):
    from .._bench.runner import add_arguments

    p = sub.add_parser("bench", help="measure eegkit against scipy and hand-written numba",
                       description="Benchmark eegkit on a fixed workload (64 ch at 1 kHz: band-pass, "
                       "notch, CAR, alpha band power) against scipy and hand-written numba; write "
                       "<out>/latest.json and latest.md and print the Markdown report. "
                       "Runs in a child process with BLAS threads pinned to 1.")
    add_arguments(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from .._bench.runner import launch

    return launch(args)
