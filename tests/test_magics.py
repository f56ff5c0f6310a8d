"""IPython magics, driven through a real InteractiveShell: %eegkit and %%eegkit_stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell

import eegkit
from eegkit._numba import is_compiled, jit_disabled
from eegkit.plugin import default_manager

GAIN_CELL = """
import numpy as np

PARAMS = {"factor": {"type": "float", "default": 2.0, "min": 0.0, "unit": "x",
                     "description": "multiplies every sample"}}
VIEW = "scope"


def setup(info, factor):
    return (np.array([factor]),)


def process(x, f):
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            x[c, i] *= f[0]
"""
SOURCE = {"type": "synthetic", "params": {"n_channels": 4, "sfreq": 250.0, "seed": 9}}


@pytest.fixture
def ip(tmp_path, monkeypatch):
    """The shell with the extension loaded, working in a scratch folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EEGKIT_PLUGINS_PATH", os.environ.get("EEGKIT_PLUGINS_PATH", ""))
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "eegkit")
    yield shell
    for name, value in list(shell.user_ns.items()):
        if isinstance(value, eegkit.Pipeline):
            value.stop()
            if getattr(value, "_dashboard", None) is not None:
                value._dashboard.close()  # its refresh thread ends
            del shell.user_ns[name]
    monkeypatch.undo()  # the session plugin folder leaves the plugin path again
    default_manager().refresh()


def run(ip, capsys, line):
    """``%eegkit line``; returns (stdout, stderr)."""
    ip.run_line_magic("eegkit", line)
    out = capsys.readouterr()
    return out.out, out.err


def execute(ip, capsys, code):
    """Run a code cell (it must succeed); its output is dropped."""
    ip.run_cell(code).raise_error()
    capsys.readouterr()


def cell(ip, capsys, name, body):
    ip.run_cell_magic("eegkit_stage", name, textwrap.dedent(body))
    out = capsys.readouterr()
    return out.out, out.err


def test_help(ip, capsys):
    for line in ("", "help"):
        out, err = run(ip, capsys, line)
        assert "Usage:" in out and "%eegkit export PIPELINE PATH.json" in out and not err


@pytest.mark.parametrize("line, message", [
    ("bogus", "unknown command 'bogus'"),
    ("statsu", "Did you mean 'status'?"),
    ("plugins extra", "'plugins' takes no arguments"),
    ("status now", "'status' takes no arguments"),
    ("export", "'export' needs PIPELINE and PATH.json"),
    ("export nope out.json", "no variable named 'nope'"),
    ("export three out.json", "'three' is a int, not an eegkit.Pipeline"),
    ("run", "'run' needs PATH.json"),
    ("run a.json b c", "'run' needs PATH.json"),
    ("run p.json 1abc", "NAME must be a Python identifier"),
    ("reload a b", "'reload' takes at most one PLUGIN"),
    ("reload no_such_plugin", "no plugin named 'no_such_plugin'"),
    ("save-stage", "'save-stage' needs the NAME"),
    ("save-stage never_defined", "no %%eegkit_stage never_defined cell"),
    ('export "unclosed', "cannot parse the arguments"),
])
def test_bad_usage_gives_a_message_not_a_traceback(ip, capsys, line, message):
    ip.user_ns["three"] = 3
    out, err = run(ip, capsys, line)
    assert message in err, err
    assert "Usage:" in err and "Traceback" not in out + err


def test_errors_from_eegkit_are_one_line(ip, capsys):
    out, err = run(ip, capsys, "run missing.json")
    assert err.strip() == "%eegkit run: error: missing.json: no such pipeline file"


def test_plugins(ip, capsys):
    out, err = run(ip, capsys, "plugins")
    lines = out.splitlines()
    assert lines[0].split() == ["plugin", "version", "status", "origin", "stage", "types"]
    rows = {ln.split()[0]: ln for ln in lines[1:] if ln.strip()}
    assert "filters.bandpass" in rows["filters"] and " ok " in rows["brain_fft"]


