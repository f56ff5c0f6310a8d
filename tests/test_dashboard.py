"""Dashboard: views and controls made from manifests, live parameter changes, health."""

from __future__ import annotations

import time
from pathlib import Path

import ipywidgets as w
import numpy as np
import pytest

import eegkit
from eegkit.notebook._dashboard import Dashboard, dashboard_for, in_kernel
from eegkit.plugin import PluginManager, package_dir

SFREQ = 250.0

KNOBS_TOML = """
[plugin]
name = "knobs"
version = "0.1.0"
api = "1.0"

[[stage]]
type = "knobs.all"
module = "stage.py"
setup = "setup_all"
process = "process_all"
description = "One parameter of every kind."
[stage.params]
gain = { type = "float", default = 1.0, min = 0.0, max = 10.0, unit = "x", description = "scale factor" }
cutoff = { type = "float", default = 30.0, min = 0.0, unit = "Hz", description = "bounded by Nyquist" }
offset = { type = "float", default = 0.0, description = "unbounded" }
taps = { type = "int", default = 4, min = 1, max = 64 }
count = { type = "int", default = 3, min = 0 }
invert = { type = "bool", default = false }
mode = { type = "str", default = "a", choices = ["a", "b", "c"] }
label = { type = "str", default = "hello" }
edges = { type = "list[float]", default = [1.0, 4.0], unit = "Hz" }
sizes = { type = "list[int]", default = [2, 3] }
names = { type = "list[str]", default = ["x", "y"] }

[[stage]]
type = "knobs.mean"
module = "stage.py"
setup = "setup_mean"
process = "process_mean"

[[stage]]
type = "knobs.hidden"
module = "stage.py"
setup = "setup_all"
process = "process_all"
view = "none"
[stage.params]
gain = { type = "float", default = 1.0, min = 0.0, max = 10.0 }
"""

KNOBS_PY = '''
import numpy as np


def setup_all(info, gain, **others):
    return (np.array([gain]),)


def process_all(x, gain):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            x[i, j] *= gain[0]


def setup_mean(info):
    out = info.expand("features", ["mean"], [0.0], info.sfreq)
    return (), out


def process_mean(x):
    out = np.empty((x.shape[0], x.shape[1]))
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j]
    return out
'''


@pytest.fixture
def manager(tmp_plugin, fixture_plugins):
    base = PluginManager(paths=[fixture_plugins, package_dir("plugins")], entry_points=False)
    return tmp_plugin(KNOBS_TOML, KNOBS_PY, manager=base)


def synthetic(**params):
    return {"type": "synthetic", "params": {"n_channels": 4, "sfreq": SFREQ, "seed": 2, **params}}


def quickstart():
    p = eegkit.Pipeline(synthetic())
    p.add("filters.notch", id="notch", freq=50.0)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("reref.average", id="car")
    p.add("brain_fft.spectrum", id="spec")
    p.add("brain_fft.band_power", id="bands", input="car")
    return p


