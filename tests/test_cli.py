"""``eegkit run`` as a user runs it: a subprocess on a JSON file."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

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


# -- exit codes (README, "Exit codes"): 0 ok, 1 stage disabled, 2 bad input, 3 I/O ----------
FAULTS = os.path.join(os.path.dirname(__file__), "fixtures", "faults")


def doc(tmp_path, sinks=(), stages=None, source=None, name="p.json"):
    d = {"eegkit_pipeline": 1,
         "source": source or {"type": "synthetic", "params": {"n_channels": 4, "sfreq": 100.0}},
         "stages": stages or [{"id": "hp", "type": "filters.highpass", "params": {"cutoff": 1.0}}],
         "sinks": list(sinks)}
    path = tmp_path / name
    path.write_text(json.dumps(d))
    return str(path)


def one_line_error(res, code, *words):
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "error: " in last, last
    for w in words:
        assert w in last, last


def test_exit_code_constants_are_the_documented_ones():
    from pathlib import Path

    from eegkit import cli

    assert (cli.EXIT_OK, cli.EXIT_PARTIAL, cli.EXIT_INPUT, cli.EXIT_IO) == (0, 1, 2, 3)
    readme = (Path(eegkit.__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 70 |", "| 130 |"):
        assert code in section, code


def test_exit_1_when_a_stage_is_disabled(tmp_path):
    path = doc(tmp_path, stages=[{"id": "bad", "type": "faults.raise_process", "params": {"at": 1}}])
    env = dict(os.environ, EEGKIT_PLUGINS_PATH=FAULTS)
    res = subprocess.run([sys.executable, "-m", "eegkit", "run", path, "--duration", "2", "-q"],
                         capture_output=True, text=True, env=env, timeout=240, check=False)
    assert res.returncode == 1, res.stderr
    assert "stage 'bad' (faults.raise_process) disabled" in res.stderr


@pytest.mark.parametrize("case", ["duration_nan", "stage_nope", "duplicate_keys", "huge_number",
                                  "too_many_stages", "record_txt", "empty_path"])
def test_exit_2_on_bad_input_with_one_line(tmp_path, case):
    args = ["--duration", "1", "-q"]
    if case == "duration_nan":
        args = ["--duration", "nan"]
        path = doc(tmp_path)
    elif case == "stage_nope":
        path = doc(tmp_path)
        args += ["--stage", "nope", "--output", str(tmp_path / "o.npz")]
    elif case == "duplicate_keys":
        path = tmp_path / "p.json"
        path.write_text('{"eegkit_pipeline": 1, "stages": [], "sinks": [{"type": "record", '
                        '"input": "source", "params": {"path": "a.bdf"}}], "sinks": []}')
    elif case == "huge_number":
        path = tmp_path / "p.json"
        path.write_text('{"eegkit_pipeline": 1, "stages": [], "sinks": [{"type": "record", '
                        '"input": "source", "params": {"path": "a.bdf", "physical_range": 1e400}}]}')
    elif case == "too_many_stages":
        path = doc(tmp_path, stages=[{"id": f"s{i}", "type": "filters.highpass"} for i in range(3000)])
    elif case == "record_txt":
        path = doc(tmp_path, [{"type": "record", "input": "hp",
                               "params": {"path": str(tmp_path / "notes.txt"), "format": "bdf"}}])
    else:
        path = doc(tmp_path, [{"type": "record", "input": "hp", "params": {"path": ""}}])
    res = run("run", str(path), *args)
    words = {"duration_nan": ["--duration", "'nan'"], "stage_nope": ["--stage 'nope'"],
             "duplicate_keys": ["'sinks' appears twice"], "huge_number": ["1e400"],
             "too_many_stages": ["3000 stages", "at most 256"], "record_txt": ["notes.txt"],
             "empty_path": ["path is empty"]}[case]
    one_line_error(res, 2, *words)
    assert not (tmp_path / "notes.txt").exists() and not (tmp_path / "o.npz").exists()


def test_exit_3_for_an_existing_recording_and_overwrite_replaces_it(tmp_path):
    mne = pytest.importorskip("mne")
    out = tmp_path / "rec.bdf"
    path = doc(tmp_path, [{"type": "record", "input": "hp", "params": {"path": str(out)}}])
    assert run("run", path, "--duration", "2", "-q").returncode == 0
    before = out.read_bytes()
    res = run("run", path, "--duration", "3", "-q")
    one_line_error(res, 3, "rec.bdf exists", "--overwrite")
    assert out.read_bytes() == before
    res = run("run", path, "--duration", "3", "-q", "--overwrite")
    assert res.returncode == 0, res.stderr
    assert mne.io.read_raw(out, verbose="error").n_times == 300


def test_a_later_sink_that_cannot_open_leaves_the_earlier_recording_intact(tmp_path):
    out = tmp_path / "rec.bdf"
    path = doc(tmp_path, [{"type": "record", "input": "hp", "params": {"path": str(out)}}])
    assert run("run", path, "--duration", "2", "-q").returncode == 0
    before = out.read_bytes()
    folder = tmp_path / "b.bdf"
    folder.mkdir()
    path = doc(tmp_path, [{"type": "record", "input": "hp", "params": {"path": str(out)}},
                          {"type": "record", "input": "source", "params": {"path": str(folder)}}])
    res = run("run", path, "--duration", "5", "-q", "--overwrite")
    one_line_error(res, 3, "b.bdf is a folder")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bdf", "p.json", "rec.bdf"]


def test_disk_full_is_one_line_naming_the_file(tmp_path):
    import resource
    import signal

    mne = pytest.importorskip("mne")
    out = tmp_path / "full.bdf"
    path = doc(tmp_path, [{"type": "record", "input": "hp", "params": {"path": str(out)}}],
               source={"type": "synthetic", "params": {"n_channels": 8, "sfreq": 250.0}})

    def small_disk():  # the kernel refuses writes past 20 kB: a full disk for this process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    res = subprocess.run([sys.executable, "-m", "eegkit", "run", path, "--duration", "60", "-q"],
                         capture_output=True, text=True, env=os.environ.copy(), timeout=240,
                         preexec_fn=small_disk, check=False)
    one_line_error(res, 3, "RecordSink: cannot write", "full.bdf", "File too large")
    back = mne.io.read_raw(out, verbose="error")  # what was flushed is still readable
    assert back.n_times % 250 == 0 and back.n_times >= 250
