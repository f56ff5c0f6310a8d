"""``eegkit run`` as a user runs it: a subprocess on a JSON file."""

import json
import os
import subprocess
import sys

import numpy as np

import eegkit


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "eegkit", *args], capture_output=True,
                          text=True, cwd=cwd, env=os.environ.copy(), timeout=240)


def test_run_gives_same_numbers_as_process(tmp_path):
    p = eegkit.Pipeline(source={"type": "synthetic", "params": {"n_channels": 6, "sfreq": 250.0, "seed": 9}})
    p.add("filters.notch", id="notch")
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("reref.average", id="car")
    p.add("brain_fft.band_power", id="bands", window=250, step=50)
    path = tmp_path / "pipe.json"
    p.to_json(path)
    out = tmp_path / "out.npz"
    res = run("run", str(path), "--duration", "8", "--chunk", "25", "--output", str(out))
    assert res.returncode == 0, res.stderr
    assert "bands" in res.stdout and "median" in res.stdout and "x real time" in res.stdout
    got = np.load(out)
    src = eegkit.make_source({"type": "synthetic", "params": {"n_channels": 6, "sfreq": 250.0, "seed": 9, "duration": 8.0}})
    ref = p.process(src.read_all(), sfreq=250.0, ch_names=src.info.ch_names)
    for key in ("notch", "bp", "car", "bands"):
        assert np.array_equal(got[key], ref[key]), key
    assert float(got["bands__sfreq"]) == 5.0


def test_bad_pipeline_exits_nonzero_with_clear_message(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"eegkit_pipeline": 1, "stages": [{"id": "x", "type": "filters.bandpass", "params": {"low": "one"}}]}))
    res = run("run", str(path))
    assert res.returncode == 2
    assert "stage 'x'" in res.stderr and "parameter 'low' expects float" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_file_and_source_override(tmp_path):
    res = run("run", str(tmp_path / "nope.json"))
    assert res.returncode == 2 and "no such pipeline file" in res.stderr
    p = eegkit.Pipeline()
    p.add("filters.highpass", cutoff=1.0)
    path = tmp_path / "p.json"
    p.to_json(path)
    res = run("run", str(path), "--source", "synthetic,n_channels=3,sfreq=100", "--duration", "2", "-q")
    assert res.returncode == 0, res.stderr
    assert "3 channels at 100 Hz" in res.stderr


def test_bundled_example_runs():
    from pathlib import Path

    example = Path(eegkit.__file__).parent / "examples" / "alpha.json"
    res = run("run", str(example), "--duration", "5", "-q")
    assert res.returncode == 0, res.stderr
    assert "alpha" in res.stdout
