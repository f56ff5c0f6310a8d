"""Shared fixtures. The repository root is put first on sys.path and on the
PYTHONPATH of subprocesses, so tests run against this checkout."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from eegkit.testing import tmp_plugin  # noqa: F401  (fixture: plugins defined inline)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
# LSL discovery stays on loopback in every test and every subprocess.
os.environ.setdefault("LSLAPICFG", str(Path(__file__).resolve().parent / "data" / "lsl_api.cfg"))


@pytest.fixture
def fixture_plugins(tmp_path):
    """A copy of tests/fixtures/plugins (good and deliberately broken plugins)."""
    dst = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "plugins", dst, symlinks=True)
    return dst


@pytest.fixture
def manager_with(fixture_plugins):
    """A PluginManager over the fixture plugins plus the bundled ones."""
    from eegkit.plugin import PluginManager, package_dir

    return PluginManager(paths=[fixture_plugins, package_dir("plugins")], entry_points=False)


@pytest.fixture
def eeg():
    """8 channels x 10 s of synthetic EEG at 250 Hz, float64."""
    from eegkit.sources import make_source

    src = make_source({"type": "synthetic", "params": {"n_channels": 8, "sfreq": 250.0,
                                                        "seed": 3, "duration": 10.0}})
    return src.read_all(), src.info
