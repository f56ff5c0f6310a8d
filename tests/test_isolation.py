"""Process isolation: real child processes that segfault, exit, hang or raise, and a
pipeline that keeps producing output around them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import eegkit
from eegkit import Pipeline, StreamInfo
from eegkit.runtime._isolate import IsolatedCode
from eegkit.plugin import PluginManager, package_dir

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process isolation needs POSIX")

LIFECYCLE = Path(__file__).resolve().parent / "fixtures" / "lifecycle"
INFO = StreamInfo(250.0, ["Fz", "Cz", "Pz"])
N = 16  # samples per chunk


@pytest.fixture(scope="module")
def manager():
    return PluginManager(paths=[LIFECYCLE, package_dir("plugins")], entry_points=False)


def chunks(n_chunks, seed=0, rows=3):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((rows, N)) for _ in range(n_chunks)]


def sandwich(manager, **bomb):
    """offset (in process) -> bomb (isolated) -> offset (in process)."""
    p = Pipeline(plugins=manager)
    p.add("offset.add", id="before", value=1.0)
    p.add("crashy.bomb", id="bomb", **bomb)
    p.add("offset.add", id="after", value=10.0)
    p.open(INFO)
    return p


def run_through(p, data):
    outs = [p.push(x) for x in data]
    return {k: [o[k] for o in outs] for k in outs[0]}


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("mode, says", [("segv", "SIGSEGV"), ("exit", "exited with code 3"),
                                        ("raise", "ValueError: crashy: raised on purpose")])
def test_a_failing_isolated_stage_is_disabled_and_the_pipeline_goes_on(manager, mode, says):
    p = sandwich(manager, mode=mode, after=3)
    bomb = p["bomb"]
    assert bomb.isolation == "process" and isinstance(bomb.code, IsolatedCode)
    pid = bomb.code.pid
    data = chunks(8)
    out = run_through(p, data)
    for k, x in enumerate(data):
        # every stage gives a full chunk every time: nothing lost downstream
        assert all(out[s][k].shape == (3, N) for s in ("before", "bomb", "after"))
        np.testing.assert_allclose(out["before"][k], x + 1.0)
        factor = 2.0 if k < 3 else 1.0  # doubled while alive, passed through once disabled
        np.testing.assert_allclose(out["bomb"][k], factor * (x + 1.0))
        np.testing.assert_allclose(out["after"][k], factor * (x + 1.0) + 10.0)
    assert bomb.status == "disabled" and says in bomb.error
    assert [s["status"] for s in p.status()] == ["ok", "disabled", "ok"]
    assert p["after"].samples_out == 8 * N
    if mode != "raise":
        assert not alive(pid)


def test_a_hanging_isolated_stage_misses_its_deadline_and_is_killed(manager):
    p = sandwich(manager, mode="hang", after=2, isolation_timeout=0.5)
    pid = p["bomb"].code.pid
    out = run_through(p, chunks(5, seed=1))
    assert p["bomb"].status == "disabled"
    assert "no answer from its child process within 0.5 s" in p["bomb"].error
    assert not alive(pid)
    assert [o.shape[1] for o in out["after"]] == [N] * 5
    assert p["after"].status == "ok"


def test_enable_starts_a_new_child(manager):
    p = sandwich(manager, mode="segv", after=1)
    first = p["bomb"].code.pid
    run_through(p, chunks(3))
    assert p["bomb"].status == "disabled"
    p["bomb"].enable()
    assert p["bomb"].status == "ok" and p["bomb"].code.pid != first
    x = chunks(1, seed=5)[0]
    np.testing.assert_allclose(p.push(x)["bomb"], 2.0 * (x + 1.0))  # its counter starts again


def test_a_module_that_crashes_on_import_never_reaches_the_parent(manager):
    p = Pipeline(plugins=manager)
    p.add("offset.add", id="before")
    stage = p.add("import_crash.copy", id="crash")  # isolated by its manifest
    p.open(INFO)
    assert stage.status == "disabled" and "SIGSEGV" in stage.error
    assert not any(name.startswith("eegkit_plugin_import_crash") for name in sys.modules)
    x = chunks(1)[0]
    np.testing.assert_allclose(p.push(x)["crash"], x + 1.0)


def test_isolated_results_equal_in_process_results(manager):
    """Same numbers, chunk by chunk, for an in-place stage, a stage returning new arrays of
    another length (decimation), and a bundled spectrum stage (more rows out than in)."""
    data = chunks(12, seed=3)
    data[5] = np.random.default_rng(9).standard_normal((3, 3000))  # grows the shared memory
    results = {}
    for mode in ("none", "process"):
        p = Pipeline(plugins=manager)
        p.add("crashy.bomb", id="double", isolation=mode)
        p.add("crashy.decimate", id="dec", input="double", isolation=mode, factor=3)
        p.add("brain_fft.band_power", id="bands", input="source", isolation=mode,
              window=64, step=16)
        p.open(INFO)
        outs = [p.push(x) for x in data]
        results[mode] = {k: np.concatenate([o[k] for o in outs], axis=1) for k in outs[0]}
        assert all(s["status"] == "ok" for s in p.status())
        assert p["dec"].isolation == mode and p["dec"].out_info.sfreq == pytest.approx(250.0 / 3)
    for k in results["none"]:
        np.testing.assert_array_equal(results["process"][k], results["none"][k])
    assert results["none"]["dec"].shape[1] == int(np.ceil(sum(x.shape[1] for x in data) / 3))


def test_the_manifest_choice_can_be_overridden_and_survives_json(manager, tmp_path):
    p = Pipeline(plugins=manager)
    p.add("crashy.bomb", id="inproc", isolation="none")
    p.add("crashy.bomb", id="iso", input="source", isolation_timeout=2.5)
    assert p["inproc"].isolation == "none" and p["iso"].isolation == "process"
    doc = p.to_dict()
    assert doc["stages"][0]["isolation"] == "none"
    assert "isolation" not in doc["stages"][1] and doc["stages"][1]["isolation_timeout"] == 2.5
    q = Pipeline.from_json(p.to_json(tmp_path / "p.json"), plugins=manager)
    assert q["inproc"].isolation == "none" and q["iso"].isolation == "process"
    assert q["iso"].code.timeout == 2.5
    with pytest.raises(eegkit.ParameterError, match="isolation"):
        p.add("offset.add", isolation="thread")
    with pytest.raises(eegkit.ParameterError, match="needs isolation='process'"):
        p.add("offset.add", isolation_timeout=1.0)
    bad = dict(doc, stages=[dict(doc["stages"][1], isolation_timeout=-1)])
    with pytest.raises(eegkit.PipelineError, match="isolation_timeout"):
        Pipeline.from_dict(bad, plugins=manager)


def test_removing_a_stage_stops_its_child(manager):
    p = sandwich(manager)
    pid = p["bomb"].code.pid
    assert alive(pid)
    p.remove("bomb")
    assert not alive(pid)
