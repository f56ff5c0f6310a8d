"""WebAssembly stages run by wasmtime: hand-written .wat modules (no toolchain needed)
equal their reference; endless loops, traps and memory hogs disable only their stage;
imports and wrong ABI versions are refused."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

import eegkit
from eegkit import MissingExtraError, PluginLoadError
from eegkit.plugin import PluginApiWarning, PluginManager, build_native, read_manifest
from eegkit.testing import CHUNK_SIZES, stream

pytest.importorskip("wasmtime")

SFREQ = 250.0
INFO = eegkit.StreamInfo(SFREQ, [f"ch{i}" for i in range(5)])

WAT = r"""
(module
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 1024))
  (data (i32.const 16) "memory limit reached\00")
  (func (export "eegkit_abi_version") (result i32) (i32.const __ABI__))
  (func (export "eegkit_last_error") (param i32) (result i32) (i32.const 16))
  ;; bump allocator: 16-byte aligned, grows memory; fresh memory is zero
  (func $alloc (export "eegkit_alloc") (param $n i64) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (local.set $p (i32.and (i32.add (global.get $top) (i32.const 15)) (i32.const -16)))
    (local.set $end (i32.add (local.get $p) (i32.wrap_i64 (local.get $n))))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then (if (i32.eq (memory.grow (i32.div_u (i32.add (i32.sub (local.get $end)
                    (local.get $have)) (i32.const 65535)) (i32.const 65536))) (i32.const -1))
              (then (return (i32.const 0))))))
    (global.set $top (local.get $end))
    (local.get $p))
  ;; state: [n_channels i64][one accumulator f64 per channel]
  (func (export "cumsum_setup") (export "spin_setup") (export "trap_setup") (export "hog_setup")
        (param $p i32) (param $np i64) (param $fs f64) (param $nch i64) (param $out i32)
        (result i32)
    (local $s i32)
    (local.set $s (call $alloc (i64.add (i64.mul (local.get $nch) (i64.const 8)) (i64.const 8))))
    (if (i32.eqz (local.get $s)) (then (return (i32.const 2))))
    (i64.store (local.get $s) (local.get $nch))
    (i32.store (local.get $out) (local.get $s))
    (i32.const 0))
  (func (export "cumsum_free") (export "spin_free") (export "trap_free") (export "hog_free")
        (param i32))
  ;; running sum per channel, in place: the state carries it across chunks
  (func (export "cumsum_process_f64") (param $s i32) (param $x i32) (param $nch i64)
        (param $ns i64) (result i32)
    (local $c i32) (local $i i32) (local $acc f64) (local $p i32) (local $slot i32)
    (if (i64.ne (local.get $nch) (i64.load (local.get $s))) (then (return (i32.const 3))))
    (local.set $p (local.get $x))
    (block $cd (loop $cl
      (br_if $cd (i32.ge_u (local.get $c) (i32.wrap_i64 (local.get $nch))))
      (local.set $slot (i32.add (i32.add (local.get $s) (i32.const 8))
                                (i32.shl (local.get $c) (i32.const 3))))
      (local.set $acc (f64.load (local.get $slot)))
      (local.set $i (i32.const 0))
      (block $id (loop $il
        (br_if $id (i32.ge_u (local.get $i) (i32.wrap_i64 (local.get $ns))))
        (local.set $acc (f64.add (local.get $acc) (f64.load (local.get $p))))
        (f64.store (local.get $p) (local.get $acc))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $il)))
      (f64.store (local.get $slot) (local.get $acc))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $cl)))
    (i32.const 0))
  (func (export "spin_process_f64") (param i32 i32 i64 i64) (result i32)
    (loop $forever (br $forever))
    (i32.const 0))
  (func (export "trap_process_f64") (param i32 i32 i64 i64) (result i32)
    (unreachable))
  (func (export "hog_process_f64") (param i32 i32 i64 i64) (result i32)
    (if (i32.eq (memory.grow (i32.const 8192)) (i32.const -1)) (then (return (i32.const 2))))
    (i32.const 0))
)
"""
TOML = """[plugin]
name = "{name}"
version = "0.1.0"
api = "1.0"
""" + "".join(f'\n[[stage]]\ntype = "{{name}}.{s}"\nwasm = "kernel.wat"\n{extra}\n'
              for s, extra in [("cumsum", ""), ("spin", "fuel = 100"), ("trap", ""), ("hog", "")])


def wasm_plugin(root, name="wk", wat=WAT, abi="65536"):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "kernel.wat").write_text(wat.replace("__ABI__", abi))
    (folder / "plugin.toml").write_text(TOML.format(name=name))
    return PluginManager(paths=[root], entry_points=False)


def eeg(n=700, seed=0):
    return np.random.default_rng(seed).standard_normal((5, n))


@pytest.mark.parametrize("chunk", CHUNK_SIZES, ids=str)
def test_wasm_stage_equals_its_reference_in_chunks(tmp_path, chunk):
    p = eegkit.Pipeline(plugins=wasm_plugin(tmp_path))
    p.add("wk.cumsum", id="sum")
    x = eeg()
    whole = p.process(x, sfreq=SFREQ, ch_names=INFO.ch_names)["sum"]
    np.testing.assert_array_equal(whole, np.cumsum(x, axis=1))
    np.testing.assert_array_equal(stream(p, INFO, x, chunk)["sum"], whole)
    assert p["sum"].status == "ok"


@pytest.mark.parametrize("stage, says", [
    ("spin", "all fuel consumed"),
    ("trap", "unreachable"),
    ("hog", "process returned 2: memory limit reached"),
])
def test_looping_trapping_or_hogging_kernel_is_disabled_and_the_rest_goes_on(tmp_path, stage,
                                                                              says):
    p = eegkit.Pipeline(plugins=wasm_plugin(tmp_path))
    p.add(f"wk.{stage}", id="bad")
    p.add("wk.cumsum", id="sum", input="bad")
    x = eeg(300, seed=1)
    out = stream(p, INFO, x, 32)
    assert p["bad"].status == "disabled"
    assert says in p["bad"].error, p["bad"].error
    assert p["sum"].status == "ok"
    np.testing.assert_array_equal(out["sum"], np.cumsum(x, axis=1))


def test_float32_stream_needs_a_process_f32_export(tmp_path):
    p = eegkit.Pipeline(plugins=wasm_plugin(tmp_path))
    p.add("wk.cumsum", id="sum")
    p.open(INFO.replace(dtype="float32"))
    assert p["sum"].status == "disabled"
    assert "exports no cumsum_process_f32" in p["sum"].error


def test_a_module_with_imports_is_refused(tmp_path):
    wat = WAT.replace('(memory (export "memory") 1)',
                      '(import "env" "log" (func (param i32)))\n  (memory (export "memory") 1)')
    p = eegkit.Pipeline(plugins=wasm_plugin(tmp_path, wat=wat))
    with pytest.raises(PluginLoadError, match=r"imports env\.log; a wasm stage may import nothing"):
        p.add("wk.cumsum", id="sum")


def test_abi_major_rejected_and_newer_minor_warned(tmp_path):
    p = eegkit.Pipeline(plugins=wasm_plugin(tmp_path / "a", abi=str(2 << 16)))
    with pytest.raises(PluginLoadError, match=r"native ABI 2\.0, but this eegkit speaks ABI 1\.0"):
        p.add("wk.cumsum", id="sum")
    p = eegkit.Pipeline(plugins=wasm_plugin(tmp_path / "b", abi=str((1 << 16) | 4)))
    with pytest.warns(PluginApiWarning, match=r"native ABI 1\.4, newer than"):
        p.add("wk.cumsum", id="sum")


def test_missing_wasmtime_names_the_extra(tmp_path, monkeypatch):
    manager = wasm_plugin(tmp_path)
    monkeypatch.setitem(sys.modules, "wasmtime", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'eegkit\[wasm\]'"):
        eegkit.Pipeline(plugins=manager).add("wk.cumsum", id="sum")


def _clang_wasm() -> bool:
    if not (shutil.which("clang") and shutil.which("wasm-ld") and shutil.which("make")):
        return False
    out = subprocess.run(["clang", "--print-targets"], capture_output=True, text=True,
                         check=False)
    return "wasm32" in out.stdout


@pytest.mark.slow
@pytest.mark.skipif(not _clang_wasm(), reason="needs clang with the wasm32 target and wasm-ld")
def test_new_plugin_wasm_template_builds_and_matches_its_reference(tmp_path):
    from scipy import signal

    from eegkit.plugin._scaffold import new_plugin

    folder = new_plugin("hpw", tmp_path, lang="wasm")
    report = build_native(read_manifest(folder))
    assert report["ok"], f"{report['error']}\n{report['output']}"
    p = eegkit.Pipeline(plugins=PluginManager(paths=[tmp_path], entry_points=False))
    p.add("hpw.highpass", id="hp", cutoff=1.0)
    x = eeg(seed=2) * 1e-5 + 1e-4
    rc = 1.0 / (2.0 * np.pi)
    a = rc / (rc + 1.0 / SFREQ)
    np.testing.assert_allclose(stream(p, INFO, x, 7)["hp"],
                               signal.lfilter([a, -a], [1.0, -a], x, axis=1), rtol=1e-9, atol=1e-15)
