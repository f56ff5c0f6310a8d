"""The widgets' JavaScript unit tests (``widgets/tests/``), run with node's built-in
test runner: the view host against a fake anywidget model and a fake DOM, and every
shipped view module drawn on a recording canvas. No browser, no npm packages."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed (the JS unit tests need node >= 20)")
def test_widget_js_unit_tests_pass():
    out = subprocess.run([NODE, "--test", "widgets/tests/"], cwd=ROOT, capture_output=True, text=True, check=False,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert "# fail 0" in out.stdout and "# pass 0" not in out.stdout
