"""Fault injection: stages that fail in every way we know of, in plain, fused and
offline runs. Each fault gives its documented outcome (eegkit/docs/reliability.md)
and the rest of the pipeline keeps producing the numbers of a reference pipeline
built without the faulty stage."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import eegkit
from eegkit._numba import jit_disabled
from eegkit.plugin import PluginManager, package_dir

FAULTS = Path(__file__).resolve().parent / "fixtures" / "faults"
CHUNK = 25      # samples per streaming step
BLOCK = 250     # samples per offline block (process(..., block=BLOCK))
AT = 3          # the chunk (or offline block) on which a fault fires
MODES = ("plain", "fused", "offline")
OBSERVED = ["car", "bands"]
# faults.slow and faults.stall sleep in numba's object mode, which cannot release the GIL
pytestmark = pytest.mark.filterwarnings("ignore:.*object mode")
# fusion and numba typing exist only when kernels are compiled
needs_jit = pytest.mark.skipif(jit_disabled(), reason="EEGKIT_DISABLE_JIT is set")


@pytest.fixture(scope="module")
def plugins():
    return PluginManager(paths=[FAULTS, package_dir("plugins")], entry_points=False)


@pytest.fixture(scope="module")
def data():
    src = eegkit.make_source({"type": "synthetic", "params": {
        "n_channels": 8, "sfreq": 250.0, "seed": 11, "duration": 8.0}})
    return src.read_all(), src.info


def build(plugins, fault=None, input=None, isolation=None, isolation_timeout=None, **params):
    """band-pass → [fault] → notch → average reference → band powers."""
    p = eegkit.Pipeline(plugins=plugins)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    if fault is not None:
        p.add(fault, id="fault", input=input, isolation=isolation,
              isolation_timeout=isolation_timeout, **params)
    p.add("filters.notch", id="notch", freq=50.0, input="bp" if input == "source" else None)
    p.add("reref.average", id="car")
    p.add("brain_fft.band_power", id="bands", window=64, step=16)
    return p


@pytest.fixture(scope="module")
def reference(plugins, data):
    x, info = data
    return build(plugins).process(x, sfreq=info.sfreq, ch_names=info.ch_names)


def run(p, data, mode, between=None):
    """Outputs of every stage (plain), of OBSERVED (fused) or of every stage (offline).

    ``between(p, i)`` is called before streaming chunk ``i``.
    """
    x, info = data
    if mode == "offline":
        return p.process(x, sfreq=info.sfreq, ch_names=info.ch_names, block=BLOCK)
    outputs = None if mode == "plain" else OBSERVED
    p.open(info)
    parts = []
    for i, start in enumerate(range(0, x.shape[1], CHUNK)):
        if between is not None:
            between(p, i)
        parts.append(p.push(x[:, start:start + CHUNK], outputs=outputs))
    return {k: np.concatenate([q[k] for q in parts], axis=1) for k in parts[0]}


def fault_start(mode):
    """Index of the first input sample of the chunk or block on which faults fire."""
    return AT * (BLOCK if mode == "offline" else CHUNK)


def assert_rest_correct(out, reference):
    for id in OBSERVED:
        assert np.array_equal(out[id], reference[id]), id


def assert_others_ok(p):
    bad = [s["id"] for s in p.status() if s["id"] != "fault" and s["status"] != "ok"]
    assert not bad


# -- faults whose stage is disabled, and passed through ------------------------------
DISABLING = [
    # (stage type, params, phase and words of the kept error)
    ("faults.raise_setup", {}, "setup: ValueError: deliberate failure in setup"),
    ("faults.raise_process", {"at": AT}, "process: ValueError: deliberate failure in process"),
    ("faults.wrong_rows", {"at": AT}, "process: StageError"),
    ("faults.wrong_samples", {"at": AT}, "process: StageError"),
    # found on the warm-up call, which runs with setup
    ("faults.as_int", {}, "setup: StageError"),
    ("faults.as_complex", {}, "setup: StageError"),
    ("faults.returns_later", {"at": AT}, "process: StageError"),
    # issue #14 row 2: sys.exit() in plugin code only disables its stage
    ("faults.exit_setup", {}, "setup: SystemExit: 3"),
    ("faults.exit_process", {"at": AT}, "process: SystemExit: 4"),
    # issue #14 row 7a: setup declares more channels than the in-place kernel gives
    ("faults.layout_lie", {}, "setup: StageError"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault, params, words", DISABLING, ids=[d[0] for d in DISABLING])
def test_disabled_stage_passes_input_and_rest_is_correct(plugins, data, reference, mode,
                                                         fault, params, words):
    p = build(plugins, fault, **params)
    out = run(p, data, mode)
    st = p["fault"]
    assert st.status == "disabled"
    assert st.error.startswith(words), st.error
    assert "Traceback" in st.traceback
    assert_others_ok(p)
    assert_rest_correct(out, reference)
    if mode != "fused":  # passed through: its output is its input (the band-passed signal)
        assert np.array_equal(out["fault"], out["bp"])
    status = {s["id"]: s for s in p.status()}["fault"]
    expected_at = 0 if words.startswith("setup") or fault in ("faults.as_int", "faults.as_complex") \
        else fault_start(mode)
    assert status["failed_at"] == expected_at


def test_error_messages_name_stage_and_what_was_wrong(plugins, data):
    expected = {
        "faults.wrong_rows": ["stage 'fault' (faults.wrong_rows)", "returned (9, 25)",
                              "shape (8, n)"],
        "faults.wrong_samples": ["returned 12 samples for 25 in"],
        "faults.as_int": ["returned an array of int64", "float64"],
        "faults.as_complex": ["returned an array of complex128", "float64"],
        "faults.returns_later": ["returned None (in place) on its warm-up call",
                                 "always work in place or always return"],
        "faults.layout_lie": ["setup declares an output of 9 channel(s)",
                              "worked in place on its 8-channel input"],
    }
    for fault, words in expected.items():
        p = build(plugins, fault)
        run(p, data, "plain")
        for w in words:
            assert w in p["fault"].error, (fault, p["fault"].error)


@needs_jit
def test_fused_chain_is_really_used_until_the_fault(plugins, data):
    x, info = data
    p = build(plugins, "faults.raise_process", at=AT)
    p.open(info)
    assert p.plan(OBSERVED).describe()[0] == "fused[bp, fault, notch, car] (copy)"
    for start in range(0, (AT + 2) * CHUNK, CHUNK):
        p.push(x[:, start:start + CHUNK], outputs=OBSERVED)
    assert p["fault"].status == "disabled"
    # re-planned without the disabled stage; the others still fuse
    assert p.plan(OBSERVED).describe()[:2] == ["fused[bp] (copy)", "fault (in place)"] or \
        "fault" not in p.plan(OBSERVED).describe()[0]


@needs_jit
def test_exit_escaping_a_fused_call_disables_only_the_culprit(plugins, data):
    """Issue #14 row 2: what an objmode block raises escapes numba's try/except in a
    fused call; the stage whose file the traceback names is disabled, the run goes on."""
    x, info = data
    p = build(plugins, "faults.exit_helper", at=AT)
    p.open(info)
    assert p.plan(OBSERVED).describe()[0] == "fused[bp, fault, notch, car] (copy)"
    for start in range(0, (AT + 3) * CHUNK, CHUNK):
        p.push(x[:, start:start + CHUNK], outputs=OBSERVED)
    assert p["fault"].status == "disabled"
    assert p["fault"].error == "process: SystemExit: 4"
    assert_others_ok(p)
    assert [s.calls for s in p.stages] == [AT + 3, AT, AT + 3, AT + 3, AT + 3]


@pytest.mark.parametrize("mode", MODES)
def test_partial_write_before_raising_is_passed_on_for_that_chunk_only(plugins, data, mode):
    """A kernel that fails half-way leaves its writes in the block: that block is passed
    on as the kernel left it (flagged by ``failed_at``); every later block is passed
    through untouched. A stateless stage downstream is exact again after it."""
    x, info = data
    p = eegkit.Pipeline(plugins=plugins)
    p.add("reref.average", id="car0", input="source")
    p.add("faults.partial", id="fault", at=AT)
    p.add("reref.average", id="car")
    observed = ["car"] if mode == "fused" else None
    if mode == "offline":
        out = p.process(x, sfreq=info.sfreq, block=BLOCK)["car"]
    else:
        p.open(info)
        out = np.concatenate([p.push(x[:, s:s + CHUNK], outputs=observed)["car"]
                              for s in range(0, x.shape[1], CHUNK)], axis=1)
    ref = x - x.mean(axis=0)
    start = {s["id"]: s for s in p.status()}["fault"]["failed_at"]
    size = BLOCK if mode == "offline" else CHUNK
    assert start == fault_start(mode)
    np.testing.assert_allclose(out[:, :start], ref[:, :start], rtol=0, atol=1e-18)
    np.testing.assert_allclose(out[:, start + size:], ref[:, start + size:], rtol=0, atol=1e-18)
    damaged = out[:, start:start + size] - ref[:, start:start + size]
    # +1000 written once (never twice, even when the fused chain re-runs the culprit)
    # into the first half of the channels, then re-referenced
    np.testing.assert_allclose(damaged[:4], 500.0, rtol=1e-12)
    np.testing.assert_allclose(damaged[4:], -500.0, rtol=1e-12)


# -- faults that do not disable the stage --------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_float32_output_is_cast_to_the_stream_dtype(plugins, data, reference, mode):
    p = build(plugins, "faults.as_float32")
    out = run(p, data, mode)
    assert p["fault"].status == "ok"
    assert out["car"].dtype == np.float64
    # the signal went through float32 once: equal to ~7 significant digits
    scale = np.abs(reference["car"]).max()
    np.testing.assert_allclose(out["car"], reference["car"], rtol=0, atol=scale * 1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["nan", "inf", "-inf"])
def test_non_finite_output_is_passed_on_and_counted(plugins, data, reference, mode, kind, caplog):
    x, info = data
    p = build(plugins, "faults.nonfinite", at=AT, kind=kind, channel=2)
    with caplog.at_level(logging.WARNING, logger="eegkit"):
        out = run(p, data, mode)
    for s in p.status():
        assert s["status"] == "ok"     # never disabled for non-finite values
    start = fault_start(mode)
    bad_sample = start + (BLOCK if mode == "offline" else CHUNK) // 2
    stats = {s["id"]: s for s in p.stats()}
    # the first stage that saw it: in a fused chain the chain's output is checked,
    # and counted on its last stage
    first = "car" if mode == "fused" else "fault"
    assert stats[first]["nonfinite_chunks"] >= 1
    assert stats[first]["first_nonfinite"] == start
    assert stats["bp"]["nonfinite_chunks"] == 0
    assert "non-finite" in caplog.text and f"'{first}'" in caplog.text
    # before the bad sample everything equals the reference; the value is passed on
    assert np.array_equal(out["car"][:, :bad_sample], reference["car"][:, :bad_sample])
    assert not np.isfinite(out["car"][:, bad_sample]).any()  # the average spreads it
    if mode != "fused":
        assert np.array_equal(out["fault"][2, bad_sample], float(kind), equal_nan=True)
    # the recursive notch keeps it in its state: documented, reset with open()
    assert not np.isfinite(out["car"][:, -1]).any()
    if mode != "offline":
        p.open(info)
        again = p.push(x[:, :CHUNK], outputs=OBSERVED)
        assert np.isfinite(again["car"]).all()
        assert {s["id"]: s for s in p.stats()}[first]["nonfinite_chunks"] == 0


def test_non_finite_input_from_the_source_is_counted_on_the_first_stage(plugins, data):
    x, info = data
    x = x.copy()
    x[5, 40] = np.nan
    p = build(plugins)
    out = p.process(x, sfreq=info.sfreq, ch_names=info.ch_names)
    stats = {s["id"]: s for s in p.stats()}
    assert stats["bp"]["nonfinite_chunks"] == 1 and stats["bp"]["first_nonfinite"] == 0
    assert np.isnan(out["bp"][5, 40:]).all() and np.isfinite(out["bp"][:5]).all()


@needs_jit
@pytest.mark.parametrize("mode", ["plain", "fused"])
def test_state_that_changes_shape_between_parameter_changes(plugins, data, reference, mode):
    def between(p, i):
        if i == 5:
            p["fault"].set_params(mode=1)     # new arity, ndim and dtype: recompiled
        if i == 10:
            p["fault"].set_params(mode=2)     # a dict: numba cannot type it -> rejected

    p = build(plugins, "faults.state_shape", mode=0)
    out = run(p, data, mode, between)
    st = p["fault"]
    assert st.status == "ok" and st.params["mode"] == 1
    assert "parameter change rejected" in st.last_error
    assert_rest_correct(out, reference)


@needs_jit
@pytest.mark.parametrize("mode", MODES)
def test_state_numba_cannot_type_disables_at_compile(plugins, data, reference, mode):
    p = build(plugins, "faults.state_shape", mode=2)
    out = run(p, data, mode)
    assert p["fault"].status == "disabled" and p["fault"].error.startswith("compile: ")
    assert_rest_correct(out, reference)


@pytest.mark.parametrize("mode", MODES)
def test_layout_changing_stage_that_fails_emits_empty_blocks(plugins, data, reference, mode):
    x, info = data
    p = build(plugins, "faults.rows_change", input="source", at=AT)
    p.add("faults.slow", id="after", input="fault", delay=0.0)
    out = run(p, data, mode)
    assert p["fault"].status == "disabled" and "returned (9, 1)" in p["fault"].error
    assert p["after"].status == "ok"
    n_blocks = AT if mode != "fused" else None
    if mode != "fused":
        assert out["fault"].shape == (8, n_blocks)       # one mean per block, then nothing
        assert out["after"].shape == (8, n_blocks)
        block = BLOCK if mode == "offline" else CHUNK
        np.testing.assert_allclose(out["fault"][:, 1], x[:, block:2 * block].mean(axis=1))
    assert p["after"].samples_in == AT
    assert_rest_correct(out, reference)


def test_several_faults_at_once(plugins, data, reference):
    """Three broken stages at different places: each is disabled on its own chunk, the
    rest of the pipeline stays exact."""
    x, info = data
    p = eegkit.Pipeline(plugins=plugins)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("faults.raise_process", id="f1", at=2)
    p.add("faults.wrong_rows", id="f2", at=5)
    p.add("filters.notch", id="notch", freq=50.0)
    p.add("faults.raise_setup", id="f3")
    p.add("reref.average", id="car")
    p.add("faults.returns_later", id="f4", at=7)
    p.add("brain_fft.band_power", id="bands", window=64, step=16)
    out = run(p, data, "fused")
    assert [s["status"] for s in p.status()] == ["ok", "disabled", "disabled", "ok", "disabled",
                                                 "ok", "disabled", "ok"]
    assert_rest_correct(out, reference)


def test_fault_in_a_background_run(plugins, data, reference):
    """The runner keeps going when a stage fails; its sinks see the pass-through."""
    x, info = data
    p = build(plugins, "faults.raise_process", at=AT)
    p.set_source(eegkit.ArraySource(x, info.sfreq, ch_names=info.ch_names))
    kept = []
    p.tap("bands", lambda block, first: kept.append(block.copy()))
    runner = p.start(chunk=CHUNK, realtime=False, overrun="block")
    assert runner.join(60)
    assert runner.state == "finished" and runner.error is None
    assert p["fault"].status == "disabled"
    assert np.array_equal(np.concatenate(kept, axis=1), reference["bands"])


# -- isolated stages (eegkit.runtime._isolate): crashes and missed deadlines ---------------------
posix = pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="isolation needs POSIX")


@posix
@pytest.mark.parametrize("mode", ["fused", "offline"])  # plain runs isolated stages as fused does
def test_isolated_segfault_disables_only_that_stage(plugins, data, reference, mode):
    p = build(plugins, "faults.crash", at=AT)      # isolation = "process" in its manifest
    assert p["fault"].isolation == "process"
    try:
        out = run(p, data, mode)
        st = p["fault"]
        assert st.status == "disabled"
        assert "child process died" in st.error and "SIGSEGV" in st.error
        assert {s["id"]: s for s in p.status()}["fault"]["failed_at"] == fault_start(mode)
        assert_others_ok(p)
        assert_rest_correct(out, reference)
    finally:
        p["fault"].code.close()


@posix
def test_isolated_stage_past_its_deadline_is_killed_and_disabled(plugins, data, reference):
    p = build(plugins, "faults.stall", at=AT, delay=30.0, isolation="process",
              isolation_timeout=0.5)
    try:
        pid = p["fault"].code.pid
        out = run(p, data, "fused")
        st = p["fault"]
        assert st.status == "disabled" and "within 0.5 s" in st.error and str(pid) in st.error
        assert_rest_correct(out, reference)
    finally:
        p["fault"].code.close()