def test_status(ip, capsys):
    out, _ = run(ip, capsys, "status")
    assert "no pipelines" in out
    execute(ip, capsys, "import eegkit\n"
                f"p = eegkit.Pipeline({SOURCE!r})\n"
                "p.add('filters.bandpass', id='bp')\n"
                "p.add('brain_fft.band_power', id='bands')")
    out, _ = run(ip, capsys, "status")
    assert out.startswith("p: not started")
    p = ip.user_ns["p"]
    p.start(realtime=False, overrun="block", duration=2.0)
    assert p.runner.join(30)
    out, _ = run(ip, capsys, "status")
    assert out.startswith("p: finished: 2.0 s of data, 16 chunks, 0 dropped")
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines()[2:] if ln.strip()}
    assert rows["bp"][:4] == ["bp", "filters.bandpass", "ok", "16"]
    assert rows["bands"][:4] == ["bands", "brain_fft.band_power", "ok", "16"]


def test_cell_stage_compiles_and_runs_in_a_pipeline(ip, capsys):
    out, err = cell(ip, capsys, "gain_cell", GAIN_CELL)
    assert "stage type 'gain_cell.gain_cell' ready (factor;" in out and not err
    record = default_manager().record("gain_cell")
    assert (record.path / "plugin.toml").is_file() and record.usable  # a real plugin folder
    execute(ip, capsys, f"p = eegkit.Pipeline({SOURCE!r})\n"
                "p.add('filters.bandpass', id='bp')\n"
                "p.add('gain_cell.gain_cell', id='gain', factor=3.0)")
    p = ip.user_ns["p"]
    assert jit_disabled() or is_compiled(p["gain"].code.process)
    assert p["gain"].code.spec.view == "scope"
    assert p["gain"].code.spec.params["factor"].unit == "x"
    out = p.run(duration=2.0)
    np.testing.assert_allclose(out["gain"], 3.0 * out["bp"], rtol=1e-15)


