"""Per-chunk cost of one kernel as a numba, a native (C) and a WebAssembly stage.

``python benchmarks/native.py [--chunks N]`` from the repository root. The kernel is
the biquad cascade of ``plugins/native_iir`` (4th-order Butterworth band-pass 1-40 Hz,
4 sections, equal to ``scipy.signal.sosfilt``) on 64 channels x 32 samples, float64:

* numba: the same loop in a Python plugin's ``stage.py`` (compiled by eegkit);
* native: ``plugins/native_iir`` built with ``make`` (copied to a temporary folder);
* wasm: the same C file built with ``make wasm`` (clang's wasm32 target), run by
  wasmtime; skipped when clang or wasmtime is missing.

For each, three levels: the kernel called directly (``code.process(x, *state)``),
through ``Stage.run`` (guarded and timed, as a pipeline calls it), and
``Pipeline.push(copy=False)`` (a one-stage pipeline). Rounds are interleaved in a
shuffled order; every output is checked against scipy before timing. Wall time, so
on a shared machine the p99 mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import signal

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

N_CH, N_SAMPLES, SFREQ = 64, 32, 1000.0
SOS = signal.butter(4, [1.0, 40.0], "bandpass", fs=SFREQ, output="sos")
ROUND = 50  # chunks per implementation per round

NUMBA_STAGE = '''
import numpy as np


def setup(info, sos):
    s = np.array(sos, dtype=np.float64).reshape(-1, 6)
    return s, np.zeros((info.n_channels, s.shape[0], 2))


def process(x, sos, zi):
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            cur = x[c, i]
            for k in range(sos.shape[0]):
                y = sos[k, 0] * cur + zi[c, k, 0]
                zi[c, k, 0] = sos[k, 1] * cur - sos[k, 4] * y + zi[c, k, 1]
                zi[c, k, 1] = sos[k, 2] * cur - sos[k, 5] * y
                cur = y
            x[c, i] = cur
'''
MANIFEST = '''[plugin]
name = "{name}"
version = "0.1.0"
api = "1.0"

[[stage]]
type = "{name}.sosfilt"
{code}
[stage.params]
sos = {{ type = "list[float]", default = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0] }}
'''


def make_plugins(root: Path) -> dict:
    """Write and build the three plugins; return ``{label: stage type}`` (or a reason)."""
    from eegkit.plugin import build_native, read_manifest
    from eegkit.plugin._native import HEADER

    found = {}
    (root / "numba_iir").mkdir()
    (root / "numba_iir" / "stage.py").write_text(NUMBA_STAGE)
    (root / "numba_iir" / "plugin.toml").write_text(
        MANIFEST.format(name="numba_iir", code='module = "stage.py"'))
    found["numba"] = "numba_iir.sosfilt"
    src = root / "native_iir"
    shutil.copytree(ROOT / "plugins" / "native_iir", src,
                    ignore=shutil.ignore_patterns("bin", "build", "tests", "__pycache__"))
    report = build_native(read_manifest(src))
    found["native (C)"] = "native_iir.sosfilt" if report["ok"] else \
        f"build failed: {report['error']}"
    wasm = root / "wasm_iir"
    out = subprocess.run(["make", "wasm", f"EEGKIT_INCLUDE={HEADER.parent}"], cwd=src,
                         capture_output=True, text=True, check=False)
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        found["wasm"] = "n/a: wasmtime is not installed (pip install 'eegkit[wasm]')"
    else:
        if out.returncode == 0:
            wasm.mkdir()
            shutil.copyfile(src / "build" / "native_iir.wasm", wasm / "kernel.wasm")
            (wasm / "plugin.toml").write_text(
                MANIFEST.format(name="wasm_iir", code='wasm = "kernel.wasm"'))
            found["wasm"] = "wasm_iir.sosfilt"
        else:
            found["wasm"] = f"n/a: make wasm failed: {(out.stderr or out.stdout).strip()[-200:]}"
    return found


def stats(ns) -> tuple:
    us = np.asarray(ns, dtype=np.float64) / 1e3
    return float(np.median(us)), float(np.percentile(us, 99))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=3000, help="timed chunks per implementation "
                    "and level (default 3000)")
    args = ap.parse_args(argv)
    import eegkit
    from eegkit.plugin import PluginManager

    rng = np.random.default_rng(0)
    info = eegkit.StreamInfo(SFREQ, [f"ch{i}" for i in range(N_CH)])
    with tempfile.TemporaryDirectory() as tmp:
        types = make_plugins(Path(tmp))
        manager = PluginManager(paths=[Path(tmp)], entry_points=False)
        runs, skipped = {}, {}
        for label, stage_type in types.items():
            if "." not in stage_type or " " in stage_type:
                skipped[label] = stage_type
                continue
            p = eegkit.Pipeline(plugins=manager, fuse=False)
            p.add(stage_type, id="s", sos=SOS.ravel().tolist())
            p.open(info)
            # correctness first: 20 chunks against scipy
            x = rng.standard_normal((N_CH, 20 * N_SAMPLES))
            got = np.concatenate([p.push(x[:, i:i + N_SAMPLES])["s"]
                                  for i in range(0, x.shape[1], N_SAMPLES)], axis=1)
            err = float(np.max(np.abs(got - signal.sosfilt(SOS, x))))
            assert err < 1e-9, f"{label}: differs from scipy.signal.sosfilt by {err}"
            runs[label] = (p, p["s"])
        levels = {
            "kernel": lambda p, s, x: s.code.process(x, *s.state),
            "Stage.run": lambda p, s, x: s.run(x),
            "push": lambda p, s, x: p.push(x, copy=False),
        }
        times = {(label, level): [] for label in runs for level in levels}
        block = np.ascontiguousarray(rng.standard_normal((N_CH, N_SAMPLES)) * 1e-5)
        order = [(label, level) for label in runs for level in levels]
        done = 0
        while done < args.chunks:
            random.shuffle(order)
            for label, level in order:
                p, s = runs[label]
                fn, sink = levels[level], times[(label, level)]
                for _ in range(ROUND):
                    x = block.copy()
                    t0 = time.perf_counter_ns()
                    fn(p, s, x)
                    sink.append(time.perf_counter_ns() - t0)
            done += ROUND
    print(f"biquad cascade ({SOS.shape[0]} sections), {N_CH} ch x {N_SAMPLES} samples float64, "
          f"{done} chunks each; microseconds per chunk (median / p99)")
    head = f"{'implementation':<14}" + "".join(f"{lv:>20}" for lv in levels) + \
        f"{'overhead vs numba':>20}"
    print(head)
    base = stats(times[("numba", "Stage.run")])[0] if "numba" in runs else None
    for label in runs:
        cells = "".join(f"{'{:.2f} / {:.2f}'.format(*stats(times[(label, lv)])):>20}"
                        for lv in levels)
        over = stats(times[(label, "Stage.run")])[0] - base if base is not None else float("nan")
        print(f"{label:<14}{cells}{over:>+19.2f}µs")
    for label, why in skipped.items():
        print(f"{label:<14}{why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
