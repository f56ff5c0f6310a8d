"""Pipeline: DAG, offline = streaming, guarded calls, parameters, statistics."""

import numpy as np
import pytest
import scipy.signal as ss

import eegkit
from eegkit import ParameterError, PipelineError
from eegkit.testing import stream


def chunked(p, x, info, sizes):
    return stream(p, info, x, sizes)


def demo(plugins=None):
    p = eegkit.Pipeline(plugins=plugins)
    p.add("filters.notch", id="notch", freq=50.0)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("reref.average", id="car")
    p.add("brain_fft.band_power", id="bands", input="bp", window=128, step=25)
    return p


@pytest.mark.parametrize("sizes", [[1], [7], [32], [5, 64, 1, 200, 13]])
def test_offline_equals_streaming(eeg, sizes):
    x, info = eeg
    x = x[:, :1200]
    p = demo()
    whole = p.process(x, sfreq=info.sfreq, ch_names=info.ch_names)
    streamed = chunked(p, x, info, sizes)
    for key in whole:
        assert np.array_equal(whole[key], streamed[key]), key


def test_offline_block_size_does_not_change_numbers(eeg):
    x, info = eeg
    p = demo()
    a = p.process(x, sfreq=info.sfreq, ch_names=info.ch_names)
    b = p.process(x, sfreq=info.sfreq, ch_names=info.ch_names, block=97)
    for key in a:
        assert np.array_equal(a[key], b[key])


