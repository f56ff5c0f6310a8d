"""Discovery reads manifests only and reports broken plugins without stopping."""

import json
import subprocess
import sys

import numpy as np
import pytest

import eegkit
from eegkit import PipelineError, PluginLoadError
from eegkit.plugin import PluginApiWarning, PluginManager, discover


def by_name(records):
    return {r.name: r for r in records}


def test_each_broken_fixture_is_reported_and_others_load(fixture_plugins):
    before = set(sys.modules)
    recs = by_name(discover([fixture_plugins], entry_points=False))
    # discovery never imports plugin code (api_major's module raises on import)
    assert not [m for m in set(sys.modules) - before if m.startswith("eegkit_plugin_")]
    assert recs["bad_toml"].status == "error" and "invalid TOML" in recs["bad_toml"].message
    assert recs["unknown_key"].status == "error" and "['colour']" in recs["unknown_key"].message
    assert recs["api_major"].status == "rejected"
    assert "2.0" in recs["api_major"].message and "1.1" in recs["api_major"].message
    assert recs["api_minor"].status == "warning" and "1.9" in recs["api_minor"].message
    assert recs["escape_path"].status == "error" and "leaves the plugin folder" in recs["escape_path"].message
    # syntax errors are found when the code loads, not at discovery
    for ok in ("good_one", "syntax_err", "raises_process", "wrong_shape"):
        assert recs[ok].status == "ok", recs[ok].message
    assert all(str(r.path).startswith(str(fixture_plugins)) for r in recs.values())


def test_rejected_and_broken_types_give_clear_errors(manager_with):
    p = eegkit.Pipeline(plugins=manager_with)
    with pytest.raises(PipelineError, match=r"plugin 'api_major', which is rejected.*API 2\.0"):
        p.add("api_major.copy")
    with pytest.raises(PluginLoadError, match=r"syntax_err.*SyntaxError"):
        p.add("syntax_err.copy")
    with pytest.raises(PipelineError, match=r"unknown stage type 'filters\.bandpas'\. Did you mean 'filters\.bandpass'\?"):
        p.add("filters.bandpas")
    # the pipeline is still usable, bundled plugins still load
    p.add("good_one.offset", id="g", value=1.5)
    out = p.process(np.zeros((2, 10)), sfreq=100.0)
    assert np.all(out["g"] == 1.5)


def test_newer_minor_warns_once_and_loads(manager_with):
    p = eegkit.Pipeline(plugins=manager_with)
    with pytest.warns(PluginApiWarning, match="1.9"):
        p.add("api_minor.scale", gain=3.0)
    out = p.process(np.ones((1, 4)), sfreq=10.0)
    assert np.all(out["scale"] == 3.0)


def test_shadowed_plugin(tmp_path, fixture_plugins):
    import shutil

    other = tmp_path / "more"
    shutil.copytree(fixture_plugins / "good_one", other / "good_one")
    recs = [r for r in discover([fixture_plugins, other], entry_points=False) if r.name == "good_one"]
    assert [r.status for r in recs] == ["ok", "shadowed"]
    assert str(fixture_plugins) in recs[1].message


def test_env_path_is_searched_first(fixture_plugins, monkeypatch):
    monkeypatch.setenv("EEGKIT_PLUGINS_PATH", str(fixture_plugins))
    names = [r.name for r in PluginManager().records]
    assert "good_one" in names and "filters" in names
    assert names.index("good_one") < names.index("filters")


def test_bundled_plugins_are_listed():
    recs = by_name(eegkit.list_plugins())
    for name in ("filters", "reref", "brain_fft", "example"):
        assert recs[name].status == "ok", recs[name].message
        assert recs[name].origin in ("bundled", "project")


def test_cli_plugins_list_json(fixture_plugins):
    env_run = subprocess.run([sys.executable, "-m", "eegkit", "plugins", "list", "--json"],
                             capture_output=True, text=True, check=True,
                             env={**__import__("os").environ, "EEGKIT_PLUGINS_PATH": str(fixture_plugins)})
    data = {r["name"]: r for r in json.loads(env_run.stdout)}
    assert data["filters"]["status"] == "ok"
    assert "filters.bandpass" in [s["type"] for s in data["filters"]["stages"]]
    assert data["filters"]["stages"][0]["params"]["order"]["type"] == "int"
    assert data["api_major"]["status"] == "rejected"
    assert data["bad_toml"]["status"] == "error"


def test_working_folder_plugin_may_not_replace_a_bundled_one(tmp_path, monkeypatch):
    """Issue #14 row 1: ``./plugins/filters`` is rejected (the bundled one is used) until
    the user trusts the working folder's plugins."""
    import shutil

    from eegkit.plugin import package_dir

    bundled = package_dir("plugins") / "filters"
    shutil.copytree(bundled, tmp_path / "plugins" / "filters")
    shutil.copytree(package_dir("plugins") / "reref", tmp_path / "plugins" / "mine")
    (tmp_path / "plugins" / "mine" / "plugin.toml").write_text(
        (bundled.parent / "reref" / "plugin.toml").read_text().replace('"reref', '"mine'))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EEGKIT_PLUGINS_PATH", raising=False)
    monkeypatch.delenv("EEGKIT_TRUST_LOCAL_PLUGINS", raising=False)
    manager = PluginManager(entry_points=False)
    local = [r for r in manager.records if r.name == "filters" and r.origin == "project"]
    assert [r.status for r in local] == ["rejected"]
    assert local[0].shadows == bundled and "--trust-local" in local[0].message
    rec, _ = manager.spec("filters.bandpass")
    assert rec.path == bundled and rec.status == "ok"
    assert manager.record("mine").origin == "project"  # a new name is not replacing anything
    monkeypatch.setenv("EEGKIT_TRUST_LOCAL_PLUGINS", "1")
    manager.refresh()
    rec, _ = manager.spec("filters.bandpass")
    assert rec.path == tmp_path / "plugins" / "filters"
    assert [r.status for r in manager.records if r.name == "filters"] == ["ok", "shadowed"]