def test_cell_stage_saved_exported_and_run_from_the_cli(ip, capsys, tmp_path):
    cell(ip, capsys, "gain_cell", GAIN_CELL)
    execute(ip, capsys, f"p = eegkit.Pipeline({SOURCE!r})\n"
                "p.add('filters.bandpass', id='bp', low=2.0, high=30.0)\n"
                "p.add('gain_cell.gain_cell', id='gain', factor=0.5)")
    out, err = run(ip, capsys, "save-stage gain_cell")
    assert "wrote plugin folder plugins/gain_cell" in out and not err
    assert sorted(f.name for f in (tmp_path / "plugins" / "gain_cell").iterdir()) == ["plugin.toml", "stage.py"]
    out, err = run(ip, capsys, "export p pipeline.json")
    assert "wrote pipeline.json (2 stages)" in out
    doc = json.loads((tmp_path / "pipeline.json").read_text())
    assert doc["stages"][1]["type"] == "gain_cell.gain_cell"

    env = {k: v for k, v in os.environ.items() if k != "EEGKIT_PLUGINS_PATH"}  # ./plugins only
    proc = subprocess.run([sys.executable, "-m", "eegkit", "run", "pipeline.json", "--duration", "2",
                           "--output", "out.npz", "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "gain_cell.gain_cell" in proc.stdout
    cli = np.load(tmp_path / "out.npz")
    here = ip.user_ns["p"].run(duration=2.0)
    np.testing.assert_array_equal(cli["gain"], here["gain"])
    np.testing.assert_allclose(cli["gain"], 0.5 * cli["bp"], rtol=1e-15)

    # a folder named otherwise is taken as the parent of plugins' folders; foreign folders are refused
    out, err = run(ip, capsys, "save-stage gain_cell elsewhere")
    assert (tmp_path / "elsewhere" / "gain_cell" / "plugin.toml").is_file()
    (tmp_path / "taken" / "gain_cell").mkdir(parents=True)
    (tmp_path / "taken" / "gain_cell" / "notes.txt").write_text("mine")
    out, err = run(ip, capsys, "save-stage gain_cell taken")
    assert "exists and is not plugin 'gain_cell'" in err


def test_run_and_export_magics(ip, capsys, tmp_path):
    execute(ip, capsys, f"p = eegkit.Pipeline({SOURCE!r})\np.add('filters.notch', id='notch', freq=60.0)")
    run(ip, capsys, "export p saved/p.json")
    out, err = run(ip, capsys, "run saved/p.json q")
    assert "loaded saved/p.json as 'q'; running" in out and "Dashboard" in out and not err
    q = ip.user_ns["q"]
    assert isinstance(q, eegkit.Pipeline) and q.runner.running
    assert q["notch"].params["freq"] == 60.0
    out, err = run(ip, capsys, "run saved/p.json --no-start")
    assert "as 'p'" in out and "running" not in out.splitlines()[0]
    assert ip.user_ns["p"] is not None and getattr(ip.user_ns["p"], "runner", None) is None
    q.stop()


def test_redefining_a_cell_updates_pipelines_using_it(ip, capsys):
    cell(ip, capsys, "gain_cell", GAIN_CELL)
    execute(ip, capsys, "p = eegkit.Pipeline()\np.add('gain_cell.gain_cell', id='gain', factor=2.0)")
    p = ip.user_ns["p"]
    p.open(eegkit.StreamInfo(250.0, ["a", "b"]))
    assert p.push(np.ones((2, 4)))["gain"][0, 0] == 2.0
    out, err = cell(ip, capsys, "gain_cell", GAIN_CELL.replace("x[c, i] *= f[0]", "x[c, i] *= -f[0]"))
    assert "stage 'gain' (gain_cell): reloaded" in out, out + err
    assert p.push(np.ones((2, 4)))["gain"][0, 0] == -2.0  # swapped between two chunks
    out, err = run(ip, capsys, "reload gain_cell")
    assert "stage 'gain' (gain_cell): reloaded" in out and not err
    assert all("reloaded" in line for line in out.splitlines())
    assert p.push(np.ones((2, 4)))["gain"][0, 0] == -2.0
    out, err = run(ip, capsys, "reload reref")
    assert out.strip() == "no live pipeline uses plugin 'reref'" or "(reref)" in out


@pytest.mark.parametrize("name, body, message", [
    ("", "def process(x):\n    pass\n", "Usage: %%eegkit_stage NAME"),
    ("Bad-Name", "def process(x):\n    pass\n", "Usage: %%eegkit_stage NAME"),
    ("two words", "def process(x):\n    pass\n", "Usage: %%eegkit_stage NAME"),
    ("no_kernel", "def proc(x):\n    pass\n", "the cell must define `def process(x, *state):`"),
    ("syntax", "def process(x):\n    return x +\n", "syntax error on line 2 of the cell"),
    ("computed", "def process(x):\n    pass\nPARAMS = {'a': dict(type='int')}\n", "PARAMS must be a literal"),
    ("listy", "def process(x):\n    pass\nPARAMS = [1]\n", "PARAMS must be a dict of declarations"),
    ("no_default", "def process(x):\n    pass\nPARAMS = {'a': {'type': 'float'}}\n",
     "parameter 'a': 'default' is required"),
    ("filters", "def process(x):\n    pass\n", "a plugin named 'filters' already exists"),
])
def test_bad_cells(ip, capsys, name, body, message):
    out, err = cell(ip, capsys, name, body)
    assert message in err, err
    assert "Traceback" not in out + err
    record = default_manager().record(name) if name.isidentifier() else None
    assert record is None or name == "filters"  # nothing half-written stays on the plugin path


def test_cell_that_numba_rejects_is_reported(ip, capsys):
    if jit_disabled():
        pytest.skip("numba is off")
    out, err = cell(ip, capsys, "typo_cell", "def process(x):\n    return x.foo\n")
    assert "failed on a test stream of 8 channels at 250 Hz" in err
    assert "Unknown attribute 'foo'" in err and "\x1b[" not in err
    assert "Traceback" not in out + err


def test_stop_magic(ip, capsys):
    ip.run_cell(f"import eegkit\np = eegkit.Pipeline({SOURCE!r}); p.add('filters.notch'); p.start(chunk=25)\n"
                f"q = eegkit.Pipeline({SOURCE!r}, name='named'); q.start(chunk=25);")
    p, q = ip.user_ns["p"], ip.user_ns["q"]
    capsys.readouterr()
    out, _ = run(ip, capsys, "stop p")
    assert out.strip() == "stopped 'p'" and p.runner.state == "stopped" and q.runner.running
    out, _ = run(ip, capsys, "stop p")
    assert out.strip() == "'p' was not running"
    p.start(chunk=25)
    del ip.user_ns["q"]  # no variable: found by its name
    out, _ = run(ip, capsys, "stop named")
    assert out.strip() == "stopped 'named'" and q.runner.state == "stopped"
    q.start(chunk=25)
    out, _ = run(ip, capsys, "stop all")
    assert out.strip().startswith("stopped ") and not p.runner.running and not q.runner.running
    _, err = run(ip, capsys, "stop nothing_here")
    assert "no pipeline named 'nothing_here'" in err and "%eegkit stop" in err