def test_matches_scipy_chain(eeg):
    x, info = eeg
    out = demo().process(x, sfreq=info.sfreq, ch_names=info.ch_names)
    b, a = ss.iirnotch(50.0, 30.0, fs=info.sfreq)
    ref = ss.sosfilt(ss.tf2sos(b, a), x)
    ref = ss.sosfilt(ss.butter(4, [1.0, 40.0], "bandpass", fs=info.sfreq, output="sos"), ref)
    np.testing.assert_allclose(out["bp"], ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(out["car"], ref - ref.mean(axis=0), rtol=1e-9, atol=1e-12 * np.abs(ref).max())
    assert out["bands"].shape[0] == 8 * 5
    assert p_info_names(out)


def p_info_names(out):
    return all(k in out for k in ("notch", "bp", "car", "bands"))


def test_fan_out_does_not_share_buffers(eeg):
    x, info = eeg
    p = eegkit.Pipeline()
    p.add("filters.highpass", id="hp", cutoff=1.0)
    p.add("reref.average", id="a", input="hp")
    p.add("filters.lowpass", id="b", input="hp", cutoff=10.0)
    out = p.process(x, sfreq=info.sfreq)
    hp = ss.sosfilt(ss.butter(4, 1.0, "highpass", fs=info.sfreq, output="sos"), x)
    np.testing.assert_allclose(out["hp"], hp, rtol=1e-10, atol=1e-20)
    np.testing.assert_allclose(out["a"], hp - hp.mean(0), rtol=1e-9, atol=1e-20)
    lp = ss.sosfilt(ss.butter(4, 10.0, "lowpass", fs=info.sfreq, output="sos"), hp)
    np.testing.assert_allclose(out["b"], lp, rtol=1e-10, atol=1e-20)
    assert np.array_equal(x, eeg[0])  # the caller's array is never modified


def test_float32_stream(eeg):
    x, info = eeg
    x32 = x.astype(np.float32)
    p = eegkit.Pipeline()
    p.add("filters.bandpass", low=1.0, high=30.0)
    out = p.process(x32, sfreq=info.sfreq)["bandpass"]
    assert out.dtype == np.float32
    ref = ss.sosfilt(ss.butter(4, [1.0, 30.0], "bandpass", fs=info.sfreq, output="sos"), x)
    np.testing.assert_allclose(out, ref, atol=1e-4 * np.abs(ref).max())


def test_parameter_validation_names_stage_and_param():
    p = eegkit.Pipeline()
    with pytest.raises(ParameterError, match=r"stage 'bp' \(filters\.bandpass\): parameter 'order' expects int, got str 'four'"):
        p.add("filters.bandpass", id="bp", order="four")
    with pytest.raises(ParameterError, match=r"unknown parameter 'hihg'.*Did you mean 'high'"):
        p.add("filters.bandpass", id="bp", hihg=30.0)
    with pytest.raises(PipelineError, match=r"input 'nope' is not 'source' or an earlier stage id"):
        p.add("filters.bandpass", input="nope")
    p.add("filters.bandpass", id="bp")
    with pytest.raises(PipelineError, match="already used"):
        p.add("filters.lowpass", id="bp")


def test_set_params_applies_between_chunks(eeg):
    x, info = eeg
    p = eegkit.Pipeline()
    p.add("filters.lowpass", id="lp", cutoff=30.0)
    p.open(info)
    first = p.push(x[:, :100])["lp"]
    p["lp"].set_params(cutoff=5.0)
    assert p["lp"].params["cutoff"] == 30.0  # not yet: applied at the next chunk boundary
    second = p.push(x[:, 100:200])["lp"]
    assert p["lp"].params["cutoff"] == 5.0
    sos = ss.butter(4, 5.0, "lowpass", fs=info.sfreq, output="sos")
    np.testing.assert_allclose(second, ss.sosfilt(sos, x[:, 100:200]), rtol=1e-10, atol=1e-20)
    assert first.shape == (8, 100)
    with pytest.raises(ParameterError):
        p["lp"].set_params(cutoff="high")


def test_rejected_parameter_change_keeps_old_version(eeg):
    x, info = eeg
    p = eegkit.Pipeline()
    p.add("filters.lowpass", id="lp", cutoff=30.0)
    p.open(info)
    p.push(x[:, :50])
    p["lp"].set_params(cutoff=500.0)  # above Nyquist: setup raises
    p.push(x[:, 50:100])
    st = p["lp"]
    assert st.status == "ok" and st.params["cutoff"] == 30.0
    assert "Nyquist" in st.last_error


def test_crashing_stage_is_disabled_and_pipeline_goes_on(manager_with, eeg):
    x, info = eeg
    p = eegkit.Pipeline(plugins=manager_with)
    p.add("good_one.offset", id="pre", value=1.0)
    p.add("raises_process.boom", id="boom", after=3)
    p.add("good_one.offset", id="post", value=10.0)
    p.open(info)
    outs = [p.push(x[:, i:i + 10]) for i in range(0, 100, 10)]
    st = p["boom"]
    assert st.status == "disabled" and "boom: deliberate failure" in st.error
    assert "ValueError" in st.traceback
    assert st.calls == 3
    status = {s["id"]: s for s in p.status()}
    assert status["boom"]["status"] == "disabled" and status["post"]["status"] == "ok"
    # documented policy: a disabled same-layout stage passes its input through
    for i, o in enumerate(outs):
        chunk = x[:, i * 10:(i + 1) * 10]
        factor = 2.0 if i < 3 else 1.0
        np.testing.assert_allclose(o["boom"], (chunk + 1.0) * factor)
        np.testing.assert_allclose(o["post"], (chunk + 1.0) * factor + 10.0)
    p["boom"].enable()
    assert p["boom"].status == "ok"


def test_wrong_output_shape_disables_stage(manager_with):
    p = eegkit.Pipeline(plugins=manager_with)
    p.add("wrong_shape.half", id="half")
    out = p.process(np.ones((2, 20)), sfreq=10.0)
    assert p["half"].status == "disabled"
    assert "returned 4 samples for 8 in" in p["half"].error or "samples for" in p["half"].error
    assert out["half"].shape == (2, 20)


def test_disabled_shape_changing_stage_emits_empty_blocks(eeg):
    x, info = eeg
    p = eegkit.Pipeline()
    p.add("brain_fft.band_power", id="bands", window=64, step=16)
    p.add("reref.average", id="car", input="source")
    p.open(info)
    p.push(x[:, :64])
    p["bands"].disable(RuntimeError("forced"), "process")
    out = p.push(x[:, 64:128])
    assert out["bands"].shape == (p.info_of("bands").n_channels, 0)
    assert out["car"].shape == (8, 64)


def test_stats_and_taps(eeg):
    x, info = eeg
    p = demo()
    seen = []
    p.tap("bp", lambda block, first: seen.append((first, block.shape[1])))
    p.open(info)
    for i in range(0, 320, 32):
        p.push(x[:, i:i + 32], copy=False)
    assert seen == [(i, 32) for i in range(0, 320, 32)]
    stats = {s["id"]: s for s in p.stats()}
    assert stats["bp"]["calls"] == 10 and stats["bp"]["median_us"] > 0
    assert stats["bp"]["p99_us"] >= stats["bp"]["median_us"]


def test_broken_tap_is_removed(eeg):
    x, info = eeg
    p = demo()

    def bad(block, first):
        raise RuntimeError("view crashed")

    p.tap("bp", bad)
    p.open(info)
    p.push(x[:, :32])
    p.push(x[:, 32:64])
    assert bad not in p["bp"].taps


def test_mne_raw_input(eeg):
    mne = pytest.importorskip("mne")
    x, info = eeg
    raw = mne.io.RawArray(x, mne.create_info(list(info.ch_names), info.sfreq, "eeg"), verbose=False)
    p = eegkit.Pipeline()
    p.add("filters.highpass", cutoff=0.5)
    a = p.process(raw)["highpass"]
    b = p.process(x, sfreq=info.sfreq, ch_names=info.ch_names)["highpass"]
    assert np.array_equal(a, b)


def test_bad_chunk_shape(eeg):
    x, info = eeg
    p = demo()
    p.open(info)
    with pytest.raises(ParameterError, match=r"chunk must have shape \(8, n_samples\).*\(3, 10\)"):
        p.push(np.zeros((3, 10)))


def test_run_from_synthetic_source_equals_process():
    p = eegkit.Pipeline(source={"type": "synthetic", "params": {"n_channels": 4, "sfreq": 200.0, "seed": 5}})
    p.add("filters.bandpass", id="bp", low=2.0, high=30.0)
    out = p.run(duration=3.0, chunk=17)
    src = eegkit.make_source({"type": "synthetic", "params": {"n_channels": 4, "sfreq": 200.0, "seed": 5, "duration": 3.0}})
    ref = p.process(src.read_all(), sfreq=200.0)
    assert np.array_equal(out["bp"], ref["bp"])


def test_remove_stage_rewires():
    p = demo()
    p.remove("bp")
    assert p["car"].input == "notch" and p["bands"].input == "notch"


def test_jit_off_gives_same_numbers(eeg, monkeypatch):
    x, info = eeg
    x = x[:, :300]
    compiled = demo().process(x, sfreq=info.sfreq)
    monkeypatch.setenv("EEGKIT_DISABLE_JIT", "1")
    from eegkit.plugin import PluginManager

    plain = demo(PluginManager())
    assert not hasattr(plain["bp"].code.process, "py_func")
    out = plain.process(x, sfreq=info.sfreq)
    for key in compiled:
        np.testing.assert_allclose(out[key], compiled[key], rtol=1e-12, atol=1e-18)


def test_two_changes_before_a_chunk_both_apply_and_taps_keep_them(eeg):
    x, info = eeg
    p = eegkit.Pipeline()
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.open(info)
    p.push(x[:, :10])
    p["bp"].set_params(low=2.0)
    p["bp"].set_params(high=30.0)
    p.tap("bp", lambda block, first: None)
    p.push(x[:, 10:20])
    assert p["bp"].params["low"] == 2.0 and p["bp"].params["high"] == 30.0


# -- the stage contract: eegkit.Setup, declared output ------------------------------------
CONTRACT_TOML = """[plugin]
name = "contract"
version = "0.1.0"
api = "1.0"

[[stage]]
type = "contract.tuple"
module = "stage.py"
setup = "setup_tuple"

[[stage]]
type = "contract.named"
module = "stage.py"
setup = "setup_named"
output = "in-place"

[[stage]]
type = "contract.says_new"
module = "stage.py"
setup = "setup_named"
output = "new"

[[stage]]
type = "contract.says_in_place"
module = "stage.py"
setup = "setup_sum"
process = "process_sum"
output = "in-place"

[[stage]]
type = "contract.sum"
module = "stage.py"
setup = "setup_sum"
process = "process_sum"
output = "new"

[[stage]]
type = "contract.scalar_state"
module = "stage.py"
setup = "setup_scalar"
"""
CONTRACT_PY = """import numpy as np
import eegkit


def setup_tuple(info):
    return np.array([0.5]), np.zeros(info.n_channels), np.zeros(3)


def setup_named(info):
    return eegkit.Setup(coefs=(np.array([0.5]),), state={"y": np.zeros(info.n_channels)},
                        scratch=(np.zeros(3),))


def process(x, a, y, scratch):
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            y[c] += a[0] * (x[c, i] - y[c])
            x[c, i] = y[c]


def setup_sum(info):
    out = info.expand("features", ["sum"], [0.0], sfreq=info.sfreq)
    return eegkit.Setup(state={"total": np.zeros(info.n_channels)}, out=out)


def process_sum(x, total):
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            total[c] += x[c, i]
    return total.reshape(x.shape[0], 1).copy()


def setup_scalar(info):
    return eegkit.Setup(state={"n": 0})
"""


@pytest.fixture
def contract(tmp_path):
    folder = tmp_path / "contract"
    folder.mkdir()
    (folder / "plugin.toml").write_text(CONTRACT_TOML)
    (folder / "stage.py").write_text(CONTRACT_PY)
    return eegkit.PluginManager(paths=[tmp_path], entry_points=False)


def test_setup_structure_gives_the_kernel_the_same_arguments_as_a_tuple(contract, eeg):
    x, info = eeg
    p = eegkit.Pipeline(plugins=contract, fuse=False)
    p.add("contract.tuple", id="t")
    p.add("contract.named", id="n", input="source")
    out = p.process(x[:, :500], sfreq=info.sfreq, ch_names=info.ch_names)
    np.testing.assert_array_equal(out["n"], out["t"])
    assert p["n"].state_names == {"y": 1} and p["t"].state_names is None
    assert p["n"].in_place and p["t"].in_place  # declared / found on the warm-up call
    assert [len(s) for s in (p["n"].state, p["t"].state)] == [3, 3]


def test_setup_structure_describes_a_new_output_stream(contract, eeg):
    x, info = eeg
    p = eegkit.Pipeline(plugins=contract)
    p.add("contract.sum", id="sum")
    out = stream(p, info, x[:, :100], [7])
    assert p["sum"].status == "ok" and not p["sum"].in_place
    assert p.info_of("sum").kind == "features" and out["sum"].shape[0] == info.n_channels
    np.testing.assert_allclose(out["sum"][:, -1], x[:, :100].sum(axis=1))


@pytest.mark.parametrize("stage_type, declared, did", [
    ("contract.says_new", "new", "returned None (worked in place)"),
    ("contract.says_in_place", "in-place", "returned a new array"),
])
def test_a_warm_up_that_contradicts_the_declared_output_disables_the_stage(contract, stage_type,
                                                                           declared, did):
    p = eegkit.Pipeline(plugins=contract)
    p.add(stage_type, id="s")
    out = p.process(np.ones((2, 20)), sfreq=100.0)
    st = p["s"]
    assert st.status == "disabled"
    assert f'the manifest declares output = "{declared}" but process {did}' in st.error
    assert "plugin.toml" in st.error
    if declared == "new":  # keeps its input's layout: passed through while disabled
        np.testing.assert_array_equal(out["s"], np.ones((2, 20)))


def test_setup_state_must_be_arrays(contract):
    p = eegkit.Pipeline(plugins=contract)
    p.add("contract.scalar_state", id="s")
    p.process(np.ones((2, 20)), sfreq=100.0)
    assert p["s"].status == "disabled"
    assert "entry 'n' must be a NumPy array that process updates in place" in p["s"].error


def test_every_accepted_setup_shape_is_read_by_one_function():
    from eegkit._errors import StageError
    from eegkit.plugin._setup import normalize_setup

    info = eegkit.StreamInfo(100.0, ["a", "b"])
    spec = info.expand("spectrum", ["1", "2"], [1.0, 2.0], sfreq=10.0)
    a, y, w = np.ones(1), np.zeros(2), np.zeros(3)
    assert normalize_setup(None, info, "s").args == ()
    plain = normalize_setup((a, y), info, "s")
    assert plain.args == (a, y) and plain.out_info is info and plain.names is None
    assert normalize_setup(((a,), spec), info, "s").out_info == spec
    named = normalize_setup(eegkit.Setup(coefs=(a,), state={"y": y}, scratch=(w,), out=spec),
                            info, "s")
    assert named.args == (a, y, w) and named.names == {"y": 1} and named.out_info == spec
    assert normalize_setup(eegkit.Setup(state=(y, w)), info, "s").names == {"state[0]": 0,
                                                                           "state[1]": 1}
    with pytest.raises(StageError, match=r"stage 'x': setup must return .*eegkit.Setup.*list"):
        normalize_setup([a], info, "stage 'x'")


def test_bundled_plugins_declare_their_output_and_keep_plain_tuples(eeg):
    x, info = eeg
    p = demo()
    p.process(x[:, :300], sfreq=info.sfreq, ch_names=info.ch_names)
    assert {s.id: (s.code.spec.output, s.in_place, s.state_names) for s in p.stages} == {
        "notch": ("in-place", True, None), "bp": ("in-place", True, None),
        "car": ("in-place", True, None), "bands": ("new", False, None)}
