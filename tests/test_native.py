"""Native stages: C and Rust libraries built by ``eegkit plugins build`` with the real
compilers, run in pipelines (fused with numba stages), from JSON via ``eegkit run``,
against scipy; ABI versions; failing and crashing kernels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

import eegkit
from eegkit import ManifestError, PluginLoadError
from eegkit.plugin import PluginApiWarning, PluginManager, build_native, read_manifest
from eegkit.plugin._native import target_triple
from eegkit.testing import CHUNK_SIZES, stream

ROOT = Path(__file__).resolve().parents[1]
SFREQ = 250.0
HAVE_C = shutil.which("make") is not None and shutil.which("cc") is not None
HAVE_CARGO = shutil.which("cargo") is not None
needs_c = pytest.mark.skipif(not HAVE_C, reason="needs make and a C compiler")
needs_all = pytest.mark.skipif(not (HAVE_C and HAVE_CARGO), reason="needs make, cc and cargo")
SOS = signal.butter(4, [1.0, 40.0], "bandpass", fs=SFREQ, output="sos")
INFO = eegkit.StreamInfo(SFREQ, [f"ch{i}" for i in range(6)])

FAULTS_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "eegkit_plugin.h"
#ifndef ABI
#define ABI EEGKIT_ABI_VERSION
#endif
typedef struct { long seen; char error[120]; } st;
EEGKIT_API uint32_t eegkit_abi_version(void) { return ABI; }
EEGKIT_API const char *eegkit_last_error(void *s) { return s ? ((st *)s)->error : "no state"; }
static int32_t make(void **out) {
    const char *marker = getenv("EEGKIT_TEST_MARKER");  /* proves setup ran */
    if (marker) { FILE *f = fopen(marker, "w"); if (f) fclose(f); }
    *out = calloc(1, sizeof(st));
    return 0;
}
#define STAGE(NAME, BODY)                                                                  \
    EEGKIT_API int32_t NAME##_setup(const double *p, int64_t n, double fs, int64_t c,      \
                                    void **out) { (void)p; (void)n; (void)fs; (void)c;      \
                                                  return make(out); }                       \
    EEGKIT_API void NAME##_free(void *s) { free(s); }                                      \
    EEGKIT_API int32_t NAME##_process_f64(void *state, double *x, int64_t c, int64_t n) {  \
        st *s = state; (void)x; BODY; s->seen += c * n; return 0; }
STAGE(crash, if (s->seen > 100) *(volatile int *)0 = 1)
STAGE(fail, if (s->seen > 100) { snprintf(s->error, sizeof s->error,
      "deliberate failure after %ld values", s->seen); return 3; })
STAGE(scale, for (int64_t i = 0; i < c * n; i++) x[i] *= 2.0)
"""
MAKEFILE = """build/lib{name}.so: {name}.c
\tmkdir -p build
\t$(CC) -O2 -fPIC -shared {flags} -I"$(EEGKIT_INCLUDE)" -o $@ $<
"""
FAULTS_TOML = """[plugin]
name = "{name}"
version = "0.1.0"
api = "1.0"
{stages}"""
STAGE_TOML = '\n[[stage]]\ntype = "{name}.{stage}"\nlibrary = "{name}"\nisolation = "{iso}"\n'


