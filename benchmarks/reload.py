"""Hot-reload latency: from saving a plugin's file to the first chunk its new code processed."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from eegkit import Pipeline, PluginManager, StreamInfo

_LATENCY_STAGE = "def process(x):\n    x *= {gain}\n"
_LATENCY_MANIFEST = ('[plugin]\nname = "gain"\nversion = "0.1.0"\napi = "1.0"\n\n'
                     '[[stage]]\ntype = "gain.scale"\nmodule = "stage.py"\n')


def latency(n_channels: int = 64, chunk: int = 32, sfreq: float = 1000.0,
            repeats: int = 3) -> dict:
    """Measure save-to-live latency of hot reload.

    A temporary plugin is edited ``repeats`` times while a thread pushes chunks paced to
    real time through a watched pipeline; each latency runs from the file write to the
    first chunk processed by the new code (import and numba compile included).

    Returns
    -------
    dict
        ``median_s``, ``max_s`` and every ``latencies_s``.
    """
    tmp = Path(tempfile.mkdtemp(prefix="eegkit-reload-"))
    folder = tmp / "plugins" / "gain"
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text(_LATENCY_MANIFEST)
    (folder / "stage.py").write_text(_LATENCY_STAGE.format(gain=1.0))
    p = Pipeline(plugins=PluginManager(paths=[tmp / "plugins"], entry_points=False))
    p.add("gain.scale", id="g")
    p.open(StreamInfo(sfreq, [f"c{i}" for i in range(n_channels)]))
    seen, stop = [], threading.Event()

    def pump():
        x = np.ones((n_channels, chunk))
        while not stop.is_set():
            out = p.push(x, outputs=["g"], copy=False)["g"]
            seen.append((time.perf_counter(), float(out[0, 0])))
            time.sleep(chunk / sfreq)

    p.watch()
    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    latencies = []
    try:
        time.sleep(0.5)  # the watcher is up and chunks flow
        for gain in range(2, repeats + 2):
            (folder / "stage.py").write_text(_LATENCY_STAGE.format(gain=float(gain)))
            saved = time.perf_counter()
            end = saved + 30.0
            while time.perf_counter() < end:
                live = next((t for t, v in reversed(seen) if v == gain), None)
                if live is not None:
                    first = min(t for t, v in seen if v == gain)
                    latencies.append(first - saved)
                    break
                time.sleep(0.01)
            else:
                raise RuntimeError(f"edit {gain - 1} did not go live within 30 s")
    finally:
        stop.set()
        thread.join()
        p.watch(False)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"median_s": float(np.median(latencies)), "max_s": float(max(latencies)),
            "latencies_s": [round(v, 4) for v in latencies], "n_channels": n_channels,
            "chunk": chunk}
