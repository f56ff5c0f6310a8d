"""Hot reload with real files, a real watchfiles watcher and a pipeline pushed from
another thread: edits go live between two chunks, broken edits keep the old code."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from eegkit import Pipeline, StreamInfo
from eegkit.live import _reload, _watch
from eegkit.runtime import _registry
from eegkit.plugin import PluginManager
from eegkit.plugin._loader import Code, cache_dir, plugin_digest

INFO = StreamInfo(250.0, ["Fz", "Cz"])
N = 8  # samples per chunk
WAIT = 20.0  # s: give up waiting for an event (never reached when things work)

MANIFEST = """[plugin]
name = "{name}"
version = "0.1.0"
api = "1.0"

[[stage]]
type = "{name}.smooth"
module = "stage.py"
[stage.params]
alpha = {{ type = "float", default = 0.2 }}
"""
# exponential smoothing with running state y; the output is y * GAIN
STAGE = """import numpy as np


def setup(info, alpha=0.2):
    return (np.array([alpha]), np.zeros({shape}))


def process(x, a, y):
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            y[c] += a[0] * (x[c, i] - y[c])
            x[c, i] = y[c] * {gain}
"""


def write_plugin(root, name="live", gain="1.0", shape="info.n_channels", body=None):
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.toml").write_text(MANIFEST.format(name=name))
    (folder / "stage.py").write_text(body or STAGE.format(gain=gain, shape=shape))
    return folder


def smooth(data, alpha=0.2):
    """The running state y after every sample, chunk by chunk (reference)."""
    y = np.zeros(data[0].shape[0])
    out = []
    for x in data:
        block = np.empty_like(x)
        for i in range(x.shape[1]):
            y = y + alpha * (x[:, i] - y)
            block[:, i] = y
        out.append(block)
    return out


class Pusher:
    """Feeds a pipeline from a background thread, as a live runner does."""

    def __init__(self, pipeline, seed=0):
        self.p = pipeline
        self.rng = np.random.default_rng(seed)
        self.log = []  # (input, output, wall time after the push)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            x = self.rng.standard_normal((2, N))
            out = self.p.push(x)
            self.log.append((x, out, time.time()))
            time.sleep(0.002)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5.0)

    def gains(self, stage="s"):
        """Per chunk, output / reference running state (1.0 or 2.0 here)."""
        log = list(self.log)
        ref = smooth([x for x, _, _ in log])
        return np.array([np.median(out[stage] / r) for (_, out, _), r in zip(log, ref)]), ref


def wait_for(predicate, timeout=WAIT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def wait_event(watcher, kind, plugin, since=0):
    assert wait_for(lambda: any(e["kind"] == kind and e.get("plugin") == plugin
                                for e in list(watcher.events)[since:])), \
        f"no {kind!r} event for {plugin!r}: {list(watcher.events)}"
    return [e for e in list(watcher.events)[since:] if e["kind"] == kind][-1]


@pytest.fixture
def setup_live(tmp_path):
    root = tmp_path / "plugins"
    write_plugin(root)
    manager = PluginManager(paths=[root], entry_points=False)
    p = Pipeline(plugins=manager)
    p.add("live.smooth", id="s")
    p.open(INFO)
    return root, p


def test_saved_edit_goes_live_between_chunks_without_losing_one(setup_live):
    root, p = setup_live
    watcher = p.watch()
    try:
        with Pusher(p) as pusher:
            assert wait_for(lambda: len(pusher.log) > 20)
            (root / "live" / "stage.py").write_text(STAGE.format(gain="2.0", shape="info.n_channels"))
            saved = time.time()
            assert wait_for(lambda: pusher.gains()[0][-1] > 1.5)
            time.sleep(0.05)
        event = wait_event(watcher, "reload", "live")
    finally:
        p.watch(False)
    gains, ref = pusher.gains()
    switch = int(np.argmax(gains > 1.5))
    # every chunk is fully one version: 1 before the swap, 2 after, nothing in between
    np.testing.assert_allclose(gains[:switch], 1.0, rtol=1e-9)
    np.testing.assert_allclose(gains[switch:], 2.0, rtol=1e-9)
    for (_, out, _), r, g in zip(pusher.log, ref, gains):
        np.testing.assert_allclose(out["s"], g * r, rtol=1e-9, atol=1e-12)  # state carried over
    n_in = sum(x.shape[1] for x, _, _ in pusher.log)
    assert p["s"].samples_in == p["s"].samples_out == n_in  # nothing lost, nothing twice
    assert event["ok"] and event["results"][0].state == "kept"
    live_at = pusher.log[switch][2]
    latency = live_at - saved
    print(f"save-to-live latency {latency:.3f} s (watcher: detected after {event['detect_s']:.3f} s, "
          f"swapped {event['latency_s']:.3f} s after the save)")
    assert latency < 2.0


def test_broken_edits_keep_the_old_version_and_a_fix_recovers(setup_live, caplog):
    root, p = setup_live
    file = root / "live" / "stage.py"
    good = STAGE.format(gain="1.0", shape="info.n_channels")
    broken = {
        "SyntaxError": good.replace("def process(x, a, y):", "def process(x, a, y)"),
        "numba": good.replace("y[c] * 1.0", "y[c] * undefined_name"),
        "setup": good.replace("return (np.array", "raise RuntimeError('setup broke')\n    return (np.array"),
    }
    watcher = p.watch()
    try:
        with Pusher(p) as pusher:
            for label, text in broken.items():
                since = len(watcher.events)
                file.write_text(text)
                event = wait_event(watcher, "reload", "live", since)
                assert not event["ok"]
                assert p["s"].status == "ok"
                last = p.status()[0]["last_error"]
                assert "previous version keeps running" in last
                assert {"SyntaxError": "SyntaxError", "numba": "undefined_name",
                        "setup": "setup broke"}[label] in last
            n_before = len(pusher.log)
            assert wait_for(lambda: len(pusher.log) > n_before + 5)
            since = len(watcher.events)
            file.write_text(STAGE.format(gain="2.0", shape="info.n_channels"))
            event = wait_event(watcher, "reload", "live", since)
            assert event["ok"]
            assert wait_for(lambda: pusher.gains()[0][-1] > 1.5)
    finally:
        p.watch(False)
    gains, _ = pusher.gains()
    switch = int(np.argmax(gains > 1.5))
    np.testing.assert_allclose(gains[:switch], 1.0, rtol=1e-9)  # old code ran throughout
    np.testing.assert_allclose(gains[switch:], 2.0, rtol=1e-9)
    assert p.status()[0]["last_error"] is None
    assert "reload rejected" in caplog.text


def test_state_is_reset_when_its_shapes_no_longer_fit(setup_live):
    root, p = setup_live
    p.push(np.ones((2, N)))
    write_plugin(root, shape="(info.n_channels + 1,)")
    [result] = p.reload()
    assert result.ok and result.state == "reset"
    x = np.ones((2, N))
    np.testing.assert_allclose(p.push(x)["s"], smooth([x])[0])  # from zero again


def test_an_edit_to_setup_takes_effect_while_running_state_is_kept(setup_live):
    root, p = setup_live
    data = [np.random.default_rng(i).standard_normal((2, N)) for i in range(4)]
    first = [p.push(x)["s"] for x in data[:2]]
    text = STAGE.format(gain="1.0", shape="info.n_channels").replace(
        "np.array([alpha])", "np.array([alpha * 2.0])")
    (root / "live" / "stage.py").write_text(text)
    [result] = p.reload("live")
    assert result.state == "kept"  # y carried over; the coefficient comes from the new setup
    rest = [p.push(x)["s"] for x in data[2:]]
    ref, yy = [], np.zeros(2)  # alpha 0.2 for the first two chunks, 0.4 afterwards
    for k, x in enumerate(data):
        a = 0.2 if k < 2 else 0.4
        block = np.empty_like(x)
        for i in range(N):
            yy = yy + a * (x[:, i] - yy)
            block[:, i] = yy
        ref.append(block)
    np.testing.assert_allclose(np.concatenate(first + rest, axis=1), np.concatenate(ref, axis=1))


HELPER_STAGE = """import numpy as np
import eegkit


