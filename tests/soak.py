"""Soak test: hours of EEG through the bundled pipeline at full speed, with parameter
changes and hot reloads along the way, checked against a reference and watched for
memory growth.

Two pipelines see the same data: the *live* one in small chunks (fused chains, the
way a stream runs) and the *reference* one a whole span at a time without fusion,
never reloaded. Both get the same parameter changes at the same span boundaries, so
their outputs must stay equal sample for sample; a reload that lost filter state, a
leak, a plan that went stale or a counter that overflowed would show here.

Run it with ``python -m tests.soak [seconds]`` from the repository root, or through
``tests/test_soak.py`` (a reduced minute always, the hour behind the ``slow`` marker).
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from eegkit import Pipeline, PluginManager, StreamInfo, SyntheticSource
from eegkit._paths import STAGE_SKIP_DIRS
from eegkit.plugin import package_dir, read_manifest
from eegkit.plugin._loader import plugin_digest
from eegkit.sources._synthetic import channel_names

OBSERVED = ("car", "bands")
# parameter changes made in turn at span boundaries (stage id, parameters)
CHANGES = [("bp", {"low": 0.5, "high": 45.0}), ("notch", {"q": 20.0}),
           ("bp", {"low": 1.0, "high": 40.0}), ("notch", {"q": 30.0})]


def soak(seconds_of_data: float = 3600, n_channels: int = 64, sfreq: float = 1000.0,
         chunk: int = 32, reloads: bool = True, param_changes: bool = True,
         span_seconds: float = 60.0, n_reloads: int = 4, seed: int = 0, progress=None) -> dict:
    """Stream synthetic EEG through notch → band-pass → average reference → band powers.

    Parameters
    ----------
    seconds_of_data : float
        Length of the recording streamed (at full speed, not real time).
    n_channels, sfreq : int, float
        Shape of the synthetic EEG.
    chunk : int
        Samples per streaming step of the live pipeline.
    reloads : bool
        Hot-reload a temporary copy of the ``filters`` plugin ``n_reloads`` times
        (alternating between two versions of its code, so the numba cache is used).
    param_changes : bool
        Change a band-pass or notch parameter at every other span boundary.
    span_seconds : float
        Data between two checks (and possible changes).
    n_reloads : int
        Number of hot reloads spread over the run.
    seed : int
        Seed of the synthetic data.
    progress : callable, optional
        Called after each span with ``(seconds done, seconds_of_data)``.

    Returns
    -------
    dict
        ``equal`` (live outputs equal to the reference in every span), ``max_abs_diff``,
        ``finite``, ``spans``, ``chunks``, ``param_changes``, ``reloads`` and
        ``reload_states``, ``wall_s``, ``x_realtime``, ``rss_mb`` (resident memory after
        each span, freed heap returned to the OS first), ``rss_start_mb`` (after the
        first span: compilation and buffers are done), ``rss_end_mb``, ``rss_growth_mb``,
        ``traced_mb`` / ``traced_growth_kb`` (live Python and NumPy memory, tracemalloc:
        the leak detector that allocator fragmentation cannot blur), ``gc_objects_growth``,
        the same three growths counted only over spans without a reload
        (``*_steady``: a reload compiles new machine code, which numba never frees),
        ``status`` of every stage.
    """
    t_start = time.perf_counter()
    span = int(round(span_seconds * sfreq))
    n_spans = max(1, int(np.ceil(seconds_of_data * sfreq / span)))
    total = int(round(seconds_of_data * sfreq))
    with tempfile.TemporaryDirectory(prefix="eegkit-soak-") as tmp:
        plugins_dir = Path(tmp) / "plugins"
        shutil.copytree(Path(package_dir("plugins")) / "filters", plugins_dir / "filters",
                        ignore=shutil.ignore_patterns(*STAGE_SKIP_DIRS))
        stage_file = plugins_dir / "filters" / "stage.py"
        original = stage_file.read_text(encoding="utf-8")
        manager = PluginManager(paths=[plugins_dir, package_dir("plugins")], entry_points=False)
        live, ref = _build(manager, fuse=True), _build(manager, fuse=False)
        first_digest, started = plugin_digest(read_manifest(plugins_dir / "filters")), time.time()
        info = _info(n_channels, sfreq)
        live.open(info)
        ref.open(info)
        base = _base_data(n_channels, sfreq, span, seed)
        rng = np.random.default_rng(seed)
        reload_at = set(np.linspace(1, n_spans - 1, n_reloads, dtype=int).tolist()) \
            if reloads and n_spans > 1 and n_reloads > 0 else set()
        out = {"equal": True, "finite": True, "max_abs_diff": {k: 0.0 for k in OBSERVED},
               "param_changes": 0, "reloads": 0, "reload_states": [], "rss_mb": [],
               "chunks": 0}
        objects, traced = [], []
        done = 0
        tracemalloc.start()
        for k in range(n_spans):
            n = min(span, total - done)
            if k in reload_at:
                out["reload_states"] += _reload(live, stage_file, original, out["reloads"])
                out["reloads"] += 1
            if param_changes and k % 2 == 1:
                stage_id, params = CHANGES[(k // 2) % len(CHANGES)]
                live[stage_id].set_params(**params)
                ref[stage_id].set_params(**params)
                out["param_changes"] += 1
            x = _span_data(base, k, n, rng)
            got = {id: [] for id in OBSERVED}
            for start in range(0, n, chunk):
                step = live.push(x[:, start:start + chunk], outputs=OBSERVED)
                for id in OBSERVED:
                    got[id].append(step[id])
                out["chunks"] += 1
            want = ref.push(x, outputs=OBSERVED)
            for id in OBSERVED:
                a = np.concatenate(got[id], axis=1)
                b = want[id]
                if a.shape != b.shape or not np.array_equal(a, b):
                    out["equal"] = False
                if a.shape == b.shape and a.size:
                    out["max_abs_diff"][id] = max(out["max_abs_diff"][id],
                                                  float(np.max(np.abs(a - b))))
                out["finite"] &= bool(np.isfinite(a).all())
            done += n
            del got, want, x, step
            gc.collect()
            out["rss_mb"].append(round(_rss_mb(), 1))
            traced.append(tracemalloc.get_traced_memory()[0])
            objects.append(len(gc.get_objects()))
            if progress is not None:
                progress(done / sfreq, seconds_of_data)
        tracemalloc.stop()
        _forget_caches(live, first_digest, started)
    wall = time.perf_counter() - t_start
    rss = out["rss_mb"]
    out.update({
        "seconds_of_data": done / sfreq, "n_channels": n_channels, "sfreq": sfreq,
        "chunk": chunk, "spans": n_spans, "wall_s": round(wall, 2),
        "x_realtime": round(done / sfreq / wall, 1),
        "rss_start_mb": rss[0], "rss_end_mb": rss[-1], "rss_max_mb": max(rss),
        "rss_growth_mb": round(rss[-1] - rss[0], 1),
        "traced_mb": [round(t / 1e6, 2) for t in traced],
        "traced_growth_kb": round((traced[-1] - traced[0]) / 1e3, 1),
        "gc_objects_growth": objects[-1] - objects[0],
        "rss_growth_mb_steady": round(_steady(rss, reload_at), 1),
        "traced_growth_kb_steady": round(_steady(traced, reload_at) / 1e3, 1),
        "gc_objects_growth_steady": int(_steady(objects, reload_at)),
        "status": {s["id"]: s["status"] for s in live.status()},
        "nonfinite_chunks": sum(s["nonfinite_chunks"] for s in live.stats()),
    })
    return out


def _steady(values, reload_at):
    """Growth summed over the spans that had no reload (span 0 is the baseline)."""
    return sum(values[k] - values[k - 1] for k in range(1, len(values)) if k not in reload_at)


def _build(manager, fuse):
    p = Pipeline(plugins=manager, fuse=fuse)
    p.add("filters.notch", id="notch", freq=50.0, q=30.0)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("reref.average", id="car")
    p.add("brain_fft.band_power", id="bands", window=256, step=32)
    return p


def _info(n_channels, sfreq):
    return StreamInfo(sfreq, channel_names(n_channels))


def _base_data(n_channels, sfreq, n, seed):
    """One span of realistic synthetic EEG (alpha, mains, 1/f, blinks)."""
    return SyntheticSource(n_channels=n_channels, sfreq=sfreq, seed=seed).read(n)


def _span_data(base, k, n, rng):
    """Span ``k``: the base EEG shifted in time, with fresh white noise on top
    (cheaper than synthesising an hour of 64 channels, and never the same twice)."""
    x = np.roll(base, 7919 * k, axis=1)[:, :n]
    x = x + rng.standard_normal(x.shape) * 2e-6
    return np.ascontiguousarray(x)


def _reload(pipeline, stage_file, original, count):
    """Edit the temporary filters plugin (a comment: same numbers) and hot-reload it;
    two versions alternate so the numba disk cache serves all but the first two."""
    stage_file.write_text(original + f"\n# soak edit {count % 2}\n", encoding="utf-8")
    results = pipeline.reload("filters")
    bad = [str(r) for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"soak: hot reload failed: {bad}")
    return [r.state for r in results]


def _forget_caches(pipeline, keep, since):
    """Remove the numba cache folders of the code versions the reloads made.

    Caches are keyed by content, so the copy's first version shares the bundled
    plugin's folder (``keep``); older folders may belong to other copies.
    """
    from eegkit.plugin._loader import cache_dir

    for stage in pipeline.stages:
        manifest = stage.code.manifest
        if manifest.path.name == "filters" and "eegkit-soak-" in str(manifest.path):
            try:
                folders = list(cache_dir(manifest).iterdir())
            except OSError:
                return
            for folder in folders:
                with contextlib.suppress(OSError):
                    if folder.name != keep and folder.stat().st_mtime >= since:
                        shutil.rmtree(folder, ignore_errors=True)
            return


def _rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; ru_maxrss elsewhere)."""
    try:  # hand freed heap back first, so RSS shows what is held, not what was once used
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


if __name__ == "__main__":
    import json
    import sys

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3600.0
    print(json.dumps(soak(seconds, progress=lambda d, t: print(f"{d:.0f}/{t:.0f} s", file=sys.stderr)),
                     indent=1))
