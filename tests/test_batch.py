"""Tests of ``eegkit batch``: real Dask clusters (a LocalCluster of worker processes, and
a scheduler plus workers started as separate processes) over real and synthetic files."""

from __future__ import annotations

import csv
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask.distributed")
mne = pytest.importorskip("mne")

from eegkit import Pipeline  # noqa: E402
from eegkit.batching._client import (_completed, _job_template, batch, recording_names,  # noqa: E402
                                     resolve_inputs)
from eegkit.batching._worker import NpyWriter  # noqa: E402
from eegkit._errors import ParameterError, StageError  # noqa: E402
from eegkit.cli import main as cli_main  # noqa: E402
from eegkit.plugin import PluginManager, package_dir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
PYEDFLIB = importlib.resources.files("pyedflib")


def make_pipeline(high=30.0, plugins=None):
    p = Pipeline(plugins=plugins)
    p.add("filters.bandpass", id="bp", low=1.0, high=high)
    p.add("brain_fft.band_power", id="bands", input="bp", window=128, step=32)
    return p


def write_fif(path, n_channels, sfreq, seconds, seed):
    rng = np.random.default_rng(seed)
    info = mne.create_info([f"EEG{i:02d}" for i in range(n_channels)], sfreq, "eeg")
    data = rng.standard_normal((n_channels, int(seconds * sfreq))) * 2e-5
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_annotations(mne.Annotations([0.5], [0.1], ["stim"]))
    raw.save(path, verbose="error")
    return path


def reference(pipe, path):
    """Pipeline.process in this process on the whole file, read by MNE directly."""
    raw = mne.io.read_raw(path, preload=True, verbose="error")
    raw.pick([n for n, t in zip(raw.ch_names, raw.get_channel_types()) if t != "stim"])
    return pipe.process(raw)