@eegkit.jit
def gain():
    return 1.0


def process(x):
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            x[c, i] = x[c, i] * gain()
"""


def test_a_same_size_edit_with_the_same_mtime_never_runs_stale_machine_code(tmp_path, monkeypatch):
    """numba keys its cache on the source file's (mtime, size) and on the bytecode of the
    kernel, not of the helpers it calls: the per-digest cache folder must catch this."""
    monkeypatch.setenv("EEGKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "plugins"
    folder = write_plugin(root, name="helped", body=HELPER_STAGE)
    file = folder / "stage.py"
    stat = file.stat()
    manager = PluginManager(paths=[root], entry_points=False)
    p = Pipeline(plugins=manager)
    p.add("helped.smooth", id="s")
    x = np.ones((2, 4))
    assert p.process(x, sfreq=250.0)["s"][0, 0] == 1.0
    digest = plugin_digest(manager.record("helped").manifest)
    file.write_text(HELPER_STAGE.replace("return 1.0", "return 3.0"))  # same size
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))             # same mtime
    assert file.stat().st_size == stat.st_size and file.stat().st_mtime_ns == stat.st_mtime_ns
    [result] = p.reload()
    assert result.ok
    assert p.process(x, sfreq=250.0)["s"][0, 0] == 3.0
    manifest = manager.record("helped").manifest
    assert plugin_digest(manifest) != digest
    assert cache_dir(manifest, digest).is_dir() and any(cache_dir(manifest).iterdir())
    # a fresh process, with both versions on disk in the cache, runs the new one
    code = ("import numpy as np, eegkit; from eegkit.plugin import PluginManager; "
            f"p = eegkit.Pipeline(plugins=PluginManager(paths=[{str(root)!r}], entry_points=False)); "
            "p.add('helped.smooth', id='s'); print(p.process(np.ones((2, 4)), sfreq=250.0)['s'][0, 0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "3.0", out.stderr


def test_plugin_folders_added_and_removed_while_running(setup_live, tmp_path):
    root, p = setup_live
    watcher = p.watch()
    try:
        write_plugin(root, name="fresh")
        event = wait_event(watcher, "added", "fresh")
        assert event["status"] == "ok"
        p.add("fresh.smooth", id="f", input="source")
        assert p.push(np.ones((2, N)))["f"].shape == (2, N)
        import shutil

        shutil.rmtree(root / "fresh")
        wait_event(watcher, "removed", "fresh")
        assert "was removed" in p["f"].last_error
        assert p.push(np.ones((2, N)))["f"].shape == (2, N)  # keeps running its loaded code
    finally:
        p.watch(False)
    # without a watcher, a stage type from a new folder is found on first use
    write_plugin(root, name="later")
    p.add("later.smooth", id="l", input="source")
    assert p["l"].status == "ok"


# raises on real data, not on the zeros of the warm-up
RAISE = "if x[0, 0] != 0.0:\n        raise ValueError('boom')\n    for c in range"


def test_reload_enables_a_disabled_stage_in_every_live_pipeline(setup_live):
    root, p = setup_live
    file = root / "live" / "stage.py"
    good = STAGE.format(gain="1.0", shape="info.n_channels")
    file.write_text(good.replace("for c in range", RAISE))
    p.reload()
    p.push(np.ones((2, N)))
    assert p["s"].status == "disabled" and "boom" in p["s"].error
    file.write_text(good)
    results = _reload.reload(plugin="live")  # every live pipeline of the process
    assert p in _registry.pipelines()
    assert any(r.ok and r.stage == "s" and r.state == "reset" for r in results)
    assert p["s"].status == "ok"
    assert p.push(np.ones((2, N)))["s"].shape == (2, N)


def test_errors_at_chunk_rate_are_rate_limited_in_the_log(setup_live, caplog):
    root, p = setup_live
    good = STAGE.format(gain="1.0", shape="info.n_channels")
    (root / "live" / "stage.py").write_text(
        good.replace("for c in range", RAISE))
    p.reload()
    caplog.set_level(logging.ERROR, logger="eegkit")
    caplog.clear()
    for _ in range(300):  # a stage that fails and is re-enabled on every chunk
        p.push(np.ones((2, N)))
        p["s"].enable()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert 1 <= len(errors) <= 3, [r.getMessage() for r in errors]
    assert p["s"].error is not None or p["s"].status == "ok"


def test_an_isolated_stage_reloads_into_a_new_child_and_keeps_its_state(setup_live):
    root, p = setup_live
    p.remove("s")
    stage = p.add("live.smooth", id="s", isolation="process")
    data = [np.random.default_rng(i).standard_normal((2, N)) for i in range(4)]
    outs = [p.push(x)["s"] for x in data[:2]]
    old_pid = stage.code.pid
    write_plugin(root, gain="2.0")
    [result] = p.reload()
    assert result.ok and result.state == "kept" and stage.code.pid != old_pid
    outs += [p.push(x)["s"] for x in data[2:]]
    ref = smooth(data)
    np.testing.assert_allclose(np.concatenate(outs, axis=1),
                               np.concatenate(ref[:2] + [2 * r for r in ref[2:]], axis=1))


def test_a_ui_bundle_edit_refreshes_its_view(tmp_path, monkeypatch, setup_live):
    """With ANYWIDGET_HMR=1 a view follows its bundle file (the view host re-imports it);
    the watcher reports the edit."""
    monkeypatch.setenv("ANYWIDGET_HMR", "1")
    from eegkit.notebook._widget import StreamView

    root, p = setup_live
    bundle = root / "live" / "ui" / "bundle.js"
    bundle.parent.mkdir()
    bundle.write_text("export default () => ({ name: 'v1', draw() {} });\n")
    view = StreamView(INFO, view=str(bundle))
    watcher = p.watch()
    try:
        assert "v1" in view._view_js
        bundle.write_text("export default () => ({ name: 'v2', draw() {} });\n")
        assert wait_for(lambda: "v2" in view._view_js)
        wait_event(watcher, "ui", "live")
    finally:
        p.watch(False)
        view.close()


@pytest.mark.slow  # the CLI as a subprocess, edited mid-run
def test_eegkit_run_watch_applies_an_edit_mid_run(tmp_path):
    root = tmp_path / "plugins"
    folder = write_plugin(root)
    doc = {"eegkit_pipeline": 1,
           "source": {"type": "synthetic", "params": {"n_channels": 2, "sfreq": 250.0, "seed": 1}},
           "stages": [{"id": "s", "type": "live.smooth"}]}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    env = dict(os.environ, EEGKIT_PLUGINS_PATH=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "eegkit", "run", "p.json", "--watch", "--realtime",
                             "--duration", "6", "--quiet", "-o", "out.npz"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: any("watching" in line for line in lines), 60)
        (folder / "stage.py").write_text(STAGE.format(gain="2.0", shape="info.n_channels"))
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    assert proc.returncode == 0, "".join(lines)
    assert any("reloaded plugin 'live'" in line for line in lines), "".join(lines)
    with np.load(tmp_path / "out.npz") as f:
        out = f["s"]
    assert out.shape == (2, 1500)  # 6 s at 250 Hz: no chunk lost


def test_old_code_versions_do_not_pile_up_in_the_numba_cache(setup_live, monkeypatch, tmp_path):
    monkeypatch.setenv("EEGKIT_CACHE_DIR", str(tmp_path / "cache"))
    root, p = setup_live
    for k in range(_reload.KEEP_CACHES + 3):
        write_plugin(root, gain=f"{k + 1}.0")
        [result] = p.reload()
        assert result.ok
    manifest = p["s"].code.manifest
    kept = [d.name for d in cache_dir(manifest).iterdir()]
    assert len(kept) == _reload.KEEP_CACHES and p["s"].code.digest in kept


def test_one_process_wide_watcher_reloads_every_pipeline_of_its_manager(setup_live):
    root, p = setup_live
    q = Pipeline(plugins=p.plugins)
    q.add("live.smooth", id="s")
    q.open(INFO)
    watcher = _watch.watch(plugins=p.plugins)
    try:
        assert watcher is _watch.watch(plugins=p.plugins) and set(watcher.targets()) >= {p, q}
        write_plugin(root, gain="2.0")
        event = wait_event(watcher, "reload", "live")
        assert event["ok"] and len(event["results"]) >= 2
        x = np.ones((2, N))
        for pipe in (p, q):
            np.testing.assert_allclose(pipe.push(x)["s"], 2 * smooth([x])[0])
    finally:
        assert _watch.watch(False) is None
    assert not watcher.running


# running state carried by name when both versions return eegkit.Setup
NAMED_STAGE = """import numpy as np
import eegkit


