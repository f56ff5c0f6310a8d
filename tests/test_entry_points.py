"""Plugins distributed as pip packages (``eegkit.plugins`` entry points) work exactly like
folder plugins. A real wheel is built by pip (an in-tree PEP 517 backend, no network)
and installed into a temporary target folder that subprocesses get on PYTHONPATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MANIFEST = """[plugin]
name = "{name}"
version = "0.3.0"
api = "{api}"
description = "entry-point test plugin"

[[stage]]
type = "{name}.cumsum"
module = "stage.py"
[stage.params]
scale = {{ type = "float", default = 0.5 }}
"""
STAGE = """import numpy as np


def setup(info, scale=0.5):
    return (np.array([scale]), np.zeros(info.n_channels))


def process(x, scale, acc):
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            acc[c] = scale[0] * acc[c] + x[c, i]
            x[c, i] = acc[c]
"""
TEST = """def test_packaged_tests_run():
    assert True
"""
BACKEND = '''"""A minimal PEP 517 backend: the wheel is a zip with the packages and a dist-info."""
import base64
import hashlib
import zipfile
from pathlib import Path

NAME, VERSION = "eegkit_ep_demo", "0.3.0"
PACKAGES = ["eegkit_ep_good", "eegkit_ep_major", "eegkit_ep_minor", "eegkit_ep_nested"]
ENTRY_POINTS = """[eegkit.plugins]
ep_good = eegkit_ep_good
ep_major = eegkit_ep_major
ep_minor = eegkit_ep_minor
ep_nested = eegkit_ep_nested.sub
"""


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    root = Path(__file__).resolve().parent
    dist = f"{NAME}-{VERSION}"
    wheel = Path(wheel_directory) / f"{dist}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w") as zf:
        def add(name, data):
            zf.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        for package in PACKAGES:
            for path in sorted((root / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    add(path.relative_to(root).as_posix(), path.read_bytes())
        add(f"{dist}.dist-info/METADATA",
            f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n".encode())
        add(f"{dist}.dist-info/WHEEL",
            b"Wheel-Version: 1.0\\nGenerator: eegkit-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
        add(f"{dist}.dist-info/entry_points.txt", ENTRY_POINTS.encode())
        record.append(f"{dist}.dist-info/RECORD,,")
        zf.writestr(f"{dist}.dist-info/RECORD", "\\n".join(record) + "\\n")
    return wheel.name
'''


IMPORT_MARKER = """import os
import pathlib

if os.environ.get("EEGKIT_TEST_IMPORT_MARKER"):
    pathlib.Path(os.environ["EEGKIT_TEST_IMPORT_MARKER"]).write_text("package code ran")
"""


def write_plugin(folder, name, api="1.0", tests=False):
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text(MANIFEST.format(name=name, api=api))
    (folder / "stage.py").write_text(STAGE)
    if tests:
        (folder / "tests").mkdir()
        (folder / "tests" / "test_packaged.py").write_text(TEST)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The distribution built and installed with pip into a target folder."""
    src = tmp_path_factory.mktemp("src")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n')
    (src / "backend.py").write_text(BACKEND)
    for package, name, api in (("eegkit_ep_good", "ep_good", "1.0"),
                               ("eegkit_ep_major", "ep_major", "2.0"),
                               ("eegkit_ep_minor", "ep_minor", "1.4")):
        write_plugin(src / package, name, api, tests=name == "ep_good")
        (src / package / "__init__.py").write_text("")
    # a plugin in a sub-package: discovery must find it without running the package's code
    write_plugin(src / "eegkit_ep_nested" / "sub", "ep_nested")
    (src / "eegkit_ep_nested" / "__init__.py").write_text(IMPORT_MARKER)
    target = tmp_path_factory.mktemp("site")
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
                          "--no-index", "--disable-pip-version-check", "--target", str(target),
                          str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (target / "eegkit_ep_good" / "plugin.toml").is_file()
    return target


