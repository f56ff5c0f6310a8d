"""Loading plugin code: numba's cache keyed by content, and plugins defined inline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import eegkit
from eegkit._numba import jit_disabled
from eegkit.plugin import PluginManager
from eegkit.plugin._loader import cache_dir, plugin_digest
from eegkit.testing import TemporaryPlugin

needs_jit = pytest.mark.skipif(jit_disabled(), reason="EEGKIT_DISABLE_JIT is set")

GAIN = {"plugin": {"name": "gain"},
        "stage": [{"type": "gain.scale", "params": {"k": {"type": "float", "default": 2.0}}}]}
GAIN_PY = "def setup(info, k):\n    return (k,)\n\n\ndef process(x, k):\n    x *= k\n"
# load the plugins under argv[1] in a fresh process, run one chunk, report numba's counters
CHILD = """
import json, sys
import numpy as np
import eegkit
from eegkit.plugin import PluginManager
p = eegkit.Pipeline(plugins=PluginManager(paths=[sys.argv[1]], entry_points=False), fuse=False)
p.add("gain.scale", id="g", k=3.0)
out = p.process(np.ones((2, 4)), sfreq=100.0)["g"]
stats = p["g"].code.process.stats
print(json.dumps({"out": float(out[0, 0]), "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values()), "cache": stats.cache_path}))
"""


def child(folder, env):
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_jit
def test_a_copied_plugin_reuses_the_machine_code_of_identical_code(tmp_path, monkeypatch):
    """The cache folder is named by plugin name and code digest, not by the plugin's
    folder: a copy elsewhere (new path, new mtimes) loads from the cache. (New code
    compiling into a new folder is test_reload's same-size-edit test.)"""
    monkeypatch.setenv("EEGKIT_CACHE_DIR", str(tmp_path / "cache"))
    env = dict(os.environ)
    with TemporaryPlugin(GAIN, GAIN_PY) as plugin:
        first = child(plugin.root, env)
        assert first == {**first, "out": 3.0, "misses": 1, "hits": 0}
        copy = tmp_path / "elsewhere" / "gain"
        shutil.copytree(plugin.path, copy)
        manifest = PluginManager(paths=[copy.parent], entry_points=False).record("gain").manifest
    second = child(copy.parent, env)
    assert second == {**first, "misses": 0, "hits": 1}
    assert second["cache"] == str(cache_dir(manifest, plugin_digest(manifest)))


def test_temporary_plugin_is_seen_by_its_manager_only(monkeypatch):
    monkeypatch.chdir(os.path.dirname(__file__))  # no ./plugins folder here
    env = dict(os.environ)
    with TemporaryPlugin(GAIN, GAIN_PY) as plugin:
        manager = plugin.register()
        assert manager.record("gain").origin == "temporary"
        assert "gain.scale" in manager.stage_types() and "filters.notch" in manager.stage_types()
        assert PluginManager().record("gain") is None and dict(os.environ) == env
        p = eegkit.Pipeline(plugins=manager)
        p.add("gain.scale", id="g", k=0.5)
        assert np.array_equal(p.process(np.ones((1, 3)), sfreq=10.0)["g"], np.full((1, 3), 0.5))
        folder = plugin.path
    assert not folder.exists() and manager.record("gain") is None


def test_temporary_plugin_from_toml_text_and_broken_manifests(tmp_plugin):
    manager = tmp_plugin('[plugin]\nname = "twice"\nversion = "0.2.0"\napi = "1.0"\n'
                         '[[stage]]\ntype = "twice.x2"\nmodule = "lib/x2.py"\n',
                         files={"lib/x2.py": "def process(x):\n    x *= 2.0\n"})
    assert manager.record("twice").manifest.version == "0.2.0"
    assert "twice.x2" in manager.stage_types()
    # a bad manifest is reported by discovery, like any plugin folder's
    tmp_plugin({"plugin": {"name": "bad"}, "stage": [{"type": "other.x"}]}, "", manager=manager)
    rec = manager.record("bad")
    assert rec.status == "error" and "must be 'bad.<lowercase_name>'" in rec.message
    with pytest.raises(ValueError, match=r"needs \[plugin\] name"):
        TemporaryPlugin({"stage": []})


# in one process: compile the plugin's kernel with eegkit.testing (another module name),
# then load the same file as a plugin in a second process: its cache must not hold
# entries that re-import the testing module
TESTING_FIRST = """
import sys
from pathlib import Path
from eegkit.plugin import PluginManager
from eegkit.testing import compile_kernel
rec = PluginManager(paths=[sys.argv[1]], entry_points=False).record("gain")
stage = Path(rec.path) / "stage.py"
import numpy as np
from eegkit.plugin._loader import load_stage_code
code = load_stage_code(rec.manifest, rec.manifest.stages[0])   # the plugin's name first
module, kernel = compile_kernel(stage, "process", "_eegkit_test_gain_stage")
x = np.ones((2, 4)); kernel(x, 2.0)
assert x[0, 0] == 2.0
"""


@needs_jit
def test_the_same_file_under_another_module_name_keeps_its_own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EEGKIT_CACHE_DIR", str(tmp_path / "cache"))
    env = dict(os.environ)
    with TemporaryPlugin(GAIN, GAIN_PY) as plugin:
        done = subprocess.run([sys.executable, "-c", TESTING_FIRST, str(plugin.root)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        again = child(plugin.root, env)  # would fail: No module named '_eegkit_test_gain_stage'
    assert again["out"] == 3.0