def setup(info, alpha=0.2):
    state = {{"y": np.zeros({shape})}}
    {extra}
    return eegkit.Setup(coefs=(np.array([alpha]),), state=state)


def process(x, a{args}, y):
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            y[c] += a[0] * (x[c, i] - y[c])
            x[c, i] = y[c] * {gain}
"""


def write_named(root, gain="1.0", shape="info.n_channels", extra="", args=""):
    write_plugin(root, body=NAMED_STAGE.format(gain=gain, shape=shape, extra=extra, args=args))


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_named_state_is_carried_by_name_over_a_reload(tmp_path, isolation):
    root = tmp_path / "plugins"
    write_named(root)
    p = Pipeline(plugins=PluginManager(paths=[root], entry_points=False))
    p.add("live.smooth", id="s", isolation=isolation)
    p.open(INFO)
    assert isolation == "process" or p["s"].state_names == {"y": 1}
    assert isinstance(p["s"].code, Code)  # both kinds of code satisfy the runtime's protocol
    data = [np.random.default_rng(i).standard_normal((2, N)) for i in range(4)]
    outs = [p.push(x)["s"] for x in data[:2]]
    # a new state array ahead of y: positions move, the name still finds y
    write_named(root, gain="2.0", extra='state = {"n": np.zeros(1, dtype=np.int64), **state}',
                args=", n")
    [result] = p.reload()
    assert result.ok and result.state == "kept", result
    assert any("state 'n' is new" in note for note in result.notes), result.notes
    outs += [p.push(x)["s"] for x in data[2:]]
    ref = smooth(data)
    np.testing.assert_allclose(np.concatenate(outs, axis=1),
                               np.concatenate(ref[:2] + [2 * r for r in ref[2:]], axis=1))
    for stage in p.stages:
        stage.code.close()


def test_named_state_of_another_shape_starts_fresh_with_a_note(setup_live):
    root, p = setup_live
    p.push(np.ones((2, N)))
    write_named(root)
    [result] = p.reload()
    assert result.ok and result.state == "kept"  # plain tuple -> Setup: the positional guess
    write_named(root, shape="(info.n_channels + 1,)")
    [result] = p.reload()
    assert result.ok and result.state == "reset"
    assert any("state 'y' started fresh: it was float64[2], the new setup gives float64[3]" in n
               for n in result.notes), result.notes
    x = np.ones((2, N))
    np.testing.assert_allclose(p.push(x)["s"], smooth([x])[0])  # from zero again


# -- issue #14 row 9: a plugin's stages switch together ------------------------------------------
TWIN_MANIFEST = """[plugin]
name = "twin"
version = "0.1.0"
api = "1.0"