def wait_for(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def board():
    made = []

    def make(p, **kw):
        made.append((p, Dashboard(p, **kw)))
        return made[-1][1]

    yield make
    for p, d in made:
        p.stop()
        d.close()


def test_controls_follow_the_manifest(manager, board):
    p = eegkit.Pipeline(synthetic(), plugins=manager)
    p.add("knobs.all", id="k")
    d = board(p)
    c = d.card("k").controls
    assert list(c) == list(p["k"].code.spec.params)  # one control per declaration, in order
    gain = c["gain"].widget
    assert isinstance(gain, w.FloatSlider) and (gain.min, gain.max, gain.value) == (0.0, 10.0, 1.0)
    assert gain.tooltip == "scale factor" and not gain.continuous_update
    cutoff = c["cutoff"].widget
    assert isinstance(cutoff, w.FloatSlider) and cutoff.max == SFREQ / 2  # Hz: Nyquist bound
    assert isinstance(c["offset"].widget, w.FloatText)
    taps = c["taps"].widget
    assert isinstance(taps, w.IntSlider) and (taps.min, taps.max, taps.value) == (1, 64, 4)
    assert isinstance(c["count"].widget, w.IntText)
    assert isinstance(c["invert"].widget, w.Checkbox) and c["invert"].widget.value is False
    mode = c["mode"].widget
    assert isinstance(mode, w.Dropdown) and list(mode.options) == ["a", "b", "c"]
    assert isinstance(c["label"].widget, w.Text) and c["label"].widget.value == "hello"
    assert c["edges"].widget.value == "1.0, 4.0"
    assert c["sizes"].widget.value == "2, 3" and c["names"].widget.value == "x, y"
    units = {name: ctl.box.children[0].children[1].value for name, ctl in c.items()}
    assert "Hz" in units["cutoff"] and "Hz" in units["edges"] and "x" in units["gain"]


def test_every_control_sets_its_parameter(manager, board):
    p = eegkit.Pipeline(synthetic(), plugins=manager)
    p.add("knobs.all", id="k")
    c = board(p).card("k").controls
    changes = {"gain": 2.5, "cutoff": 12.0, "offset": -3.0, "taps": 9, "count": 7, "invert": True,
               "mode": "c", "label": "bye", "edges": "2, 8.5", "sizes": "4", "names": "'p', q"}
    for name, value in changes.items():
        c[name].widget.value = value
        assert c[name].error == "", name
    p.push(np.zeros((4, 8)))  # applied between two chunks
    assert p["k"].params == {"gain": 2.5, "cutoff": 12.0, "offset": -3.0, "taps": 9, "count": 7,
                             "invert": True, "mode": "c", "label": "bye", "edges": [2.0, 8.5],
                             "sizes": [4], "names": ["p", "q"]}


def test_rejected_values_show_their_error(manager, board):
    p = eegkit.Pipeline(synthetic(), plugins=manager)
    p.add("knobs.all", id="k")
    p.add("filters.bandpass", id="bp")
    d = board(p)
    count = d.card("k").controls["count"]
    count.widget.value = -2
    assert "must be >= 0" in count.error and "-2" in count.error
    assert count.widget.value == 3 and p["k"].params["count"] == 3  # back to what runs
    edges = d.card("k").controls["edges"]
    edges.widget.value = "1, four"
    assert "comma-separated list of float" in edges.error and "'four'" in edges.error
    count.widget.value = 5
    assert count.error == ""
    # accepted by validation, rejected by the plugin's setup when applied: shown on the card
    d.card("bp").controls["high"].widget.value = SFREQ / 2
    p.push(np.zeros((4, 8)))
    assert p["bp"].params["high"] == 40.0
    d.refresh()
    assert "below Nyquist" in d.card("bp").error.value
    assert d.card("bp").error.layout.display is None


def test_views_follow_manifest_and_output_kind(manager, board):
    p = eegkit.Pipeline(synthetic(), plugins=manager)
    p.add("filters.notch", id="notch")
    p.add("brain_fft.spectrum", id="spec")
    p.add("brain_fft.band_power", id="bands", input="notch")
    p.add("knobs.mean", id="mean", input="notch")
    p.add("knobs.hidden", id="hidden", input="notch")
    d = board(p)
    assert d.card("notch").view.view == "scope"
    assert d.card("spec").view.view == "spectrum"
    bundle = p["bands"].code.manifest.ui_bundle
    assert Path(d.card("bands").view.view) == bundle and bundle.name == "bundle.js"
    assert d.card("mean").view.view == "bars"   # no view declared: chosen by output kind
    assert d.card("hidden").view is None
    assert d.card("bands").view.params["band_names"][2] == "alpha"
    window = d.card("spec").controls["window"].widget  # 16..8192 samples: too wide for a slider
    assert isinstance(window, w.BoundedIntText) and (window.min, window.max) == (16, 8192)


def test_control_change_while_running_applies_between_chunks(board):
    p = quickstart()
    d = board(p)
    seen = []
    p.tap("notch", lambda block, first: seen.append((first, p["notch"].params["freq"])))
    p.start(chunk=25)
    wait_for(lambda: len(seen) >= 3)
    d.card("notch").controls["freq"].widget.value = 60.0
    wait_for(lambda: seen[-1][1] == 60.0)
    n = len(seen)
    wait_for(lambda: len(seen) >= n + 2)
    runner = p.runner
    p.stop()
    assert runner.stats()["state"] == "stopped"  # never restarted
    freqs = [f for _, f in seen]
    k = freqs.index(60.0)
    assert set(freqs[:k]) == {50.0} and set(freqs[k:]) == {60.0}
    assert [f for f, _ in seen] == list(range(0, 25 * len(seen), 25))


def test_views_receive_data_and_follow_layout_changes(board):
    p = quickstart()
    d = board(p)
    bands = d.card("bands")
    assert bands.view._buf.n_rows == 4 * 5
    p.start(chunk=25, realtime=False, overrun="block", duration=4.0)
    assert p.runner.join(30)
    assert d.card("car").view._buf.has_news() or d.card("car").view.stats()["sent"] > 0
    assert bands.view._buf.index is not None  # band powers arrived
    bands.controls["bands"].widget.value = "4, 8, 13"
    bands.controls["band_names"].widget.value = "theta, alpha"
    p.start(chunk=25, realtime=False, overrun="block", duration=2.0)
    assert p.runner.join(30)
    assert p.info_of("bands").n_channels == 4 * 2
    assert bands.view.info["ch_names"][:2] == ["Fz:theta", "Fz:alpha"]  # rebound to the new layout
    assert bands.view._buf.n_rows == 8
    d.refresh()
    assert bands.view.params["bands"] == [4.0, 8.0, 13.0]


def test_statistics_refresh_by_themselves(board):
    p = quickstart()
    d = board(p, refresh=0.2)
    assert "not running" in d.run_status.value
    p.start(chunk=25)
    wait_for(lambda: "running" in d.run_status.value and "chunks" in d.card("bp").timing.value
             and "no chunks" not in d.card("bp").timing.value)
    assert d.start_button.disabled and not d.stop_button.disabled
    p.stop()
    wait_for(lambda: "stopped" in d.run_status.value)


def test_disabled_stage_shows_its_error_in_its_view(manager, board):
    p = eegkit.Pipeline(synthetic(), plugins=manager)
    p.add("raises_process.boom", id="boom", after=2)
    d = board(p)
    p.start(chunk=25, realtime=False, overrun="block", duration=1.0)
    assert p.runner.join(30)
    d.refresh()
    status = d.card("boom").view.status
    assert status["state"] == "disabled" and "boom: deliberate failure" in status["error"]
    assert "disabled" in d.card("boom").title.value
    assert "boom: deliberate failure" in d.card("boom").error.value


def test_buttons(board):
    p = quickstart()
    d = board(p)
    d.start_button.click()
    wait_for(lambda: p.runner.stats()["chunks"] > 2)
    d.stop_button.click()
    assert p.runner.state == "stopped"
    at = p.first_sample
    d.start_button.click()  # continues where it stopped
    wait_for(lambda: p.first_sample > at)
    assert p.runner.running
    d.reset_button.click()  # restarts from sample 0, still running
    assert p.runner.running and p.first_sample < at + SFREQ
    d.stop_button.click()
    d.reset_button.click()  # stopped: rewinds only
    assert p.first_sample == 0 and not p.runner.running
    p.start()
    d._on_start()  # already running (started from code): the error is shown, not raised
    assert "already running" in d.run_status.value
    d.refresh()
    assert "already running" in d.run_status.value  # kept until an action succeeds
    d.stop_button.click()
    assert "already running" not in d.run_status.value


def test_a_change_made_before_the_dashboard_is_still_applied():
    p = quickstart()
    p.open()
    p["bp"].set_params(low=3.0)
    d = p.show()
    try:
        p.push(np.zeros((4, 8)))
        assert p["bp"].params["low"] == 3.0
    finally:
        d.close()


def test_show_reuses_the_dashboard_until_the_stages_change():
    p = quickstart()
    d = p.show()
    try:
        assert p.show() is d and dashboard_for(p) is d
        assert len(p["bp"].taps) == 1
        p.add("filters.lowpass", id="lp", input="bp")
        d2 = p.show()
        assert d2 is not d and d.closed and len(p["bp"].taps) == 1  # the old one let go
        assert "lp" in [c.stage.id for c in d2.cards]
        d2.close()
        assert p["bp"].taps == []
    finally:
        p.stop()
        p.show().close()


def test_repr_outside_a_kernel_is_text():
    assert not in_kernel()
    p = quickstart()
    bundle = p._repr_mimebundle_()
    assert bundle == {"text/plain": repr(p)}
    assert getattr(p, "_dashboard", None) is None  # nothing built, no threads started


def test_cards_wrap_the_controls_under_a_wide_view(board):
    d = board(quickstart())
    for card in d.cards:
        assert card.box.layout.flex_flow == "row wrap" and "eegkit-card" in card.box._dom_classes
        view, side = card.box.children
        assert view.layout.flex.startswith("100 1 ") and view.layout.min_width == "0"
        assert side.layout.width is None  # no fixed width: it may take the whole row under the view


def test_background_dashboard_shows_progress_then_its_cards():
    p = quickstart()
    with p.between_chunks():  # holds the compile thread before its first stage
        d = Dashboard(p, background=True, refresh=0.1)
        try:
            assert d.cards == [] and not d.ready.is_set()
            assert "compiling 0/5 stages" in d.run_status.value
        except BaseException:
            d.close()
            raise
    try:
        assert d.ready.wait(60)
        assert [c.stage.id for c in d.cards] == ["notch", "bp", "car", "spec", "bands"]
        assert len(d.children) == 1 + 5
        wait_for(lambda: "not running" in d.run_status.value)
        d.start_button.click()  # in a thread: returns before the run starts
        wait_for(lambda: p.runner is not None and p.runner.stats()["chunks"] > 2)
        wait_for(lambda: "running" in d.run_status.value and d.stop_button.disabled is False)
    finally:
        p.stop()
        d.close()


def test_open_counts_the_stages_it_sets_up():
    p = quickstart()
    seen = []
    original = p["car"].configure

    def configure(info):  # the real method, observed: where does open() say it is?
        seen.append(p.opening)
        return original(info)

    p["car"].configure = configure
    p.open()
    assert seen == [(2, 5)] and p.opening is None


def test_a_disabled_stage_can_be_re_enabled_from_its_card(manager, board):
    p = eegkit.Pipeline(synthetic(), plugins=manager)
    p.add("raises_process.boom", id="boom", after=2)
    p.add("filters.bandpass", id="bp", input="boom")
    d = board(p)
    card = d.card("boom")
    assert card.enable_button.layout.display == "none"
    p.start(chunk=25, realtime=False, overrun="block", duration=1.0)
    assert p.runner.join(30)
    d.refresh()
    assert p["boom"].status == "disabled" and card.enable_button.layout.display is None
    card.enable_button.click()
    assert p["boom"].status == "ok" and p["boom"].error is None
    assert card.enable_button.layout.display == "none"
    out = p.push(np.zeros((4, 25)))  # runs again (and fails again after 2 chunks)
    assert out["bp"].shape == (4, 25)
