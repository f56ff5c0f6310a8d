"""The benchmark suite (``benchmarks/``) on tiny sizes: report structure, numeric
cross-checks and each measurement's keys (no timings); ``eegkit bench`` outside a checkout."""

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import hooks, numba_ref, report, scipy_ref, streaming
from benchmarks import workloads as wl

SECTIONS = "streaming,offline,coldstart"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``eegkit bench --quick`` on 8 channels, one chunk size, 2 s offline."""
    out = tmp_path_factory.mktemp("bench")
    env = os.environ.copy()
    res = subprocess.run([sys.executable, "-m", "eegkit", "bench", "--quick", "--channels", "8",
                          "--chunks", "32", "--stream-chunks", "60", "--offline-seconds", "2",
                          "--dtypes", "float64,float32", "--repeats", "1", "--only", SECTIONS,
                          "--out", str(out), "--name", "smoke"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "smoke.json").read_text()), (out / "smoke.md").read_text(), res.stdout


@pytest.mark.slow  # the quick benchmark run, cold starts included
def test_quick_run_writes_json_and_markdown(quick_run):
    results, md, stdout = quick_run
    assert results["config"]["mode"] == "quick"
    assert set(results) >= {"machine", "streaming", "overhead", "offline", "coldstart", "targets"}
    for key in ("cpu", "numpy", "numba", "scipy", "blas_threads", "numba_threads"):
        assert results["machine"][key] not in (None, "")
    assert "OPENBLAS_NUM_THREADS=1" in results["machine"]["blas_threads"]
    assert "## Targets" in md and "## Streaming" in md and "## Offline" in md and "## Cold start" in md
    assert "## Targets" in stdout  # the table is printed too


@pytest.mark.slow  # the quick benchmark run, cold starts included
def test_streaming_rows_cover_every_implementation_and_agree(quick_run):
    rows = quick_run[0]["streaming"]
    assert [(r["dtype"], r["chunk"]) for r in rows] == [("float64", 32), ("float32", 32)]
    for r in rows:
        names = set(r["impls"])
        assert {"eegkit", "scipy", "numba per-stage", "numba fused"} <= names
        for st in r["impls"].values():
            assert 0 < st["median_us"] <= st["p99_us"]
            assert st["x_realtime"] > 0
        assert set(r["checks"]) == names - {"scipy"}
        for name, c in r["checks"].items():
            assert c["ok"], (name, c["message"])
            assert c["n_windows"] > 0
        assert {"eegkit / numba per-stage", "eegkit / numba fused", "scipy / eegkit"} <= set(r["ratios"])
        assert [s["id"] for s in r["eegkit_stats"]] == ["bp", "notch", "car", "alpha"]


@pytest.mark.slow  # the quick benchmark run, cold starts included
def test_overhead_profile_and_offline_and_cold_start(quick_run):
    results = quick_run[0]
    prof = results["overhead"][0]
    assert set(prof["levels"]) == {"dispatch", "kernels", "Stage.run", "push", "push copy"}
    assert set(prof["per_stage"]) == {"bp", "notch", "car", "alpha"}
    off = results["offline"]
    assert [(r["seconds_of_data"], r["dtype"]) for r in off] == [(2.0, "float64"), (2.0, "float32")]
    for r in off:
        assert {"memory copy (floor)", "scipy", "eegkit"} <= set(r["impls"])
        assert all(c["ok"] for c in r["checks"].values()), r["checks"]
    cold = results["coldstart"]
    assert cold["disabled_stages"] == []
    for key in ("import_s", "discovery_s", "stage_load_s", "spawn_to_first_chunk_s"):
        assert cold["warm_cache"][key] > 0 and cold["empty_cache"][key] > 0
    met = {t["target"]: t["met"] for t in results["targets"]}
    assert len(met) >= 8 and all(v in (True, False, None) for v in met.values())


class _Wrong(numba_ref.NumbaFused):
    """Fast but wrong: the band power off by 0.1 %."""

    name = "wrong"

    def step(self, chunk):
        out = super().step(chunk)
        return None if out is None else out * 1.001


def test_cross_check_catches_a_fast_but_wrong_implementation():
    data = wl.EegGenerator(8).make(4096)
    r = streaming.run_config(data, wl.SFREQ, 32, 40, extra=[_Wrong(8, wl.SFREQ, "float64", 32)])
    assert r["checks"]["numba fused"]["ok"]
    assert not r["checks"]["wrong"]["ok"]
    assert "band power differs" in r["checks"]["wrong"]["message"]
    bad = report.failed_checks({"streaming": [r]})
    assert len(bad) == 1 and "wrong" in bad[0]


def test_baselines_match_scipy_offline():
    x = wl.EegGenerator(4).make(3000)
    ref = scipy_ref.offline(x, wl.SFREQ)
    np.testing.assert_allclose(numba_ref.offline_stages(x, wl.SFREQ), ref, rtol=1e-10, atol=1e-18)
    np.testing.assert_allclose(numba_ref.offline_fused_parallel(x, wl.SFREQ), ref, rtol=1e-10, atol=1e-18)


def test_every_hook_names_a_benchmarks_function_and_its_arguments():
    for label, (module, function) in hooks.HOOKS.items():
        assert module.startswith("benchmarks."), label
        assert callable(getattr(importlib.import_module(module), function)), label
    assert set(hooks.arguments(quick=True, n_channels=4)) == set(hooks.HOOKS)


def test_hooks_run_in_children_and_report_failures():
    kwargs = hooks.arguments(quick=True, n_channels=4)
    res = hooks.run(quick=True, n_channels=4, hooks={
        "broken": ("json", "loads", {}),
        "widget frame cost": (*hooks.HOOKS["widget frame cost"], kwargs["widget frame cost"])})
    assert res["broken"]["status"] == "error" and "TypeError" in res["broken"]["reason"]
    widget = res["widget frame cost"]
    assert widget["status"] == "ok", widget
    assert widget["function"] == "benchmarks.widget.frame_cost"
    assert widget["value"]["median_ms"] > 0


def test_frame_cost_reports_numbers():
    from benchmarks.widget import frame_cost

    cost = frame_cost(n_channels=8, sfreq=250.0, seconds=2.0, n_frames=20)
    # after the first (whole) window, a frame carries only the 8 samples (250 Hz / 30 fps) that scrolled in
    assert cost["n_frames"] == 20 and cost["bytes_per_frame"] == 8 * 8 * 4
    assert 0 < cost["median_ms"] <= cost["p99_ms"] <= cost["max_ms"]


@pytest.mark.skipif(os.name != "posix", reason="process isolation needs POSIX")
def test_isolation_overhead_reports_both_paths():
    from benchmarks.isolation import overhead

    r = overhead(n_channels=8, chunk=32, n=200)
    for key in ("inprocess_median_us", "isolated_median_us", "overhead_median_us",
                "isolated_p99_us", "child_start_s"):
        assert np.isfinite(r[key])
    assert r["isolated_median_us"] > 0 and r["inprocess_median_us"] > 0


def test_reload_latency_measures_each_edit():
    from benchmarks.reload import latency

    result = latency(n_channels=2, chunk=8, sfreq=250.0, repeats=2)
    assert len(result["latencies_s"]) == 2 and result["max_s"] >= result["median_s"] > 0


@pytest.mark.timeout(600)
def test_batch_throughput_reports_rates():
    pytest.importorskip("dask.distributed")
    pytest.importorskip("mne")
    from benchmarks.batch import throughput

    result = throughput(n_recordings=2, seconds=2, n_channels=4, sfreq=250, workers=(1,))
    (run,) = result["runs"]
    assert run["workers"] == 1 and run["wall_s"] > 0
    assert run["samples_per_s"] == pytest.approx(2 * 500 / run["wall_s"], rel=0.01)
    assert run["recordings_per_min"] == pytest.approx(60 * 2 / run["wall_s"], rel=0.01)


def test_bench_outside_a_checkout_says_where_the_suite_is(tmp_path):
    """An eegkit without ``benchmarks/`` beside it, as installed from the wheel."""
    import eegkit

    shutil.copytree(Path(eegkit.__file__).parent, tmp_path / "eegkit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    res = subprocess.run([sys.executable, "-m", "eegkit", "bench", "--quick"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2
    assert res.stdout == "" and len(res.stderr.strip().splitlines()) == 1
    assert "benchmarks/ folder" in res.stderr and "python -m benchmarks" in res.stderr