[[stage]]
type = "twin.a"
module = "a.py"

[[stage]]
type = "twin.b"
module = "b.py"
"""
TWIN_STAGE = "def process(x):\n    x[:] = {version}\n"


def write_twin(root, version_a, version_b=None):
    folder = root / "twin"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.toml").write_text(TWIN_MANIFEST)
    (folder / "a.py").write_text(TWIN_STAGE.format(version=version_a))
    (folder / "b.py").write_text(version_b or TWIN_STAGE.format(version=version_a))


def test_stages_of_one_plugin_switch_together_at_one_chunk_boundary(tmp_path):
    """Each stage used to be compiled and swapped on its own, so chunks ran stage a's new
    code with stage b's old one while b compiled; now both go live in one lock hold."""
    root = tmp_path / "plugins"
    write_twin(root, "1.0")
    p = Pipeline(plugins=PluginManager(paths=[root], entry_points=False))
    p.add("twin.a", id="a", input="source")
    p.add("twin.b", id="b", input="source")
    p.open(INFO)
    seen, stop = [], threading.Event()

    def pump():
        x = np.zeros((2, N))
        while not stop.is_set():
            out = p.push(x, outputs=["a", "b"])
            seen.append((float(out["a"][0, 0]), float(out["b"][0, 0])))
            time.sleep(0.0005)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: len(seen) > 10)
        write_twin(root, "2.0")
        results = _reload.reload_pipeline(p, "twin")
        assert [r.ok for r in results] == [True, True], [str(r) for r in results]
        assert results[0].swapped_at == results[1].swapped_at
        assert wait_for(lambda: seen[-1] == (2.0, 2.0))
        # a broken stage b: neither stage switches, both keep version 2
        write_twin(root, "3.0", version_b="def process(x):\n    x[:] = undefined_name\n")
        results = _reload.reload_pipeline(p, "twin")
        assert [r.ok for r in results] == [False, False]
        assert "not swapped: stage 'b' of the same plugin failed" in p["a"].last_error
        assert "undefined_name" in p["b"].last_error
        n = len(seen)
        assert wait_for(lambda: len(seen) > n + 10)
    finally:
        stop.set()
        thread.join()
    assert {pair for pair in seen} <= {(1.0, 1.0), (2.0, 2.0)}, "a chunk saw two versions"
    assert p.status()[0]["status"] == p.status()[1]["status"] == "ok"
