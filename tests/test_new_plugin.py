"""``eegkit new-plugin``: the generated plugin loads, filters like scipy and passes
``eegkit plugins check`` unchanged (the real CLI, as subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from eegkit import ParameterError, Pipeline, StreamInfo
from eegkit.plugin._scaffold import new_plugin
from eegkit.plugin import PluginManager, read_manifest


def eegkit_cli(*args, cwd, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "eegkit", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    """One numba cache for the subprocesses of this module (kept out of the home folder)."""
    return dict(os.environ, EEGKIT_CACHE_DIR=str(tmp_path_factory.mktemp("numba-cache")))


@pytest.mark.slow  # `eegkit plugins check` runs the new plugin's tests in a fresh process
def test_new_plugin_then_check_passes_unchanged(tmp_path, cache_env):
    made = eegkit_cli("new-plugin", "x", cwd=tmp_path, env=cache_env)
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "plugins" / "x"
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == {
        "plugin.toml", "stage.py", "tests/test_stage.py", "README.md"}
    checked = eegkit_cli("plugins", "check", "x", cwd=tmp_path, env=cache_env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "x: OK" in checked.stdout
    assert "whole recording = chunks" in checked.stdout
    assert "passed" in checked.stdout and "failed" not in checked.stdout


def test_new_plugin_with_ui_and_path(tmp_path, cache_env):
    where = tmp_path / "elsewhere"
    made = eegkit_cli("new-plugin", "viewed", "--ui", "--path", str(where), cwd=tmp_path, env=cache_env)
    assert made.returncode == 0, made.stderr
    folder = where / "viewed"
    manifest = read_manifest(folder, expected_name="viewed")
    assert manifest.ui_bundle == (folder / "ui" / "bundle.js").resolve()
    assert manifest.stages[0].view == "ui"
    source = manifest.ui_bundle.read_text()
    assert "export default function view({ model, api })" in source and "import " not in source
    assert 'title: "viewed: peak-to-peak amplitude per channel"' in source
    assert "msg:custom" not in source  # the view host speaks the frame protocol, the bundle only draws
    env = dict(cache_env, EEGKIT_PLUGINS_PATH=str(where))
    checked = eegkit_cli("plugins", "check", "viewed", "--no-tests", cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    from eegkit.notebook._widget import StreamView

    view = StreamView(StreamInfo(250.0, ["Cz"]), view=str(manifest.ui_bundle))
    assert view._view_js == source and view.frames == "window"
    view.close()


def test_the_generated_stage_is_a_one_pole_highpass(tmp_path):
    new_plugin("hp", tmp_path)
    p = Pipeline(plugins=PluginManager(paths=[tmp_path], entry_points=False))
    p.add("hp.highpass", id="hp", cutoff=2.0)
    x = np.random.default_rng(0).standard_normal((3, 2000))
    out = p.process(x, sfreq=500.0)["hp"]
    rc = 1 / (2 * np.pi * 2.0)
    a = rc / (rc + 1 / 500.0)
    np.testing.assert_allclose(out, signal.lfilter([a, -a], [1, -a], x, axis=1), rtol=1e-9, atol=1e-12)
    # -3 dB at the cutoff (of the analog prototype; close for cutoff << sfreq)
    w, h = signal.freqz([a, -a], [1, -a], worN=[2.0], fs=500.0)
    assert abs(20 * np.log10(abs(h[0])) + 3.0) < 0.1


@pytest.mark.parametrize("name", ["My-Plugin", "9lives", "_hidden", "has space"])
def test_invalid_names_are_refused_with_a_hint(tmp_path, name):
    with pytest.raises(ParameterError, match="invalid plugin name"):
        new_plugin(name, tmp_path)
    out = eegkit_cli("new-plugin", name, "--path", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "e.g." in out.stderr
    assert not any(tmp_path.iterdir())


def test_an_existing_folder_is_never_overwritten(tmp_path):
    new_plugin("taken", tmp_path)
    (tmp_path / "taken" / "stage.py").write_text("# mine\n")
    with pytest.raises(ParameterError, match="already exists"):
        new_plugin("taken", tmp_path)
    assert (tmp_path / "taken" / "stage.py").read_text() == "# mine\n"
