"""The benchmark suite on tiny sizes: report structure and numeric cross-checks (no timings)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from eegkit._bench import hooks, numba_ref, report, scipy_ref, streaming
from eegkit._bench import workloads as wl

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


def test_quick_run_writes_json_and_markdown(quick_run):
    results, md, stdout = quick_run
    assert results["config"]["mode"] == "quick"
    assert set(results) >= {"machine", "streaming", "overhead", "offline", "coldstart", "targets"}
    for key in ("cpu", "numpy", "numba", "scipy", "blas_threads", "numba_threads"):
        assert results["machine"][key] not in (None, "")
    assert "OPENBLAS_NUM_THREADS=1" in results["machine"]["blas_threads"]
    assert "## Targets" in md and "## Streaming" in md and "## Offline" in md and "## Cold start" in md
    assert "## Targets" in stdout  # the table is printed too


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


def test_hooks_report_na_for_missing_modules_and_run_present_ones():
    res = hooks.run(quick=True, n_channels=4, hooks={
        "missing": ("eegkit._no_such_module", ("f",)),
        "widget frame cost": hooks.HOOKS["widget frame cost"]})
    assert res["missing"]["status"] == "n/a"
    widget = res["widget frame cost"]
    assert widget["status"] == "ok", widget
    assert widget["value"]["median_ms"] > 0
