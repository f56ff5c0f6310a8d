"""Execution plans: copies only where needed, fusion of in-place compiled chains."""

import numpy as np
import pytest

import eegkit
from eegkit import testing
from eegkit._numba import jit_disabled

# fusion and multi-threaded builds exist only when kernels are compiled
needs_jit = pytest.mark.skipif(jit_disabled(), reason="EEGKIT_DISABLE_JIT is set")


def chain(plugins=None, fuse=True):
    p = eegkit.Pipeline(plugins=plugins, fuse=fuse)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("filters.notch", id="notch", freq=50.0)
    p.add("reref.average", id="car")
    p.add("brain_fft.band_power", id="bands", window=64, step=16)
    return p


def stream(p, x, info, outputs, size=25):
    return testing.stream(p, info, x, size, outputs)


@needs_jit
def test_fused_chain_gives_identical_numbers(eeg):
    x, info = eeg
    ref = chain(fuse=False).process(x, sfreq=info.sfreq, ch_names=info.ch_names)
    p = chain()
    got = stream(p, x, info, ["car", "bands"])
    assert p.plan(["car", "bands"]).describe() == ["fused[bp, notch, car] (copy)", "bands (copy)"]
    assert np.array_equal(got["car"], ref["car"]) and np.array_equal(got["bands"], ref["bands"])
    stats = {s["id"]: s for s in p.stats()}
    assert stats["bp"]["fused_with"] == ["bp", "notch", "car"] and stats["bp"]["median_us"] is None
    assert stats["car"]["median_us"] > 0 and stats["bp"]["calls"] == stats["car"]["calls"]


@needs_jit
def test_observed_and_tapped_stages_are_not_fused(eeg):
    x, info = eeg
    p = chain()
    p.open(info)
    assert p.plan(None).describe() == ["bp (copy)", "notch (copy)", "car (copy)", "bands (copy)"]
    assert p.plan(["notch", "bands"]).describe() == ["fused[bp, notch] (copy)", "fused[car, bands] (copy)"]
    seen = []
    p.tap("bp", lambda b, first: seen.append(b.shape))
    assert p.plan(["bands"]).describe()[0] == "bp (copy)"
    p.push(x[:, :32], outputs=["bands"])
    assert seen == [(8, 32)]


def test_in_place_without_fusion_elides_copies(eeg):
    x, info = eeg
    p = chain(fuse=False)
    p.open(info)
    assert p.plan(["bands"]).describe() == ["bp (copy)", "notch (in place)", "car (in place)", "bands (in place)"]
    ref = chain(fuse=False).process(x, sfreq=info.sfreq)
    got = stream(p, x, info, ["bands"])
    assert np.array_equal(got["bands"], ref["bands"])


def test_failure_inside_fused_chain_disables_culprit_only(manager_with, eeg):
    x, info = eeg
    p = eegkit.Pipeline(plugins=manager_with)
    p.add("good_one.offset", id="pre", value=1.0)
    p.add("raises_process.boom", id="boom", after=2)
    p.add("good_one.offset", id="post", value=10.0)
    p.open(info)
    outs = [p.push(x[:, i:i + 10], outputs=["post"])["post"] for i in range(0, 60, 10)]
    assert p["boom"].status == "disabled" and "deliberate failure" in p["boom"].error
    assert p["pre"].status == "ok" and p["post"].status == "ok"
    for i, o in enumerate(outs):
        chunk = x[:, i * 10:(i + 1) * 10]
        factor = 2.0 if i < 2 else 1.0
        np.testing.assert_allclose(o, (chunk + 1.0) * factor + 10.0)
    assert "fused[pre, boom, post]" not in p.plan(["post"]).describe()


def test_no_fusion_without_jit(eeg, monkeypatch):
    monkeypatch.setenv("EEGKIT_DISABLE_JIT", "1")
    x, info = eeg
    from eegkit.plugin import PluginManager

    p = chain(PluginManager())
    p.open(info)
    assert not any(step.startswith("fused") for step in p.plan(["bands"]).describe())


def test_param_change_replans(eeg):
    x, info = eeg
    p = chain()
    p.open(info)
    p.push(x[:, :50], outputs=["car"])
    p["bp"].set_params(high=20.0)
    got = p.push(x[:, 50:100], outputs=["car"])["car"]
    q = chain(fuse=False)
    q.open(info)
    q.push(x[:, :50])
    q["bp"].set_params(high=20.0)
    assert np.array_equal(got, q.push(x[:, 50:100])["car"])


@needs_jit
def test_multithreaded_offline_blocks_give_identical_numbers():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 20000))
    p = chain()
    assert p["bp"].code.parallel is not None  # the filters kernel loops with eegkit.prange
    offline = p.process(x, sfreq=250.0, outputs=["car", "bands"])  # blocks >= PARALLEL_MIN
    assert all(s.kernel is None for s in p.stages)  # streaming is back on the serial build
    info = eegkit.StreamInfo(250.0, [f"ch{i}" for i in range(8)])
    streamed = stream(p, x, info, ["car", "bands"], size=32)
    assert np.array_equal(offline["car"], streamed["car"])
    assert np.array_equal(offline["bands"], streamed["bands"])


@needs_jit
def test_fused_chain_is_cached_on_disk_and_never_stale(tmp_path, monkeypatch):
    from eegkit.plugin import PluginManager

    monkeypatch.setenv("EEGKIT_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "plugins" / "arith"
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text(
        '[plugin]\nname = "arith"\nversion = "0.1.0"\napi = "1.0"\n'
        '[[stage]]\ntype = "arith.add"\nmodule = "stage.py"\nprocess = "add"\n'
        '[[stage]]\ntype = "arith.mul"\nmodule = "stage.py"\nprocess = "mul"\n')

    def run(add, mul):
        (folder / "stage.py").write_text(f"def add(x):\n    x += {add}\n\n\ndef mul(x):\n    x *= {mul}\n")
        p = eegkit.Pipeline(plugins=PluginManager(paths=[tmp_path / "plugins"], entry_points=False))
        p.add("arith.add", id="a")
        p.add("arith.mul", id="m")
        p.open(eegkit.StreamInfo(10.0, ["c0"]))
        out = p.push(np.ones((1, 4)), outputs=["m"])["m"]
        assert p.plan(["m"]).describe() == ["fused[a, m] (copy)"]
        return out

    assert np.all(run(1.0, 3.0) == 6.0)
    assert len(list((tmp_path / "cache" / "fused").glob("fused_*.py"))) == 1
    assert np.all(run(2.0, 3.0) == 9.0)  # same size, new content: a new fused module
    assert len(list((tmp_path / "cache" / "fused").glob("fused_*.py"))) == 2
