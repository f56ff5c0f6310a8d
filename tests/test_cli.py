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


# -- issue #14: trusted plugins, plugin exits, Ctrl-C ------------------------------------------
def _hijacking_filters(root):
    """A copy of the bundled filters plugin in ``root/plugins`` whose import leaves a marker."""
    import shutil
    from pathlib import Path

    from eegkit.plugin import package_dir, read_manifest

    bundled = package_dir("plugins") / "filters"
    folder = Path(root) / "plugins" / "filters"
    shutil.copytree(bundled, folder, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    for module in {s.module.name for s in read_manifest(bundled).stages}:
        with open(folder / module, "a") as f:
            f.write("\nimport pathlib\npathlib.Path('HIJACKED').write_text('local code ran')\n")
    return folder


def test_working_folder_plugin_cannot_replace_a_bundled_one_unless_trusted(tmp_path):
    """Issue #14 row 1: ``./plugins/filters`` is refused, named, and never imported;
    ``--trust-local`` runs it, and the run says which folder it used."""
    from pathlib import Path

    example = Path(eegkit.__file__).parent / "examples" / "alpha.json"
    folder = _hijacking_filters(tmp_path)
    res = run("run", str(example), "--duration", "1", "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "HIJACKED").exists()
    assert f"refused: plugin 'filters' at {folder}" in res.stderr
    assert "EEGKIT_TRUST_LOCAL_PLUGINS=1 or pass --trust-local" in res.stderr
    assert "filters 0.1.0 (bundled)" in res.stderr
    res = run("run", str(example), "--duration", "1", "-q", "--trust-local", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "HIJACKED").exists()
    assert f"filters 0.1.0 (project) {folder}" in res.stderr


def _faults_env(tmp_path):
    from pathlib import Path

    env = os.environ.copy()
    env["EEGKIT_PLUGINS_PATH"] = str(Path(__file__).resolve().parent / "fixtures" / "faults")
    return env


def test_sys_exit_in_plugin_code_does_not_end_eegkit_run(tmp_path):
    """Issue #14 row 2: ``sys.exit(3)`` in setup disables that stage; the run finishes
    and prints its summary."""
    p = eegkit.Pipeline(source={"type": "synthetic", "params": {"n_channels": 4, "sfreq": 100.0}})
    p.add("filters.bandpass", id="bp", low=1.0, high=30.0)
    path = tmp_path / "pipe.json"
    p.to_json(path)
    doc = json.loads(path.read_text())
    doc["stages"].append({"id": "fault", "type": "faults.exit_setup", "input": "bp"})
    path.write_text(json.dumps(doc))
    res = subprocess.run([sys.executable, "-m", "eegkit", "run", str(path), "--duration", "2",
                          "-q"], capture_output=True, text=True, env=_faults_env(tmp_path),
                         timeout=240)
    assert res.returncode not in (0, 3), res.stderr
    assert "median" in res.stdout and "processed 2.0 s" in res.stdout
    assert "stage 'fault' (faults.exit_setup) disabled: setup: SystemExit: 3" in res.stderr


def _start_run(tmp_path, stage, started="x real time"):
    p = eegkit.Pipeline(source={"type": "synthetic", "params": {"n_channels": 4, "sfreq": 100.0}})
    p.add("filters.bandpass", id="bp", low=1.0, high=30.0)
    path = tmp_path / "pipe.json"
    p.to_json(path)
    doc = json.loads(path.read_text())
    doc["stages"].append({"id": "slow", "input": "bp", **stage})
    path.write_text(json.dumps(doc))
    proc = subprocess.Popen([sys.executable, "-m", "eegkit", "run", str(path), "--duration",
                             "100000", "--chunk", "10"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_faults_env(tmp_path))
    line = ""
    while started not in line:  # progress and the plugins used go to stderr
        line = proc.stderr.readline()
        assert line, proc.communicate()
    return proc


def test_ctrl_c_stops_eegkit_run_between_chunks(tmp_path):
    """Issue #14 row 10: SIGINT while kernels run stops the run at a chunk boundary,
    with the summary."""
    import signal

    proc = _start_run(tmp_path, {"type": "faults.slow", "params": {"delay": 0.002}})
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopping after the current chunk" in err and "interrupted after" in err
    assert "slow" in out and "median" in out


def test_second_ctrl_c_quits_a_kernel_that_never_returns(tmp_path):
    """Issue #14 row 10: a kernel stuck inside one chunk cannot be stopped between chunks;
    a second SIGINT quits at once."""
    import signal
    import time

    proc = _start_run(tmp_path, {"type": "faults.stall", "params": {"at": 0, "delay": 600.0}},
                      started="plugins used:")
    time.sleep(2.0)  # the first chunk sleeps for 600 s
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert proc.poll() is None  # the first Ctrl-C waits for the chunk boundary
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "quitting now" in err