def read_summary(path):
    with open(path, newline="", encoding="utf-8") as f:
        return {Path(r["recording"]).name: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Synthetic FIF and EDF files, two real EDF files from pyedflib, one corrupt file."""
    d = tmp_path_factory.mktemp("recordings")
    files = [write_fif(d / "a_raw.fif", 8, 250.0, 20.0, 1),
             write_fif(d / "b_raw.fif", 3, 500.0, 7.31, 2)]
    edf = d / "c.edf"
    raw = mne.io.RawArray(np.random.default_rng(3).standard_normal((4, 2560)) * 3e-5,
                          mne.create_info(["Fz", "Cz", "Pz", "Oz"], 256.0, "eeg"), verbose="error")
    mne.export.export_raw(edf, raw, fmt="edf", verbose="error")
    files.append(edf)
    for src in (PYEDFLIB / "tests" / "data" / "test_subsecond.edf",
                PYEDFLIB / "data" / "test_generator.edf"):
        shutil.copyfile(src, d / Path(str(src)).name)
        files.append(d / Path(str(src)).name)
    corrupt = d / "corrupt.edf"
    corrupt.write_bytes(b"0       not an EDF header at all " * 40)
    files.append(corrupt)
    return files


# -- a LocalCluster of two worker processes ---------------------------------------------
@pytest.mark.slow  # starts a Dask cluster of worker processes
@pytest.mark.timeout(600)
def test_local_cluster_matches_process_and_reruns_skip(recordings, tmp_path, capsys):
    pipe = make_pipeline()
    out = tmp_path / "out"
    summary = batch(pipe, [str(p) for p in recordings], out=out, workers=2, retries=1)

    assert summary.path == out / "summary.csv"
    assert summary.counts() == {"ok": 5, "error": 1} and "corrupt.edf" in summary._repr_html_()
    rows = read_summary(summary.path)
    assert set(rows) == {p.name for p in recordings}
    bad = rows.pop("corrupt.edf")
    assert bad["status"] == "error" and "corrupt.edf" in bad["error"]
    assert not (out / "corrupt").exists()
    err = capsys.readouterr().err
    assert "dashboard: http://127.0.0.1:" in err and "6/6 recordings, 1 failed" in err

    for name, row in rows.items():
        assert row["status"] == "ok", row
        path = Path(row["recording"])
        ref = reference(pipe, path)
        folder = Path(row["output"])
        meta = json.loads((folder / "meta.json").read_text())
        assert int(row["n_samples"]) == meta["n_samples"] == ref["bp"].shape[1]
        assert float(row["duration_s"]) == pytest.approx(meta["n_samples"] / meta["sfreq"])
        for sid in ("bp", "bands"):
            got = np.load(folder / f"{sid}.npy", mmap_mode="r")
            assert got.shape == ref[sid].shape, (name, sid)
            assert np.array_equal(got, ref[sid]), (name, sid)
            assert meta["outputs"][sid]["info"] == pipe.info_of(sid).to_dict()
        with open(folder / "markers.csv", newline="") as f:
            markers = list(csv.DictReader(f))
        assert meta["n_markers"] == len(markers)
        assert isinstance(meta["warnings"], list) and meta["pipeline_hash"]
        if name.endswith(".fif"):
            assert [m["description"] for m in markers] == ["stim"]
    subsecond = read_summary(summary.path)["test_subsecond.edf"]
    assert float(subsecond["duration_s"]) == pytest.approx(698.0)
    assert not list(out.glob(".*"))  # no temporary folders left behind

    # the same command again, from the command line: finished work is skipped
    doc = tmp_path / "pipeline.json"
    pipe.to_json(doc)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/*.npy")}
    proc = subprocess.run([sys.executable, "-m", "eegkit", "batch", str(doc),
                           *map(str, recordings), "--out", str(out), "--workers", "1", "-q"],
                          env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # the corrupt file still fails
    assert "5 skipped" in proc.stdout and "1 failed" in proc.stdout
    assert "corrupt.edf" in proc.stderr
    again = read_summary(out / "summary.csv")
    assert {n: r["status"] for n, r in again.items()} == {
        **{n: "skipped" for n in rows}, "corrupt.edf": "error"}
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*.npy")} == mtimes


def test_changed_pipeline_or_input_is_not_skipped(tmp_path):
    path = write_fif(tmp_path / "x_raw.fif", 2, 250.0, 2.0, 5)
    folder = tmp_path / "out" / "x_raw"
    folder.mkdir(parents=True)
    for sid in ("bp", "bands"):
        np.save(folder / f"{sid}.npy", np.zeros((1, 1)))
    template = _job_template(make_pipeline(), ["bp", "bands"], 65536, False)
    st = os.stat(path)
    meta = {"pipeline_hash": template["hash"], "recording": str(path.resolve()), "n_samples": 500,
            "duration_s": 2.0, "input": {"size": st.st_size, "mtime_ns": st.st_mtime_ns}}
    (folder / "meta.json").write_text(json.dumps(meta))
    assert _completed(folder, path.resolve(), template["hash"], ["bp", "bands"]) is not None
    for other in (_job_template(make_pipeline(high=25.0), ["bp", "bands"], 65536, False),
                  _job_template(make_pipeline(), ["bands"], 65536, False)):
        assert other["hash"] != template["hash"]
        assert _completed(folder, path.resolve(), other["hash"], ["bp", "bands"]) is None
    assert _job_template(make_pipeline(), ["bp", "bands"], 1024, False)["hash"] == template["hash"]
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _completed(folder, path.resolve(), template["hash"], ["bp", "bands"]) is None


# -- a worker lost mid-task ------------------------------------------------------------------
CRASHY_TOML = """\
[plugin]
name = "crashy"
version = "0.1.0"
api = "1.0"
description = "Kills its worker process the first time it is set up."

[[stage]]
type = "crashy.once"
module = "stage.py"
[stage.params]
marker = { type = "str", default = "" }
"""
CRASHY_PY = """\
import os


def setup(info, marker=""):
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)  # the worker process dies in the middle of the task
    return ()


def process(x):
    return None
"""


@pytest.mark.slow  # starts a Dask cluster of worker processes
@pytest.mark.timeout(600)
def test_worker_lost_mid_task_is_retried_with_shipped_plugins(tmp_path):
    plugins = tmp_path / "my_plugins"
    (plugins / "crashy").mkdir(parents=True)
    (plugins / "crashy" / "plugin.toml").write_text(CRASHY_TOML)
    (plugins / "crashy" / "stage.py").write_text(CRASHY_PY)
    manager = PluginManager(paths=[plugins, package_dir("plugins")], entry_points=False)
    marker = tmp_path / "died-once"
    pipe = Pipeline(plugins=manager)
    pipe.add("crashy.once", id="crash", marker=str(marker))
    pipe.add("filters.bandpass", id="bp", low=2.0, high=20.0)
    files = [write_fif(tmp_path / f"r{i}_raw.fif", 2, 200.0, 3.0 + i, 10 + i) for i in range(2)]
    # the workers' own discovery does not know "crashy": it must travel with the tasks
    summary = batch(pipe, files, out=tmp_path / "out", workers=2, retries=1, stages=["bp"],
                    ship_plugins=True, progress=False)
    assert marker.exists()  # a worker really died
    assert [r["status"] for r in summary] == ["ok", "ok"], summary
    plain = Pipeline()
    plain.add("filters.bandpass", id="bp", low=2.0, high=20.0)
    for row, path in zip(summary, files):
        got = np.load(Path(row["output"]) / "bp.npy")
        assert np.array_equal(got, reference(plain, path)["bp"])
        assert not (Path(row["output"]) / "crash.npy").exists()


# -- a scheduler and workers started as separate processes -----------------------------------
@pytest.fixture
def dask_cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on loopback; yields the address."""
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file)],
        env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 120
        while not sched_file.exists() and time.monotonic() < deadline:
            assert procs[0].poll() is None, "the scheduler exited"
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                 "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}"],
                env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.mark.slow  # starts a Dask cluster of worker processes
