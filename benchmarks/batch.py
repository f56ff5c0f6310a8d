"""Batch throughput: recordings per minute through ``eegkit.batch`` on local clusters."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from eegkit import Pipeline, StageError, batch
from eegkit._paths import child_env


def throughput(n_recordings=8, seconds=60, n_channels=32, sfreq=500, workers=(1, 2),
               pipeline=None) -> dict:
    """Batch throughput on synthetic FIF recordings, per number of local workers.

    Parameters
    ----------
    n_recordings, seconds, n_channels, sfreq
        The recordings written to a temporary folder.
    workers : tuple of int
        Local cluster sizes to measure.
    pipeline : Pipeline, dict or path, optional
        Default: band-pass 1–40 Hz then band powers (window 256, step 32).

    Returns
    -------
    dict
        The parameters and, under ``"runs"``, one entry per worker count with
        ``wall_s``, ``recordings_per_min`` and ``samples_per_s`` (input samples per
        channel, summed over recordings). Cluster start-up and the first (compiling)
        task are excluded.
    """
    import mne
    from dask.distributed import Client, LocalCluster

    if pipeline is None:
        pipeline = Pipeline()
        pipeline.add("filters.bandpass", id="bp", low=1.0, high=40.0)
        pipeline.add("brain_fft.band_power", id="bands", input="bp", window=256, step=32)
    runs = []
    with tempfile.TemporaryDirectory(prefix="eegkit-throughput-") as d:
        d = Path(d)
        rng = np.random.default_rng(0)
        n = int(seconds * sfreq)
        info = mne.create_info([f"EEG{i:03d}" for i in range(n_channels)], sfreq, "eeg")
        files = []
        for i in range(n_recordings):
            path = d / "in" / f"rec{i:03d}_raw.fif"
            path.parent.mkdir(exist_ok=True)
            mne.io.RawArray(rng.standard_normal((n_channels, n)) * 1e-5, info,
                            verbose="error").save(path, verbose="error")
            files.append(path)
        env = {"PYTHONPATH": child_env()["PYTHONPATH"]}
        for w in workers:
            with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address="127.0.0.1:0", env=env) as cluster, Client(cluster) as client:
                # worker start-up and compiling are not throughput
                batch(pipeline, files[:w], out=d / f"warm{w}", scheduler=client, progress=False)
                t0 = time.perf_counter()
                summary = batch(pipeline, files, out=d / f"out{w}", scheduler=client, progress=False)
                wall = time.perf_counter() - t0
            if summary.failed:
                raise StageError(f"throughput: {summary.failed[0]['error']}")
            runs.append({"workers": w, "wall_s": round(wall, 6),
                         "recordings_per_min": round(60.0 * n_recordings / wall, 2),
                         "samples_per_s": round(n_recordings * n / wall, 1)})
    return {"n_recordings": n_recordings, "seconds": seconds, "n_channels": n_channels,
            "sfreq": sfreq, "runs": runs}