def env_with(target=None, plugins_path=None, cache=None):
    env = dict(os.environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if target is not None:
        parts.append(str(target))
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["EEGKIT_PLUGINS_PATH"] = str(plugins_path) if plugins_path else ""
    if cache is not None:
        env["EEGKIT_CACHE_DIR"] = str(cache)
    return env


def eegkit_cli(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "eegkit", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_installed_plugins_are_discovered_with_the_version_policy(installed, tmp_path):
    out = eegkit_cli("plugins", "list", "--json", env=env_with(installed), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    records = {r["name"]: r for r in json.loads(out.stdout) if r["origin"] == "entry-point"}
    assert records["ep_good"]["status"] == "ok"
    assert Path(records["ep_good"]["path"]) == installed / "eegkit_ep_good"
    assert records["ep_major"]["status"] == "rejected"
    assert "major versions must match" in records["ep_major"]["message"]
    assert records["ep_minor"]["status"] == "warning"
    assert "newer than this eegkit" in records["ep_minor"]["message"]


def test_entry_point_naming_a_sub_package_is_found_without_importing(installed, tmp_path):
    """Issue #14 row 5: ``ep = pkg.sub`` used to import ``pkg/__init__.py`` during
    discovery; the folder now comes from the distribution's file list."""
    env = env_with(installed)
    env["EEGKIT_TEST_IMPORT_MARKER"] = str(tmp_path / "IMPORTED")
    out = eegkit_cli("plugins", "list", "--json", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    records = {r["name"]: r for r in json.loads(out.stdout) if r["origin"] == "entry-point"}
    assert records["ep_nested"]["status"] == "ok", records["ep_nested"]
    assert Path(records["ep_nested"]["path"]) == installed / "eegkit_ep_nested" / "sub"
    assert not (tmp_path / "IMPORTED").exists()


@pytest.mark.slow  # several fresh eegkit processes
def test_check_an_installed_plugin_like_a_folder_one(installed, tmp_path):
    env = env_with(installed, cache=tmp_path / "cache")
    out = eegkit_cli("plugins", "check", "ep_good", "ep_minor", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ep_good: OK" in out.stdout and "1 passed" in out.stdout  # its packaged tests ran
    assert "ep_minor: OK" in out.stdout and "warning" in out.stdout
    out = eegkit_cli("plugins", "check", "ep_major", env=env, cwd=tmp_path)
    assert out.returncode == 1 and "major versions must match" in out.stdout


@pytest.mark.slow  # several fresh eegkit processes
def test_an_installed_plugin_gives_the_numbers_of_the_same_folder_plugin(installed, tmp_path):
    """The same pipeline JSON run headless against the package and against a folder copy."""
    folder_root = tmp_path / "folder_plugins"
    shutil.copytree(installed / "eegkit_ep_good", folder_root / "ep_good")
    doc = {"eegkit_pipeline": 1,
           "source": {"type": "synthetic", "params": {"n_channels": 4, "sfreq": 250.0, "seed": 2}},
           "stages": [{"id": "c", "type": "ep_good.cumsum", "params": {"scale": 0.9}}]}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    results = {}
    for label, env in (("package", env_with(installed)),
                       ("folder", env_with(plugins_path=folder_root))):
        out = eegkit_cli("run", "p.json", "--duration", "2", "--quiet", "-o", f"{label}.npz",
                         env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        with np.load(tmp_path / f"{label}.npz") as f:
            results[label] = f["c"]
    assert results["package"].shape == (4, 500)
    np.testing.assert_array_equal(results["package"], results["folder"])


@pytest.mark.slow  # several fresh eegkit processes
def test_an_installed_plugin_in_a_pipeline_with_isolation(installed, tmp_path):
    code = ("import numpy as np, eegkit\n"
            "p = eegkit.Pipeline()\n"
            "p.add('ep_good.cumsum', id='a', scale=0.5)\n"
            "p.add('ep_good.cumsum', id='b', input='source', scale=0.5, isolation='process')\n"
            "x = np.random.default_rng(0).standard_normal((3, 100))\n"
            "out = p.process(x, sfreq=100.0)\n"
            "assert p['b'].isolation == 'process' and p['b'].status == 'ok'\n"
            "print(float(np.abs(out['a'] - out['b']).max()), p['a'].code.manifest.path.name)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env_with(installed), cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0.0", "eegkit_ep_good"]


def test_an_installed_plugin_hot_reloads(installed, tmp_path, monkeypatch):
    """The package folder is watched like a plugin folder (e.g. an editable install)."""
    import time

    from eegkit import Pipeline
    from eegkit.live._watch import Watcher
    from eegkit.plugin import PluginManager

    site = tmp_path / "site"
    shutil.copytree(installed, site)
    monkeypatch.syspath_prepend(str(site))
    manager = PluginManager(paths=[], entry_points=True)
    assert manager.record("ep_good").path.resolve() == (site / "eegkit_ep_good").resolve()
    p = Pipeline(plugins=manager)
    p.add("ep_good.cumsum", id="c", scale=0.0)  # scale 0: output = input
    x = np.ones((2, 4))
    np.testing.assert_array_equal(p.process(x, sfreq=100.0)["c"], x)
    with Watcher(pipelines=[p]) as watcher:
        stage = site / "eegkit_ep_good" / "stage.py"
        stage.write_text(stage.read_text().replace("+ x[c, i]", "+ 3.0 * x[c, i]"))
        end = time.monotonic() + 20
        while not any(e["kind"] == "reload" for e in watcher.events) and time.monotonic() < end:
            time.sleep(0.02)
        [event] = [e for e in watcher.events if e["kind"] == "reload"]
    assert event["ok"], event
    np.testing.assert_array_equal(p.process(x, sfreq=100.0)["c"], 3 * x)
