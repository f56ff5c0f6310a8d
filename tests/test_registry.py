"""Live pipelines: a replaced pipeline (same name, or built again by the same cell) stops,
and ``eegkit.stop_all`` stops every run."""

from __future__ import annotations

import pytest

import eegkit
from eegkit.runtime import _registry

SOURCE = {"type": "synthetic", "params": {"n_channels": 4, "sfreq": 250.0, "seed": 3}}


def started(**kw):
    p = eegkit.Pipeline(SOURCE, **kw)
    p.add("filters.notch", id="notch")
    p.start(chunk=25)
    return p


@pytest.fixture(autouse=True)
def _nothing_left_running():
    yield
    eegkit.stop_all()


def test_a_pipeline_built_under_a_taken_name_stops_the_old_one():
    old = started(name="live")
    assert _registry.named("live") is old and old.runner.running
    new = eegkit.Pipeline(SOURCE, name="live")
    assert old.runner.state == "stopped" and old.name is None
    assert new.name == "live" and _registry.named("live") is new
    other = started(name="other")  # other names are left alone
    eegkit.Pipeline(SOURCE, name="live")
    assert other.runner.running


def test_a_bad_name_is_refused():
    with pytest.raises(eegkit.PipelineError, match=r"name=\.\.\.\) must be a non-empty string, got 3"):
        eegkit.Pipeline(SOURCE, name=3)


def test_a_cell_run_again_stops_what_it_built_before():
    first = [started(), started()]  # two pipelines built by one run of a cell
    for p in first:
        _registry.claim_origin(p, "cell-1", "run-1")
    elsewhere = started()
    _registry.claim_origin(elsewhere, "cell-2", "run-1")
    assert all(p.runner.running for p in first)
    again = started()
    _registry.claim_origin(again, "cell-1", "run-2")
    assert [p.runner.state for p in first] == ["stopped", "stopped"]
    assert again.runner.running and elsewhere.runner.running


def test_replacing_closes_the_old_dashboard():
    old = eegkit.Pipeline(SOURCE, name="shown")
    old.add("filters.notch", id="notch")
    board = old.show()
    eegkit.Pipeline(SOURCE, name="shown")
    assert board.closed and old["notch"].taps == []


def test_stop_all_stops_every_run():
    runs = [started(), started(name="n")]
    idle = eegkit.Pipeline(SOURCE)
    stopped = eegkit.stop_all()
    assert {id(p) for p in stopped} >= {id(p) for p in runs} and idle not in stopped
    assert all(p.runner.state == "stopped" for p in runs)
    assert eegkit.stop_all() == []
    assert "stop_all" in eegkit.__all__