@pytest.mark.timeout(600)
def test_batch_on_a_running_scheduler(dask_cluster, tmp_path, capsys):
    files = [write_fif(tmp_path / f"s{i}_raw.fif", 4, 250.0, 4.0 + 3 * i, 20 + i) for i in range(3)]
    manifest = tmp_path / "list.txt"
    manifest.write_text("# recordings\n" + "\n".join(p.name for p in files) + "\n")
    pipe = make_pipeline()
    summary = batch(pipe, [manifest], out=tmp_path / "out", scheduler=dask_cluster,
                    stages=["bands"])
    assert [r["status"] for r in summary] == ["ok"] * 3, summary
    assert "dashboard: http://127.0.0.1:" in capsys.readouterr().err
    workers = set()
    for row, path in zip(summary, files):
        folder = Path(row["output"])
        assert sorted(p.name for p in folder.iterdir()) == ["bands.npy", "markers.csv", "meta.json"]
        assert np.array_equal(np.load(folder / "bands.npy"), reference(pipe, path)["bands"])
        workers.add(json.loads((folder / "meta.json").read_text())["worker"])
    assert workers  # hostnames of the workers that ran the tasks


# -- inputs, names, output files, CLI errors (no cluster) --------------------------------------
def test_resolve_inputs_files_globs_manifests_and_bids(tmp_path):
    (tmp_path / "d" / "x").mkdir(parents=True)
    a, b = tmp_path / "d" / "a.edf", tmp_path / "d" / "x" / "b.fif"
    a.write_bytes(b"")
    b.write_bytes(b"")
    (tmp_path / "d" / "notes.json").write_text("{}")
    assert resolve_inputs(str(a)) == [a.resolve()]
    assert resolve_inputs([str(tmp_path / "d" / "**" / "*")]) == [a.resolve(), b.resolve()]
    assert resolve_inputs([tmp_path / "d", a]) == [a.resolve(), b.resolve()]  # no repeats
    (tmp_path / "list.txt").write_text(f"# comment\n\nd/x/b.fif\n{a}\n")
    assert resolve_inputs([tmp_path / "list.txt"]) == [b.resolve(), a.resolve()]
    (tmp_path / "m.csv").write_text("subject,Path\n1,d/a.edf\n2,d/x/b.fif\n")
    assert resolve_inputs([tmp_path / "m.csv"]) == [a.resolve(), b.resolve()]
    (tmp_path / "m.tsv").write_text("path\tage\nd/x/b.fif\t30\n")
    assert resolve_inputs([tmp_path / "m.tsv"]) == [b.resolve()]
    (tmp_path / "bad.csv").write_text("subject,where\n1,a.edf\n")
    with pytest.raises(ParameterError, match=r"bad\.csv needs a 'path' column.*'where'"):
        resolve_inputs([tmp_path / "bad.csv"])
    with pytest.raises(ParameterError, match="matches no files"):
        resolve_inputs([str(tmp_path / "nothing" / "*.edf")])
    missing = tmp_path / "gone.edf"  # kept, so that the summary reports it
    assert resolve_inputs([missing]) == [missing.resolve()]

    bids = tmp_path / "bids"
    for sub, ses in (("01", None), ("02", "1")):
        eeg = bids / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "eeg"
        eeg.mkdir(parents=True)
        stem = f"sub-{sub}{'_ses-' + ses if ses else ''}_task-rest"
        (eeg / f"{stem}_eeg.vhdr").write_text("")
        (eeg / f"{stem}_eeg.eeg").write_bytes(b"")
        (eeg / f"{stem}_eeg.json").write_text("{}")
        (eeg / f"{stem}_channels.tsv").write_text("name\n")
    (bids / "derivatives" / "x").mkdir(parents=True)
    (bids / "derivatives" / "x" / "clean.fif").write_bytes(b"")
    got = [p.name for p in resolve_inputs([bids])]
    assert got == ["sub-01_task-rest_eeg.vhdr", "sub-02_ses-1_task-rest_eeg.vhdr"]


