"""Does fusion fuse? ``python benchmarks/fusion.py``: K chained band-passes.

64 channels × 32 samples, float64, a fresh caller array per chunk. For K = 1, 2, 4, 8
chained 4th-order Butterworth band-passes, µs per chunk (median of interleaved rounds):
eegkit fused (``Pipeline()``, ``push(x, copy=False, outputs=[last])``), eegkit unfused
(``Pipeline(fuse=False)``), hand-written numba per stage (K calls of the same kernel the
plugin uses) and hand-fused numba (one call over the K cascades' sections stacked, which
is what fusing K biquad cascades by hand gives). Outputs are checked against scipy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import signal

REPO = Path(__file__).resolve().parents[1]
N_CH, CHUNK, SFREQ = 64, 32, 1000.0
ROUNDS, PER_ROUND = 40, 25


def implementations(k):
    """name → callable(chunk) returning the last output; all start from zero state."""
    import eegkit
    from benchmarks.numba_ref import TILE, sos_inplace

    sos = signal.butter(4, [1.0, 40.0], "bandpass", fs=SFREQ, output="sos")
    out = {}
    for name, fuse in (("eegkit fused", True), ("eegkit unfused", False)):
        p = eegkit.Pipeline(fuse=fuse)
        for i in range(k):
            p.add("filters.bandpass", id=f"bp{i}", low=1.0, high=40.0, order=4)
        p.open(eegkit.StreamInfo(SFREQ, [f"ch{c}" for c in range(N_CH)]))
        last = f"bp{k - 1}"
        out[name] = lambda x, p=p, last=last: p.push(x, copy=False, outputs=[last])[last]

    per = [(np.zeros((len(sos), N_CH)), np.zeros((len(sos), N_CH))) for _ in range(k)]
    tile = np.zeros((TILE, N_CH))

    def per_stage(x):
        for z0, z1 in per:
            sos_inplace(x, sos, z0, z1, tile)
        return x

    stacked = np.vstack([sos] * k)
    z0, z1 = np.zeros((len(stacked), N_CH)), np.zeros((len(stacked), N_CH))

    def fused(x):
        sos_inplace(x, stacked, z0, z1, tile)
        return x

    out["numba per-stage"], out["numba fused"] = per_stage, fused
    return out, np.vstack([sos] * k)


def run(k, data):
    impls, stacked = implementations(k)
    n = ROUNDS * PER_ROUND
    chunks = [np.ascontiguousarray(data[:, i * CHUNK:(i + 1) * CHUNK]) for i in range(n)]
    times = {name: [] for name in impls}
    outs = {name: [] for name in impls}
    order = np.random.default_rng(k)
    for r in range(ROUNDS):
        for name in order.permutation(list(impls)):
            fn = impls[name]
            for i in range(r * PER_ROUND, (r + 1) * PER_ROUND):
                x = chunks[i].copy()  # a fresh array, as a driver hands it over
                t0 = time.perf_counter_ns()
                y = fn(x)
                times[name].append(time.perf_counter_ns() - t0)
                outs[name].append(y.copy())
    ref = signal.sosfilt(stacked, data[:, :n * CHUNK], axis=1)
    row = {"k": k}
    for name in impls:
        got = np.concatenate(outs[name], axis=1)
        err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
        if err > 1e-9:
            raise SystemExit(f"{name} at K={k} differs from scipy by {err:.2e} (relative)")
        row[name] = round(float(np.median(times[name][PER_ROUND:])) / 1e3, 2)
    return row


NAMES = ["eegkit fused", "eegkit unfused", "numba per-stage", "numba fused"]


def scaling(ks=(1, 2, 4, 8)) -> dict:
    """µs per chunk and ratios for each K (flat dict, for the benchmark report)."""
    data = np.random.default_rng(0).standard_normal((N_CH, ROUNDS * PER_ROUND * CHUNK)) * 20e-6
    out = {}
    for k in ks:
        r = run(int(k), data)
        out[f"K={k} eegkit fused us"] = r["eegkit fused"]
        out[f"K={k} unfused us"] = r["eegkit unfused"]
        out[f"K={k} hand per-stage us"] = r["numba per-stage"]
        out[f"K={k} hand-fused us"] = r["numba fused"]
        out[f"K={k} fused/unfused"] = round(r["eegkit fused"] / r["eegkit unfused"], 2)
        out[f"K={k} fused/hand-fused"] = round(r["eegkit fused"] / r["numba fused"], 2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="1,2,4,8")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "fusion.json"))
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    r = scaling(ks)
    print(f"K chained band-passes, {N_CH} ch × {CHUNK} samples float64, µs per chunk (median)")
    print(f"{'K':>3s} " + " ".join(f"{n:>16s}" for n in NAMES) + "   fused/unfused  fused/hand-fused")
    for k in ks:
        cells = [r[f"K={k} eegkit fused us"], r[f"K={k} unfused us"], r[f"K={k} hand per-stage us"],
                 r[f"K={k} hand-fused us"]]
        print(f"{k:>3d} " + " ".join(f"{v:>16.2f}" for v in cells)
              + f"   {r[f'K={k} fused/unfused']:>13.2f}  {r[f'K={k} fused/hand-fused']:>16.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
