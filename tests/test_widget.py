"""StreamView without a browser: frames, decimation, pacing, status, threads.

Frames are read back through ``SocketComm`` (``benchmarks/widget.py``, which measures
frame cost with it): the kernel's own serialization (a signed jupyter Session) over a
real zmq socket.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from benchmarks.widget import SocketComm
from eegkit._errors import ParameterError
from eegkit._info import StreamInfo
from eegkit.notebook._widget import MAX_UNACKED, StreamView, widgets_dir


def names(n):
    return [f"ch{i}" for i in range(n)]


@pytest.fixture
def make_view():
    """StreamView factory wired to a SocketComm; closes everything afterwards."""
    made = []

    def make(info, pacer=False, **kw):
        view = StreamView(info, **kw)
        view._autostart = pacer  # most tests build frames themselves with _tick()
        comm = view.comm = SocketComm(view)
        made.append((view, comm))
        return view, comm

    yield make
    for view, comm in made:
        view.close()
        comm.shutdown()


def frames_of(comm):
    """Decoded frames sent so far: list of (content, float32 array of content['shape']).

    A delta frame (the points that scrolled in) is shifted into the previous window, as
    the browser does, so every frame reads as its whole window.
    """
    out = []
    for c, b in comm.recv():
        data = np.frombuffer(b[0], np.float32)
        if "delta" in c:
            prev_c, prev = comm.window
            n = c["delta"]
            assert prev.shape == tuple(c["shape"]) and c["first_sample"] - prev_c["first_sample"] == n * c["step"]
            data = np.concatenate([prev[:, n:], data.reshape((c["shape"][0], n, *c["shape"][2:]))], axis=1)
        data = data.reshape(c["shape"])
        comm.window = (c, data)
        out.append((c, data))
    return out


def expected_minmax(x, end, step, n_buckets):
    """Reference: min/max of the n_buckets complete buckets before `end`, aligned to index 0."""
    k_end = end // step
    lo = (k_end - n_buckets) * step
    seg = x[:, lo:k_end * step].astype(np.float32)
    seg = seg.reshape(x.shape[0], n_buckets, step)
    return np.stack([seg.min(axis=2), seg.max(axis=2)], axis=-1), lo


# -- view files ---------------------------------------------------------------------
def test_every_view_is_the_host_module_plus_its_view_source():
    host = (widgets_dir() / "protocol.js").read_text()
    api = (widgets_dir() / "draw.js").read_text()
    for name in ("scope", "spectrum", "bars", "topomap"):
        view = StreamView(StreamInfo(100.0, ["a"]), view=name)
        source = (widgets_dir() / f"{name}.js").read_text()
        assert str(view._esm) == host and "msg:custom" in host
        assert view._view_js == source and view._api_js == api
        assert "import " not in source and "export default function" in source
        assert "msg:custom" not in source and "model.send" not in source  # the host speaks the protocol
        assert {"_view_js", "_api_js"} <= set(view.keys)           # synced to the browser
        view.close()


def test_bundle_path_is_sent_as_its_source(tmp_path):
    bundle = tmp_path / "bundle.js"
    bundle.write_text("export default () => ({ draw() { return 'hi'; } });\n")
    view = StreamView(StreamInfo(10.0, ["a"]), view=str(bundle))
    assert view._view_js == bundle.read_text()
    assert str(view._esm) == (widgets_dir() / "protocol.js").read_text()
    assert view.frames == "window"
    view.close()


def test_a_view_module_that_imports_a_file_is_refused(tmp_path):
    bundle = tmp_path / "bundle.js"
    bundle.write_text('import { draw } from "./helper.js";\nexport default () => ({ draw });\n')
    with pytest.raises(ParameterError, match=r"bundle.js' imports a relative file .*use the helpers it "
                                             r"receives as `api`"):
        StreamView(StreamInfo(10.0, ["a"]), view=str(bundle))


def test_bad_arguments_name_the_culprit(tmp_path):
    info = StreamInfo(100.0, ["a"])
    with pytest.raises(ParameterError, match="Did you mean 'scope'"):
        StreamView(info, view="scop")
    with pytest.raises(ParameterError, match="Allowed values are 'scope', 'spectrum', 'bars', 'topomap', and the path"):
        StreamView(info, view="heatmap")
    with pytest.raises(ParameterError, match="does not exist"):
        StreamView(info, view=str(tmp_path / "missing.js"))
    with pytest.raises(TypeError, match="Did you mean 'scale'"):
        StreamView(info, scael=2.0)
    with pytest.raises(ParameterError, match="'frames'"):
        StreamView(info, frames="all")
    view = StreamView(StreamInfo(100.0, names(3)))
    with pytest.raises(ParameterError, match=r"expected blocks of shape \(3, n_samples\), got \(2, 5\)"):
        view.feed(np.zeros((2, 5)), 0)
    view.close()


# -- window frames (scope) -------------------------------------------------------------
@pytest.mark.parametrize("chunks", [[1], [7], [33], [250, 3, 1, 97, 2000, 11]])
def test_minmax_decimation_matches_numpy_through_wraparound(make_view, chunks):
    sfreq, seconds, n_ch = 1000.0, 2.0, 5
    view, comm = make_view(StreamInfo(sfreq, names(n_ch)), seconds=seconds, max_points=200)
    buf = view._buf
    assert buf.step == 20 and buf.n_buckets == 100 and buf.cap == 2000
    x = np.random.default_rng(1).standard_normal((n_ch, 9000))
    first = i = last = checked = 0
    while first < x.shape[1]:
        n = min(chunks[i % len(chunks)], x.shape[1] - first)
        view.feed(x[:, first:first + n], first)
        first, i = first + n, i + 1
        if first >= buf.cap and (i % 5 == 0 or n > 100):
            view._acked = view._seq  # acked, as a browser would
            if not view._tick():  # no bucket completed since the last frame: nothing to scroll in
                assert first // buf.step == last // buf.step
                continue
            (content, data), = frames_of(comm)
            want, lo = expected_minmax(x, first, buf.step, buf.n_buckets)
            assert content["layout"] == "minmax" and content["first_sample"] == lo
            # the oldest bucket is lost when it was overwritten before a frame reduced it,
            # i.e. when about a whole window arrived since the last frame
            v = content["valid_from"]
            assert v == 0 or (v == 1 and first - last > buf.cap - buf.step)
            last = first
            assert content["end_sample"] == first
            assert np.isnan(data[:, :v]).all()
            np.testing.assert_array_equal(data[:, v:], want[:, v:])
            checked += 1
    assert checked >= 3


def test_partial_window_is_nan_before_the_first_sample(make_view):
    view, comm = make_view(StreamInfo(1000.0, names(2)), seconds=1.0, max_points=100)
    step = view._buf.step
    x = np.arange(2 * 500, dtype=float).reshape(2, 500)
    view.feed(x[:, :130], 370)  # stream tapped mid-way: first sample 370
    assert view._tick()
    (content, data), = frames_of(comm)
    k_end = 500 // step
    first_valid_bucket = -(-370 // step)           # the bucket holding 370 is incomplete
    assert content["first_sample"] == (k_end - 50) * step
    assert content["valid_from"] == first_valid_bucket - (k_end - 50)
    assert np.isnan(data[:, :content["valid_from"]]).all()
    assert np.isfinite(data[:, content["valid_from"]:]).all()
    assert data[0, content["valid_from"], 0] == x[0, first_valid_bucket * step - 370]


def test_raw_layout_when_the_window_fits(make_view):
    view, comm = make_view(StreamInfo(100.0, names(3)), seconds=5.0)
    x = np.random.default_rng(2).standard_normal((3, 1234))
    view.feed(x[:, :1000], 0)
    view.feed(x[:, 1000:], 1000)
    assert view._tick()
    (content, data), = frames_of(comm)
    assert content["layout"] == "raw" and content["step"] == 1 and data.shape == (3, 500)
    np.testing.assert_array_equal(data, x[:, -500:].astype(np.float32))


def test_block_longer_than_the_window_and_restart(make_view):
    view, comm = make_view(StreamInfo(100.0, names(1)), seconds=2.0)
    x = np.arange(1000.0)[None]
    view.feed(x, 0)
    view._tick()
    (content, data), = frames_of(comm)
    np.testing.assert_array_equal(data[0], x[0, -200:])
    view._acked = view._seq
    view.feed(np.full((1, 50), 7.0), 0)  # stream restarted at sample 0: old samples dropped
    view._tick()
    (content, data), = frames_of(comm)
    assert content["valid_from"] == 150 and np.isnan(data[0, :150]).all() and (data[0, 150:] == 7).all()


def test_no_frame_without_new_samples(make_view):
    view, comm = make_view(StreamInfo(100.0, names(1)))
    assert not view._tick()
    view.feed(np.ones((1, 10)), 0)
    assert view._tick()
    view._acked = view._seq
    assert not view._tick()
    assert len(comm.recv()) == 1


# -- latest frames (spectrum, bars) -------------------------------------------------------
def test_latest_column_reshaped_per_channel(make_view):
    base = StreamInfo(250.0, ["Fz", "Cz", "Pz"])
    bands = ["delta", "theta", "alpha", "beta", "gamma"]
    info = base.expand("features", bands, [2.5, 6, 10, 21, 37.5], 250.0 / 32)
    view, comm = make_view(info, view="bars")
    block = np.random.default_rng(3).random((15, 4))
    view.feed(block, 40)
    assert view._tick()
    (content, data), = frames_of(comm)
    assert content["layout"] == "latest" and content["first_sample"] == 43
    np.testing.assert_array_equal(data, block[:, -1].reshape(3, 5).astype(np.float32))
    assert not view.log_scale


def test_long_spectra_are_averaged_in_bins(make_view):
    freqs = np.arange(2049) * 0.25
    info = StreamInfo(500.0, ["a", "b"]).expand("spectrum", [str(f) for f in freqs], freqs, 10.0)
    view, comm = make_view(info, view="spectrum", max_points=1000)
    assert view.log_scale and view._buf.step == 3
    col = np.random.default_rng(4).random(2 * 2049)
    view.feed(col[:, None], 0)
    view._tick()
    (content, data), = frames_of(comm)
    want = col.reshape(2, 2049)[:, :2049 // 3 * 3].reshape(2, -1, 3).astype(np.float32).mean(axis=2)
    np.testing.assert_allclose(data, want, rtol=1e-6)
    assert content["step"] == 3


# -- pacing: drop, never queue ---------------------------------------------------------------
def test_frames_stop_without_acks_and_resume_with_them(make_view):
    view, comm = make_view(StreamInfo(1000.0, names(4)))
    x = np.zeros((4, 40))
    first = 0
    sent = []
    for _ in range(10):
        view.feed(x, first)
        first += 40
        sent.append(view._tick())
    assert sent == [True] * MAX_UNACKED + [False] * (10 - MAX_UNACKED)
    frames = comm.recv()
    assert [c["seq"] for c, _ in frames] == list(range(1, MAX_UNACKED + 1))
    assert view.stats()["dropped"] == 10 - MAX_UNACKED
    comm.deliver({"type": "ack", "seq": 1})     # the browser drew frame 1: one slot frees
    view.feed(x, first)
    assert view._tick() and not view._tick()
    comm.deliver({"type": "ready"})              # a new frontend: nothing is in flight any more
    view.feed(x, first + 40)
    assert view._tick()
    seqs = [c["seq"] for c, _ in comm.recv()]
    assert seqs == [MAX_UNACKED + 1, MAX_UNACKED + 2]
    assert view.stats()["sent"] == MAX_UNACKED + 2


def test_pacer_thread_sends_at_most_the_window_then_resumes(make_view):
    view, comm = make_view(StreamInfo(500.0, names(2)), pacer=True, fps=100.0)
    stop = threading.Event()

    def feeder():
        first = 0
        while not stop.is_set():
            view.feed(np.ones((2, 10)), first)
            first += 10
            time.sleep(0.005)

    thread = threading.Thread(target=feeder)
    thread.start()
    try:
        got, deadline = [], time.monotonic() + 5
        while len(got) < MAX_UNACKED and time.monotonic() < deadline:
            got += [c["seq"] for c, _ in comm.recv()]
            time.sleep(0.01)
        time.sleep(0.3)                      # ~30 more pacer ticks, still no browser
        assert got + [c["seq"] for c, _ in comm.recv()] == list(range(1, MAX_UNACKED + 1))
        assert view.stats()["dropped"] > 0
        for seq in (1, 2):
            comm.deliver({"type": "ack", "seq": seq})
        deadline = time.monotonic() + 5
        got = []
        while len(got) < 2 and time.monotonic() < deadline:
            got += [c["seq"] for c, _ in comm.recv()]
            time.sleep(0.01)
        assert got == [MAX_UNACKED + 1, MAX_UNACKED + 2]
    finally:
        stop.set()
        thread.join()
    pacer = view._pacer
    view.close()
    assert not pacer.is_alive()
    view.feed(np.ones((2, 10)), 10**6)       # after close: ignored


def test_paused_view_sends_nothing(make_view):
    view, comm = make_view(StreamInfo(100.0, names(1)), paused=True)
    view.feed(np.ones((1, 5)), 0)
    assert not view._tick()
    view.paused = False
    assert view._tick()


# -- status and settings ------------------------------------------------------------------------
def test_status_trait_is_synced(make_view):
    view, comm = make_view(StreamInfo(100.0, names(1)))
    view.set_status("disabled", ValueError("bandpass: high (300.0 Hz) must be below Nyquist (50.0 Hz)"))
    assert view.status == {"state": "disabled",
                           "error": "ValueError: bandpass: high (300.0 Hz) must be below Nyquist (50.0 Hz)"}
    updates = [state for state, _ in comm.recv("update")]
    assert {"status": view.status} in updates
    view.set_status("ok")
    assert view.status == {"state": "ok", "error": None}
    with pytest.raises(ParameterError, match="'ok' and 'disabled'"):
        view.set_status("broken")


def test_new_info_or_window_reallocates(make_view):
    view, comm = make_view(StreamInfo(100.0, names(2)), seconds=2.0)
    view.feed(np.ones((2, 50)), 0)
    view.seconds = 4.0
    assert view._buf.cap == 400 and not view._buf.has_news()
    view.set_info(StreamInfo(100.0, names(5)))
    assert view.info["ch_names"] == names(5)
    view.feed(np.ones((5, 50)), 0)
    assert view._tick()
    (content, data), = frames_of(comm)
    assert data.shape == (5, 400)


# -- threads ----------------------------------------------------------------------------------
def test_feed_from_a_thread_while_frames_are_built(make_view):
    # a ramp (value = sample index, exact in float32) makes a torn frame visible:
    # every bucket must hold exactly the indices of its own samples
    n_ch = 8
    view, comm = make_view(StreamInfo(1000.0, names(n_ch)), seconds=3.0, max_points=300)
    step = view._buf.step
    offsets = np.arange(n_ch)[:, None] * 0.5
    stop = threading.Event()

    def feeder():
        first, rng = 0, np.random.default_rng(5)
        while not stop.is_set() and first < 2_000_000:
            n = int(rng.integers(1, 400))
            view.feed(np.arange(first, first + n, dtype=float)[None] + offsets, first)
            first += n

    thread = threading.Thread(target=feeder)
    thread.start()
    checked = 0
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            view._acked = view._seq
            if not view._tick():
                continue
            for content, data in frames_of(comm):
                v = content["valid_from"]
                t0 = content["first_sample"] + np.arange(data.shape[1])[v:] * step
                np.testing.assert_array_equal(data[:, v:, 0], t0 + offsets)
                np.testing.assert_array_equal(data[:, v:, 1], t0 + step - 1 + offsets)
                checked += 1
    finally:
        stop.set()
        thread.join()
    assert checked > 10


def test_views_fed_by_pipeline_taps(make_view):
    import eegkit

    p = eegkit.Pipeline()
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("brain_fft.band_power", id="bands", input="bp")
    p.open(StreamInfo(250.0, ["Fz", "Cz", "Pz"]))
    scope, scope_comm = make_view(p.info_of("bp"), view="scope", seconds=2.0)
    bars, bars_comm = make_view(p.info_of("bands"), view="bars")
    p.tap("bp", scope.feed)
    p.tap("bands", bars.feed)
    x = np.random.default_rng(6).standard_normal((3, 2000))
    out = {"bp": [], "bands": []}
    for i in range(0, x.shape[1], 50):
        step = p.push(x[:, i:i + 50])
        for key in out:
            out[key].append(step[key])
    assert scope._tick() and bars._tick()
    (content, data), = frames_of(scope_comm)
    np.testing.assert_array_equal(data, np.concatenate(out["bp"], axis=1)[:, -500:].astype(np.float32))
    assert content["end_sample"] == 2000
    (content, data), = frames_of(bars_comm)
    bands = np.concatenate(out["bands"], axis=1)
    np.testing.assert_array_equal(data, bands[:, -1].reshape(3, 5).astype(np.float32))
    assert content["first_sample"] == bands.shape[1] - 1


def test_view_file_edits_reach_open_views_with_hmr(tmp_path, monkeypatch):
    pytest.importorskip("watchfiles")
    monkeypatch.setenv("ANYWIDGET_HMR", "1")
    bundle = tmp_path / "view.js"
    bundle.write_text("export default () => ({ name: 'one', draw() {} });\n")
    views = [StreamView(StreamInfo(10.0, ["a"]), view=str(bundle)) for _ in range(2)]
    comm = views[0].comm = SocketComm(views[0])
    try:
        assert all("'one'" in v._view_js for v in views)
        time.sleep(0.3)  # let the watcher thread start
        bundle.write_text("export default () => ({ name: 'two', draw() {} });\n")
        deadline = time.monotonic() + 10
        while not all("'two'" in v._view_js for v in views) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(v._view_js == bundle.read_text() for v in views)
        assert {"_view_js": bundle.read_text()} in [state for state, _ in comm.recv("update")]
    finally:
        for v in views:
            v.close()
        comm.shutdown()


# -- visibility, resync, topomap ----------------------------------------------------------
def test_a_hidden_view_is_sent_nothing_and_gets_a_whole_window_when_seen_again(make_view):
    view, comm = make_view(StreamInfo(100.0, names(2)), seconds=1.0)
    x = np.arange(2 * 400, dtype=float).reshape(2, 400)
    view.feed(x[:, :100], 0)
    assert view._tick()
    comm.deliver({"type": "visibility", "visible": False})
    view.feed(x[:, 100:150], 100)
    assert not view._tick() and view.stats()["dropped"] == 0  # not sent, not counted as dropped
    comm.deliver({"type": "visibility", "visible": True})
    view.feed(x[:, 150:160], 150)
    assert view._tick()
    _, (c2, data) = frames_of(comm)
    assert "delta" not in c2 and data.shape == (2, 100)
    np.testing.assert_array_equal(data, x[:, 60:160].astype(np.float32))
    view.feed(x[:, 160:165], 160)
    assert view._tick()
    comm.deliver({"type": "resync", "seq": view._seq})  # the browser could not continue its window
    assert view._acked == view._seq
    view.feed(x[:, 165:170], 165)
    assert view._tick()
    sent = comm.recv()
    assert "delta" in sent[0][0] and "delta" not in sent[1][0]


@pytest.mark.filterwarnings("ignore:Montage name:FutureWarning")
def test_topomap_positions_follow_mne_and_list_unknown_channels():
    mne = pytest.importorskip("mne")
    from mne.channels.layout import _find_topomap_coords

    from eegkit.notebook._topomap import topomap_positions

    names_ = ["Fz", "cz", "O1", "T8", "EOG"]
    band = StreamInfo(250.0, names_).expand("features", ["alpha", "beta"], [10.0, 20.0], 8.0)
    got = topomap_positions(band)
    assert got["ch_names"] == names_ and got["missing"] == ["EOG"] and got["pos"][-1] is None
    ref = mne.create_info(["Fz", "Cz", "O1", "T8"], 100.0, "eeg")
    ref.set_montage(mne.channels.make_standard_montage("standard_1005"))
    want = _find_topomap_coords(ref, None) / 0.095  # MNE's default head sphere radius
    np.testing.assert_allclose(np.array(got["pos"][:4]), want, atol=1e-4)
    view = StreamView(band, view="topomap")
    assert view.frames == "latest" and view.positions == got