def test_recording_names_are_unique_and_safe():
    names = recording_names([Path("/a/rec.edf"), Path("/b/rec.edf"), Path("/c/x y_raw.fif.gz"),
                             Path("/d/sub-01_task-rest_eeg.vhdr")])
    assert names[0] != names[1] and names[0].startswith("rec-") and names[1].startswith("rec-")
    assert names[2:] == ["x_y_raw", "sub-01_task-rest_eeg"]
    assert recording_names([Path("/a/rec.edf"), Path("/b/rec.edf")]) == names[:2]  # stable


@pytest.mark.parametrize("length", [None, 1000])
def test_npy_writer_streams_blocks(tmp_path, length):
    rng = np.random.default_rng(0)
    full = rng.standard_normal((5, 1000))
    w = NpyWriter(tmp_path / "x.npy", 5, "float64", length)
    for start, stop in ((0, 1), (1, 1), (1, 300), (300, 999), (999, 1000)):
        w.write(full[:, start:stop])
    w.close()
    for mode in (None, "r"):
        got = np.load(tmp_path / "x.npy", mmap_mode=mode)
        assert got.shape == (5, 1000) and np.array_equal(got, full)
    assert (tmp_path / "x.npy").stat().st_size == 128 + full.nbytes


def test_npy_writer_checks_lengths(tmp_path):
    w = NpyWriter(tmp_path / "e.npy", 2, "float32", None)
    w.close()
    assert np.load(tmp_path / "e.npy").shape == (2, 0)
    w = NpyWriter(tmp_path / "short.npy", 2, "float64", 10)
    w.write(np.zeros((2, 4)))
    with pytest.raises(StageError, match="4 samples written, 10 expected"):
        w.close()
    w = NpyWriter(tmp_path / "long.npy", 2, "float64", 3)
    with pytest.raises(StageError, match="more samples than the 3 expected"):
        w.write(np.zeros((2, 4)))
    with pytest.raises(StageError, match="0 samples written, 3 expected"):
        w.close()


def test_cli_rejects_unknown_stage_before_starting_a_cluster(tmp_path, capsys):
    doc = tmp_path / "p.json"
    make_pipeline().to_json(doc)
    f = write_fif(tmp_path / "r_raw.fif", 2, 250.0, 1.0, 0)
    code = cli_main(["batch", str(doc), str(f), "--out", str(tmp_path / "o"), "--stage", "bp,nope"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "bp, bands" in err
    assert not (tmp_path / "o").exists()


# -- issue #14: --out, manifests and the scheduler fail before any task, in one line --------
@pytest.mark.parametrize("where", ["under_a_file", "is_a_file", "read_only"])
def test_unusable_out_fails_before_any_task(tmp_path, capsys, where):
    doc = tmp_path / "p.json"
    make_pipeline().to_json(doc)
    f = write_fif(tmp_path / "r_raw.fif", 2, 250.0, 1.0, 0)
    (tmp_path / "file").write_text("")
    out = {"under_a_file": tmp_path / "file" / "o", "is_a_file": tmp_path / "file",
           "read_only": tmp_path / "ro" / "o"}[where]
    if where == "read_only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        (tmp_path / "ro").mkdir(mode=0o555)
    code = cli_main(["batch", str(doc), str(f), "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(out) in err and ("cannot be written" in err or "is not a folder" in err)
    assert not list(tmp_path.glob("**/meta.json"))  # no task ran


def test_manifest_that_is_not_utf8_is_a_one_line_error(tmp_path, capsys):
    doc = tmp_path / "p.json"
    make_pipeline().to_json(doc)
    write_fif(tmp_path / "r_raw.fif", 2, 250.0, 1.0, 0)
    manifest = tmp_path / "list.txt"
    manifest.write_bytes(b"r_raw.fif\n\xff\xfeoops.fif\n")
    code = cli_main(["batch", str(doc), str(manifest), "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"manifest {manifest} is not UTF-8 text (byte 10" in err


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    import socket

    doc = tmp_path / "p.json"
    make_pipeline().to_json(doc)
    f = write_fif(tmp_path / "r_raw.fif", 2, 250.0, 1.0, 0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("EEGKIT_SCHEDULER_TIMEOUT", "2s")
    code = cli_main(["batch", str(doc), str(f), "--out", str(tmp_path / "o"), "-q",
                     "--scheduler", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err
    assert f"cannot reach the Dask scheduler at 'tcp://127.0.0.1:{port}' within 2s" in err
