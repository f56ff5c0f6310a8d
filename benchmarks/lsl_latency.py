"""End-to-end latency through LSL on loopback: ``python benchmarks/lsl_latency.py``.

A sender pushes 64 channels at 1 kHz in chunks of 32 samples, paced to real time, to an
LSL outlet; eegkit reads it (``LSLSource``), runs the quickstart chain (notch, band-pass,
common average, spectrum, band power) in its background runner and sends the common
average to an LSL outlet (``LSLSink``); a receiver pulls that stream. For every chunk, the
latency is the time from the sender's push to the receiver holding the chunk's last
sample: what eegkit adds beyond the chunk's own duration (the samples of a chunk exist
only once the chunk is complete). The same measured with the receiver reading the
sender's outlet directly gives LSL's own share. Loopback only (``tests/data/lsl_api.cfg``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(REPO / "tests" / "data" / "lsl_api.cfg"))
N_CH, SFREQ = 64, 1000.0


def send(outlet, chunk, n_chunks, sent, start):
    """Push ``n_chunks`` chunks at real time; ``sent[i]`` is chunk i's push time."""
    from pylsl import local_clock

    rng = np.random.default_rng(0)
    for i in range(n_chunks):
        due = start + (i + 1) * chunk / SFREQ  # the chunk is complete at its last sample
        while local_clock() < due:
            time.sleep(max(0.0, min(0.0005, due - local_clock())))
        outlet.push_chunk((rng.standard_normal((chunk, N_CH)) * 20e-6).astype(np.float32))
        sent[i] = local_clock()


def receive(inlet, chunk, n_chunks, got, deadline):
    """``got[i]`` = when the last sample of chunk i was pulled."""
    from pylsl import local_clock

    n = 0
    while n < n_chunks * chunk and time.monotonic() < deadline:
        samples, _ = inlet.pull_chunk(timeout=0.0, max_samples=4096)  # (a timeout waits it out)
        now = local_clock()
        k = len(samples)
        if not k:
            time.sleep(0.0002)
            continue
        for i in range(n // chunk, (n + k) // chunk):
            got[i] = now
        n += k


def measure(chunk, seconds, through_eegkit):
    """Latencies (s) of every chunk after the first second (connection set-up)."""
    import pylsl

    tag = f"{os.getpid()}-{through_eegkit}"
    n_chunks = int(seconds * SFREQ / chunk)
    info = pylsl.StreamInfo(f"bench-in-{tag}", "EEG", N_CH, SFREQ, "float32", f"bench-in-{tag}")
    outlet = pylsl.StreamOutlet(info, chunk_size=chunk)
    pipeline = None
    name = info.name()
    if through_eegkit:
        import eegkit

        pipeline = eegkit.Pipeline({"type": "lsl", "params": {"name": name, "timeout": 10.0}})
        pipeline.add("filters.notch", id="notch", freq=50.0)
        pipeline.add("filters.bandpass", id="bp", low=1.0, high=40.0)
        pipeline.add("reref.average", id="car")
        pipeline.add("brain_fft.spectrum", id="spectrum", window=256, step=chunk)
        pipeline.add("brain_fft.band_power", id="alpha", input="car", window=256,
                     step=chunk, bands=[8, 12], band_names=["alpha"])
        name = f"bench-out-{tag}"
        pipeline.add_sink("lsl", input="car", name=name)
        pipeline.start(chunk=chunk, realtime=False, overrun="block")
    streams = pylsl.resolve_byprop("name", name, timeout=10.0)
    if not streams:
        raise SystemExit(f"stream {name} not found")
    inlet = pylsl.StreamInlet(streams[0], max_buflen=10)
    inlet.open_stream(timeout=10.0)
    sent, got = np.full(n_chunks, np.nan), np.full(n_chunks, np.nan)
    start = pylsl.local_clock() + 0.2
    receiver = threading.Thread(target=receive, args=(inlet, chunk, n_chunks, got,
                                                      time.monotonic() + seconds + 15))
    receiver.start()
    send(outlet, chunk, n_chunks, sent, start)
    receiver.join()
    if pipeline is not None:
        pipeline.stop()
    inlet.close_stream()
    del inlet, outlet
    skip = int(SFREQ / chunk)
    lat = (got - sent)[skip:]
    return lat[np.isfinite(lat)], n_chunks - skip


def latency(chunk: int = 32, seconds: float = 10.0) -> dict:
    """Both paths measured; ms per chunk beyond the chunk's own duration (flat dict,
    for the benchmark report)."""
    rows = {}
    for key, through in (("lsl_alone", False), ("eegkit", True)):
        lat, expected = measure(chunk, seconds, through)
        ms = lat * 1e3
        rows[key] = {"chunks": int(lat.size), "expected": expected,
                     "median_ms": round(float(np.median(ms)), 3),
                     "p99_ms": round(float(np.percentile(ms, 99)), 3),
                     "max_ms": round(float(ms.max()), 3)}
    return {"chunk_ms": chunk / SFREQ * 1e3,
            "lsl_alone_median_ms": rows["lsl_alone"]["median_ms"],
            "lsl_alone_p99_ms": rows["lsl_alone"]["p99_ms"],
            "eegkit_median_ms": rows["eegkit"]["median_ms"],
            "eegkit_p99_ms": rows["eegkit"]["p99_ms"],
            "eegkit_chunks": f"{rows['eegkit']['chunks']}/{rows['eegkit']['expected']}",
            "eegkit_added_median_ms": round(rows["eegkit"]["median_ms"]
                                            - rows["lsl_alone"]["median_ms"], 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "lsl_latency.json"))
    args = ap.parse_args(argv)
    r = latency(args.chunk, args.seconds)
    print(f"{N_CH} channels at {SFREQ:g} Hz, chunks of {args.chunk} ({r['chunk_ms']:g} ms), "
          f"{args.seconds:g} s; ms from the sender's push of a complete chunk to its last "
          f"sample in the receiver's hands (the chunk's own duration not included)")
    print(f"LSL alone (outlet -> inlet):           median {r['lsl_alone_median_ms']:.2f}, "
          f"p99 {r['lsl_alone_p99_ms']:.2f}")
    print(f"outlet -> eegkit quickstart -> inlet:  median {r['eegkit_median_ms']:.2f}, "
          f"p99 {r['eegkit_p99_ms']:.2f} ({r['eegkit_chunks']} chunks)")
    print(f"eegkit adds {r['eegkit_added_median_ms']:.2f} ms median (two LSL hops instead of one, "
          f"and the processing)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({**r, "seconds": args.seconds,
                                          "load_average": os.getloadavg()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
