"""``eegkit plugins check`` and ``eegkit plugins build`` as subprocesses, on good and
deliberately broken plugins written to a temporary plugin path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LIFECYCLE = Path(__file__).resolve().parent / "fixtures" / "lifecycle"

MANIFEST = """[plugin]
name = "{name}"
version = "0.1.0"
api = "{api}"

[[stage]]
type = "{name}.run"
module = "stage.py"
"""
GOOD = """import numpy as np


def setup(info):
    return (np.zeros(info.n_channels),)


def process(x, acc):
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            acc[c] += x[c, i]
            x[c, i] = acc[c]
"""
# forgets its running sum at every chunk: chunked output differs from the whole recording
FORGETS = """def process(x):
    for c in range(x.shape[0]):
        s = 0.0
        for i in range(x.shape[1]):
            s += x[c, i]
            x[c, i] = s
"""
TEST_PASSES = "def test_ok():\n    assert 1 + 1 == 2\n"
TEST_FAILS = "def test_wrong():\n    assert 1 + 1 == 3, 'arithmetic is broken'\n"


def plugin(root, name, stage=GOOD, api="1.0", test=None):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text(MANIFEST.format(name=name, api=api))
    (folder / "stage.py").write_text(stage)
    if test is not None:
        (folder / "tests").mkdir()
        (folder / "tests" / "test_it.py").write_text(test)
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    plugin(root, "good", test=TEST_PASSES)
    plugin(root, "forgets", FORGETS)
    plugin(root, "syntax", GOOD.replace("def process(x, acc):", "def process(x, acc)"))
    plugin(root, "untyped", GOOD.replace("acc[c] += x[c, i]", "acc[c] += undefined_thing"))
    plugin(root, "failing_tests", test=TEST_FAILS)
    plugin(root, "major", api="2.0")
    plugin(root, "minor", api="1.7")
    shutil.copytree(LIFECYCLE / "crashy", root / "crashy")
    return dict(os.environ, EEGKIT_PLUGINS_PATH=str(root),
                EEGKIT_CACHE_DIR=str(tmp_path_factory.mktemp("numba-cache")))


def eegkit_cli(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "eegkit", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def steps(report):
    return {what: (ok, detail) for what, ok, detail in report["steps"]}


@pytest.mark.slow  # runs each plugin's tests in fresh processes
def test_check_reports_each_plugin_and_fails_on_any_failure(env, tmp_path):
    names = ["good", "forgets", "syntax", "untyped", "failing_tests", "major", "minor", "crashy",
             "nosuch"]
    out = eegkit_cli("plugins", "check", *names, "--json", env=env, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    reports = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(reports) == set(names)
    ok = {name: r["ok"] for name, r in reports.items()}
    assert ok == {"good": True, "forgets": False, "syntax": False, "untyped": False,
                  "failing_tests": False, "major": False, "minor": True, "crashy": True,
                  "nosuch": False}
    assert steps(reports["good"])["tests"][0] is True and "1 passed" in steps(reports["good"])["tests"][1]
    assert "differ from the whole-recording result" in steps(reports["forgets"])["forgets.run"][1]
    assert "SyntaxError" in steps(reports["syntax"])["syntax.run"][1]
    assert "undefined_thing" in steps(reports["untyped"])["untyped.run"][1]
    failed_tests = steps(reports["failing_tests"])["tests"]
    assert failed_tests[0] is False and "arithmetic is broken" in failed_tests[1]
    assert "major versions must match" in steps(reports["major"])["manifest"][1]
    assert "newer than this eegkit" in steps(reports["minor"])["manifest"][1]
    # a plugin whose manifest asks for isolation is smoke-tested in its child process
    assert "in a child process" in steps(reports["crashy"])["crashy.bomb"][1]
    assert "no plugin named 'nosuch'" in steps(reports["nosuch"])["find"][1]


def test_check_text_output_and_exit_status(env, tmp_path):
    out = eegkit_cli("plugins", "check", "good", "forgets", "--no-tests", env=env, cwd=tmp_path)
    assert out.returncode == 1
    assert "good: OK" in out.stdout and "forgets: FAILED" in out.stdout
    assert "FAIL forgets.run" in out.stdout
    assert "2 plugin(s) checked: 1 ok, failed: forgets" in out.stdout
    assert "skip tests: skipped (--no-tests)" in out.stdout


@pytest.mark.slow  # compiles every stage in two dtypes, then a fresh process
def test_build_compiles_into_the_cache_and_a_fresh_process_loads_from_it(env, tmp_path):
    first = eegkit_cli("plugins", "build", "good", "--force", "--json", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    [report] = doc["plugins"]
    dtypes = report["stages"][0]["dtypes"]
    assert set(dtypes) == {"float64", "float32"}
    assert not any(d["from_cache"] for d in dtypes.values())  # --force: really compiled
    assert Path(report["cache"]).is_dir() and any(Path(report["cache"]).iterdir())
    probe = doc["fresh_process"]["stages"]["good.run"]
    assert probe["ok"] and probe["hits"] >= 1 and probe["misses"] == 0
    text = eegkit_cli("plugins", "build", "good", env=env, cwd=tmp_path)
    assert "float64 loaded from cache" in text.stdout and "float32 loaded from cache" in text.stdout
    assert "fresh process: ready in" in text.stdout and "(from the cache)" in text.stdout


def test_build_fails_for_a_broken_or_unknown_plugin(env, tmp_path):
    out = eegkit_cli("plugins", "build", "syntax", "nosuch", env=env, cwd=tmp_path)
    assert out.returncode == 1
    assert "SyntaxError" in out.stdout and "no plugin named 'nosuch'" in out.stdout