def c_plugin(root, name, stages, flags=""):
    """A C plugin folder built with make: ``stages`` maps stage name -> isolation."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / f"{name}.c").write_text(FAULTS_C)
    (folder / "Makefile").write_text(MAKEFILE.format(name=name, flags=flags))
    toml = "".join(STAGE_TOML.format(name=name, stage=s, iso=i) for s, i in stages.items())
    (folder / "plugin.toml").write_text(FAULTS_TOML.format(name=name, stages=toml))
    report = build_native(read_manifest(folder))
    assert report["ok"], f"{report['error']}\n{report['output']}"
    return folder


def eeg(n=1500, seed=0):
    return np.random.default_rng(seed).standard_normal((6, n)) * 20e-6 + 5e-6


def cli(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "eegkit", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=900, check=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """native_iir (C, the bundled example) and rust_iir (Rust) copied into a clean folder
    and built by ``eegkit plugins build``."""
    if not (HAVE_C and HAVE_CARGO):
        pytest.skip("needs make, cc and cargo")
    root = tmp_path_factory.mktemp("native_plugins")
    ignore = shutil.ignore_patterns("bin", "build", "target", "__pycache__")
    shutil.copytree(ROOT / "plugins" / "native_iir", root / "native_iir", ignore=ignore)
    shutil.copytree(ROOT / "tests" / "fixtures" / "native" / "rust_iir", root / "rust_iir",
                    ignore=ignore)
    env = dict(os.environ, EEGKIT_PLUGINS_PATH=str(root), PYTHONPATH=str(ROOT))
    out = cli("plugins", "build", "native_iir", "rust_iir", "--json", env=env, cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    natives = {p["name"]: p["native"] for p in doc["plugins"]}
    assert natives["native_iir"]["tool"] == "make" and natives["rust_iir"]["tool"] == "cargo"
    for name in ("native_iir", "rust_iir"):
        assert (root / name / "bin" / target_triple() / f"lib{name}.so").is_file()
        assert natives[name]["warnings"] == []
    return root, env


@pytest.fixture(scope="module")
def manager(built):
    from eegkit.plugin import package_dir

    return PluginManager(paths=[built[0], package_dir("plugins")], entry_points=False)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["native_iir.sosfilt", "rust_iir.sosfilt"])
@pytest.mark.parametrize("chunk", CHUNK_SIZES, ids=str)
def test_native_sosfilt_equals_scipy_in_chunks(manager, stage, chunk):
    x = eeg()
    p = eegkit.Pipeline(plugins=manager)
    p.add(stage, id="iir", sos=SOS.ravel().tolist())
    whole = p.process(x, sfreq=SFREQ, ch_names=INFO.ch_names)["iir"]
    np.testing.assert_allclose(whole, signal.sosfilt(SOS, x), rtol=1e-12, atol=1e-20)
    np.testing.assert_array_equal(stream(p, INFO, x, chunk)["iir"], whole)
    assert p["iir"].status == "ok"


@pytest.mark.slow
def test_native_float32_stream(manager):
    x = eeg().astype(np.float32)
    p = eegkit.Pipeline(plugins=manager)
    p.add("native_iir.sosfilt", id="iir", sos=SOS.ravel().tolist())
    out = stream(p, INFO.replace(dtype="float32"), x, 7)["iir"]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, signal.sosfilt(SOS, x.astype(np.float64)), rtol=1e-4,
                               atol=1e-9)


@pytest.mark.slow
def test_native_stages_fuse_with_numba_stages(manager):
    x = eeg(seed=3)
    p = eegkit.Pipeline(plugins=manager)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("native_iir.sosfilt", id="c", input="bp", sos=SOS.ravel().tolist())
    p.add("rust_iir.sosfilt", id="rust", input="c", sos=SOS.ravel().tolist())
    fused = stream(p, INFO, x, 32, outputs=["rust"])["rust"]
    assert [s["fused_with"] for s in p.stats()] == [["bp", "c", "rust"]] * 3
    alone = eegkit.Pipeline(plugins=manager, fuse=False)
    alone.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    bp = stream(alone, INFO, x, 32)["bp"]
    np.testing.assert_allclose(fused, signal.sosfilt(SOS, signal.sosfilt(SOS, bp)),
                               rtol=1e-12, atol=1e-20)


@pytest.mark.slow
def test_eegkit_run_json_with_native_stages(built, tmp_path):
    _, env = built
    source = {"type": "synthetic", "params": {"n_channels": 4, "sfreq": SFREQ, "seed": 2,
                                              "duration": 4.0}}
    doc = {"eegkit_pipeline": 1, "source": source, "stages": [
        {"id": "c", "type": "native_iir.sosfilt", "params": {"sos": SOS.ravel().tolist()}},
        {"id": "rust", "type": "rust_iir.sosfilt", "input": "c",
         "params": {"sos": SOS.ravel().tolist()}}]}
    (tmp_path / "pipeline.json").write_text(json.dumps(doc))
    out = cli("run", "pipeline.json", "-o", "out.npz", "--chunk", "7", "-q", env=env,
              cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    from eegkit.sources import make_source

    x = make_source(source).read_all()
    got = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(got["c"], signal.sosfilt(SOS, x), rtol=1e-12, atol=1e-20)
    np.testing.assert_allclose(got["rust"], signal.sosfilt(SOS, signal.sosfilt(SOS, x)),
                               rtol=1e-12, atol=1e-20)


@pytest.mark.slow
def test_build_reports_compiler_errors_per_plugin(built, tmp_path):
    _, env = built
    shutil.copytree(ROOT / "tests" / "fixtures" / "native" / "rust_iir", tmp_path / "rust_iir")
    lib = tmp_path / "rust_iir" / "src" / "lib.rs"
    lib.write_text(lib.read_text().replace("let k = s.sos.len();", "let k = s.sos.len() +;"))
    shutil.copytree(ROOT / "plugins" / "native_iir", tmp_path / "native_iir",
                    ignore=shutil.ignore_patterns("bin", "build"))
    env = dict(env, EEGKIT_PLUGINS_PATH=str(tmp_path))
    out = cli("plugins", "build", "rust_iir", "native_iir", env=env, cwd=tmp_path)
    assert out.returncode == 1
    assert "rust_iir: native build FAILED (cargo): 'cargo build --release --offline' failed" \
        in out.stdout
    assert "| error: expected expression" in out.stdout  # rustc's own words
    assert "native_iir: make ok -> bin/" in out.stdout and "native_iir: built" in out.stdout


@needs_c
def test_wrong_major_abi_is_rejected_before_any_stage_call(tmp_path, monkeypatch):
    c_plugin(tmp_path, "abi_major", {"scale": "none"}, flags="-DABI=0x20000")
    marker = tmp_path / "setup-ran"
    monkeypatch.setenv("EEGKIT_TEST_MARKER", str(marker))
    p = eegkit.Pipeline(plugins=PluginManager(paths=[tmp_path], entry_points=False))
    with pytest.raises(PluginLoadError, match=r"speaks native ABI 2\.0, but this eegkit "
                                              r"speaks ABI 1\.0; major versions must match"):
        p.add("abi_major.scale", id="s")
    assert not marker.exists()


@needs_c
def test_newer_minor_abi_warns_and_runs(tmp_path):
    c_plugin(tmp_path, "abi_minor", {"scale": "none"}, flags="-DABI=0x10003")
    p = eegkit.Pipeline(plugins=PluginManager(paths=[tmp_path], entry_points=False))
    with pytest.warns(PluginApiWarning, match=r"built for native ABI 1\.3, newer than"):
        p.add("abi_minor.scale", id="s")
    x = eeg(100)
    np.testing.assert_array_equal(p.process(x, sfreq=SFREQ)["s"], 2 * x)


@needs_c
def test_failing_kernel_disables_its_stage_with_the_library_message(tmp_path):
    c_plugin(tmp_path, "faults", {"fail": "none", "scale": "none"})
    p = eegkit.Pipeline(plugins=PluginManager(paths=[tmp_path], entry_points=False))
    p.add("faults.fail", id="fail")
    p.add("faults.scale", id="scale", input="fail")
    x = eeg(300)
    out = stream(p, INFO, x, 7)
    assert p["fail"].status == "disabled"
    assert "process returned 3: deliberate failure after 126 values" in p["fail"].error
    assert p["scale"].status == "ok"
    np.testing.assert_array_equal(out["scale"], 2 * x)  # a disabled stage passes its input


@needs_c
def test_segfaulting_kernel_under_process_isolation_disables_only_its_stage(tmp_path):
    c_plugin(tmp_path, "faults", {"crash": "process", "scale": "none"})
    p = eegkit.Pipeline(plugins=PluginManager(paths=[tmp_path], entry_points=False))
    p.add("faults.crash", id="crash")
    p.add("faults.scale", id="scale", input="crash")
    assert p["crash"].isolation == "process"
    x = eeg(300)
    out = stream(p, INFO, x, 32)
    assert p["crash"].status == "disabled"
    assert "SIGSEGV" in p["crash"].error or "signal 11" in p["crash"].error, p["crash"].error
    assert p["scale"].status == "ok"
    np.testing.assert_array_equal(out["scale"], 2 * x)


@needs_c
def test_jit_off_runs_native_stages_through_ctypes(tmp_path):
    c_plugin(tmp_path, "faults", {"scale": "none"})
    code = ("import numpy as np, eegkit; from eegkit.plugin import PluginManager; "
            f"p = eegkit.Pipeline(plugins=PluginManager(paths=[{str(tmp_path)!r}], "
            "entry_points=False)); p.add('faults.scale', id='s'); x = np.ones((2, 5)); "
            "print(p.process(x, sfreq=100.0)['s'].sum(), p['s'].code.process.__module__)")
    env = dict(os.environ, EEGKIT_DISABLE_JIT="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["20.0", "eegkit.plugin._native_kernel"]


def test_missing_platform_build_names_the_triples_found(tmp_path):
    folder = tmp_path / "elsewhere"
    (folder / "bin" / "riscv64gc-unknown-linux-gnu").mkdir(parents=True)
    (folder / "plugin.toml").write_text(FAULTS_TOML.format(
        name="elsewhere", stages=STAGE_TOML.format(name="elsewhere", stage="scale", iso="none")))
    p = eegkit.Pipeline(plugins=PluginManager(paths=[tmp_path], entry_points=False))
    with pytest.raises(PluginLoadError) as err:
        p.add("elsewhere.scale", id="s")
    text = str(err.value)
    assert f"no build of library 'elsewhere' for this platform ({target_triple()}" in text
    assert "bin/ holds builds for: riscv64gc-unknown-linux-gnu" in text
    assert "eegkit plugins build elsewhere" in text


@pytest.mark.parametrize("code, says", [
    ('module = "stage.py"\nlibrary = "x"', "got module and library"),
    ('', "got none of them"),
    ('library = "lib-x.so"', "library must be a library name"),
    ('library = "x"\nfuel = 5', "fuel must be a positive integer"),
])
def test_manifest_names_exactly_one_kind_of_code(tmp_path, code, says):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "stage.py").write_text("def process(x):\n    pass\n")
    (folder / "plugin.toml").write_text('[plugin]\nname = "x"\nversion = "0.1.0"\napi = "1.0"\n'
                                        f'\n[[stage]]\ntype = "x.s"\n{code}\n')
    with pytest.raises(ManifestError, match=says):
        read_manifest(folder)


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["c", "rust"])
def test_new_plugin_native_templates_build_and_match_their_reference(tmp_path, lang):
    if not (HAVE_CARGO if lang == "rust" else HAVE_C):
        pytest.skip(f"needs the {lang} toolchain")
    from eegkit.plugin._scaffold import new_plugin

    folder = new_plugin("hp", tmp_path, lang=lang)
    report = build_native(read_manifest(folder))
    assert report["ok"], f"{report['error']}\n{report['output']}"
    p = eegkit.Pipeline(plugins=PluginManager(paths=[tmp_path], entry_points=False))
    p.add("hp.highpass", id="hp", cutoff=1.0)
    x = eeg(seed=4) + 1e-4
    rc = 1.0 / (2.0 * np.pi * 1.0)
    a = rc / (rc + 1.0 / SFREQ)
    np.testing.assert_allclose(stream(p, INFO, x, (5, 1, 64))["hp"],
                               signal.lfilter([a, -a], [1.0, -a], x, axis=1),
                               rtol=1e-9, atol=1e-15)
    assert (folder / "tests" / "test_stage.py").is_file()


def test_check_reports_an_unbuilt_native_plugin_as_skipped_not_failed(tmp_path):
    from eegkit.runtime._plugin_check import check_plugin

    folder = tmp_path / "unbuilt"
    folder.mkdir()
    (folder / "plugin.toml").write_text(FAULTS_TOML.format(
        name="unbuilt", stages=STAGE_TOML.format(name="unbuilt", stage="scale", iso="none")))
    manager = PluginManager(paths=[tmp_path], entry_points=False)
    report = check_plugin(manager, manager.record("unbuilt"), run_tests=False)
    assert report["ok"]
    [stage] = [s for s in report["steps"] if s[0] == "unbuilt.scale"]
    assert stage[1] is None and "eegkit plugins build unbuilt" in stage[2]


@needs_c
def test_check_recommends_process_isolation_for_native_stages(tmp_path):
    from eegkit.runtime._plugin_check import check_plugin

    c_plugin(tmp_path, "faults", {"scale": "none", "fail": "process"})
    manager = PluginManager(paths=[tmp_path], entry_points=False)
    report = check_plugin(manager, manager.record("faults"), run_tests=False)
    advice = [s[2] for s in report["steps"] if s[0] == "isolation"]
    assert len(advice) == 1 and advice[0].startswith("faults.scale runs native code in this "
                                                     "process, where a crash ends")
    assert 'isolation = "process"' in advice[0]


@needs_c
def test_reload_after_a_rebuild_swaps_in_the_new_library_with_fresh_state(tmp_path):
    from eegkit.live._reload import reload_pipeline

    folder = c_plugin(tmp_path, "faults", {"scale": "none"})
    p = eegkit.Pipeline(plugins=PluginManager(paths=[tmp_path], entry_points=False))
    p.add("faults.scale", id="s")
    p.open(eegkit.StreamInfo(SFREQ, ["a", "b"]))
    np.testing.assert_array_equal(p.push(np.ones((2, 3)))["s"], 2.0)
    source = folder / "faults.c"
    source.write_text(source.read_text().replace("x[i] *= 2.0", "x[i] *= 3.0"))
    assert build_native(read_manifest(folder))["ok"]
    [result] = reload_pipeline(p)
    assert result.ok and result.state == "none", str(result)  # native state is not carried
    np.testing.assert_array_equal(p.push(np.ones((2, 3)))["s"], 3.0)


@needs_c
def test_failing_native_kernel_inside_a_fused_chain_disables_only_itself(tmp_path):
    from eegkit.plugin import package_dir

    c_plugin(tmp_path, "faults", {"fail": "none", "scale": "none"})
    manager = PluginManager(paths=[tmp_path, package_dir("plugins")], entry_points=False)
    p = eegkit.Pipeline(plugins=manager)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("faults.fail", id="fail", input="bp")
    p.add("faults.scale", id="scale", input="fail")
    x = eeg(300)
    p.open(INFO)
    parts = []
    for i in range(0, x.shape[1], 7):
        parts.append(p.push(x[:, i:i + 7], outputs=["scale"])["scale"])
        if i == 0:  # fused until the failure
            assert [s["fused_with"] for s in p.stats()] == [["bp", "fail", "scale"]] * 3
    out = np.concatenate(parts, axis=1)
    assert p["fail"].status == "disabled" and "deliberate failure" in p["fail"].error
    assert p["bp"].status == p["scale"].status == "ok"
    alone = eegkit.Pipeline(plugins=manager, fuse=False)
    alone.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    np.testing.assert_array_equal(out, 2 * stream(alone, INFO, x, 7)["bp"])


@needs_c
def test_clone_build_run_while_a_notebook_session_runs(tmp_path):
    """The seed's flow without a restart: a session's pipeline is live; a native plugin
    folder is cloned into its plugins folder and built with ``eegkit plugins build`` (a
    separate process, as from a terminal); the same session then finds the new stage
    type, runs it equal to scipy, and its view appears in the dashboard."""
    from eegkit.notebook._dashboard import Dashboard

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    manager = PluginManager(paths=[plugins], entry_points=False)
    p = eegkit.Pipeline(plugins=manager)
    x = eeg()
    p.open(INFO)
    p.push(x[:, :32])                                  # the session is streaming
    assert "native_iir.sosfilt" not in manager.stage_types()

    shutil.copytree(ROOT / "plugins" / "native_iir", plugins / "native_iir",
                    ignore=shutil.ignore_patterns("bin", "build", "__pycache__"))
    env = dict(os.environ, EEGKIT_PLUGINS_PATH=str(plugins), PYTHONPATH=str(ROOT))
    out = cli("plugins", "build", "native_iir", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr

    manager.refresh()                                  # what the file watcher does
    sos = signal.butter(2, [1.0, 40.0], "bandpass", fs=SFREQ, output="sos")
    p.add("native_iir.sosfilt", id="iir", input="source", sos=list(sos.ravel()))
    got = p.process(x, sfreq=SFREQ, ch_names=INFO.ch_names, outputs=["iir"])["iir"]
    np.testing.assert_allclose(got, signal.sosfilt(sos, x, axis=1), rtol=1e-12, atol=1e-18)
    board = Dashboard(p)
    try:
        card = board.card("iir")
        assert card.view is not None and card.view.view == "scope"
    finally:
        board.close()
