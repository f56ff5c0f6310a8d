"""example.rectify: the smallest plugin, compiled, plain Python, and through a Pipeline."""

from pathlib import Path

import numpy as np
import pytest

from eegkit._numba import cache_dir, is_compiled, jit, jit_disabled
from eegkit.testing import load_module

HERE = Path(__file__).resolve().parent.parent
STAGE_FILE = HERE / "stage.py"


def signed(dtype=np.float64, shape=(8, 500)):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rectify_in_place(tmp_path, dtype):
    with cache_dir(tmp_path):
        kernel = jit(load_module(STAGE_FILE, "_eegkit_test_example_stage").process)
    assert is_compiled(kernel) != jit_disabled()
    x = signed(dtype)
    y = x.copy()
    assert kernel(y) is None
    np.testing.assert_array_equal(y, np.abs(x))
    assert y.dtype == dtype


def test_plain_python_when_jit_disabled(monkeypatch):
    monkeypatch.setenv("EEGKIT_DISABLE_JIT", "1")
    kernel = jit(load_module(STAGE_FILE, "_eegkit_test_example_stage_nojit").process)
    assert not is_compiled(kernel)
    x = signed(shape=(2, 20))
    y = x.copy()
    kernel(y)
    np.testing.assert_array_equal(y, np.abs(x))


def test_manifest_and_pipeline():
    import eegkit
    from eegkit.plugin import read_manifest

    manifest = read_manifest(HERE, expected_name="example")
    assert [s.type for s in manifest.stages] == ["example.rectify"]
    assert len((HERE / "plugin.toml").read_text().splitlines()) == 7
    p = eegkit.Pipeline(plugins=eegkit.PluginManager(paths=[HERE.parent], entry_points=False))
    p.add("example.rectify", id="rect")
    x = signed()
    out = p.process(x, sfreq=250.0)
    np.testing.assert_array_equal(out["rect"], np.abs(x))
    np.testing.assert_array_equal(x, signed())  # the caller's array is not modified
    p.open(p.info_of("source"))
    streamed = np.concatenate([p.push(x[:, i:i + 7])["rect"] for i in range(0, 500, 7)], axis=1)
    np.testing.assert_array_equal(streamed, out["rect"])
