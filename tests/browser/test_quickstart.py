"""notebooks/01_quickstart.ipynb in real JupyterLab and headless Chromium.

Runs every cell, then checks from the page that the dashboard's scope, spectrum
and brain_fft bundle views receive frames and draw them (``data-*`` counters on
their root elements), that parameter changes made from the kernel change what is
drawn, and that the console stays clean. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from lab import (JupyterLab, browser_available, browser_page, console_errors, kernel_exec,
                 open_notebook, run_all_cells)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "01_quickstart.ipynb"
ARTIFACTS = REPO / "test-artifacts"
VIEWS = {"scope": ".eegkit-view.eegkit-scope", "spectrum": ".eegkit-view.eegkit-spectrum",
         "bundle": ".eegkit-view.eegkit-brain_fft"}

OUTPUTS_JS = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  const errors = [], text = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (const o of cell.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
      if (o.output_type === 'stream') text.push(Array.isArray(o.text) ? o.text.join('') : o.text);
    }
  }
  return { errors, text: text.join('') };
}"""

COUNTERS_JS = """(sel) => Array.from(document.querySelectorAll(sel)).map((el) => ({
  frames: +el.dataset.frames, draws: +el.dataset.draws, state: el.dataset.state,
  note: (el.querySelector(".eegkit-note") || {}).textContent || '',
  meta: (el.querySelector(".eegkit-meta") || {}).textContent || '',
  width: el.getBoundingClientRect().width }))"""


def counters(page, name):
    return page.evaluate(COUNTERS_JS, VIEWS[name])


def wait_until(page, name, test, timeout=30.0, what=""):
    """Poll the view counters until ``test(list_of_views)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        views = counters(page, name)
        if views and test(views):
            return views
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: {what or 'condition'} not met in {timeout} s: {views}")
        time.sleep(0.2)


def top_frequency(note):
    """Highest frequency of the spectrum's axis, from its note ('log · 0–125 Hz · ...')."""
    m = re.search(r"–([\d.]+) Hz", note)
    return float(m.group(1)) if m else None


def test_quickstart_notebook_live_in_jupyterlab(tmp_path):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    times = {}
    t_start = time.perf_counter()
    with JupyterLab(tmp_path) as lab, browser_page(viewport=(1400, 2400)) as page:
        times["server_start_s"] = lab.startup_s
        t0 = time.perf_counter()
        open_notebook(page, lab, NOTEBOOK.name)
        times["open_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_all_cells(page, timeout_ms=240_000)
        times["run_all_s"] = time.perf_counter() - t0

        out = page.evaluate(OUTPUTS_JS)
        assert out["errors"] == [], out["errors"]
        assert "processed 5.0 s of data" in out["text"], out["text"][-2000:]  # the terminal cell

        # every view of the dashboard got frames and drew them while the notebook ran
        for name, n in (("scope", 3), ("spectrum", 1), ("bundle", 1)):
            views = wait_until(page, name, lambda vs: all(v["draws"] > 0 for v in vs), what="drawn")
            assert len(views) == n, views
            assert all(v["frames"] > 0 and v["width"] > 300 and v["state"] == "ok" for v in views)
        controls = page.eval_on_selector_all(".widget-slider, .widget-text, .widget-dropdown",
                                             "els => els.length")
        assert controls >= 8

        # the notebook stopped its pipeline at the end: run it again and watch it stream
        kernel_exec(page, "runner = p.start()")
        before = {name: sum(v["frames"] for v in counters(page, name)) for name in VIEWS}
        for name in VIEWS:
            wait_until(page, name, lambda vs, b=before[name]: sum(v["frames"] for v in vs) >= b + 10,
                       what="10 more frames")
        draws = {name: sum(v["draws"] for v in counters(page, name)) for name in VIEWS}
        spectrum = counters(page, "spectrum")[0]
        assert top_frequency(spectrum["note"]) == pytest.approx(125.0), spectrum

        dash = page.locator(".jp-OutputArea-output", has=page.locator(VIEWS["scope"])).first
        dash.scroll_into_view_if_needed()
        time.sleep(1.0)
        dash.screenshot(path=str(ARTIFACTS / "quickstart-dashboard.png"))
        page.locator(VIEWS["spectrum"]).first.screenshot(path=str(ARTIFACTS / "quickstart-spectrum-before.png"))

        # parameter changes made from the kernel change what is drawn
        kernel_exec(page, 'p["spectrum"].set_params(fmax=40.0)\n'
                          'p["bands"].set_params(bands=[2.0, 6.0, 20.0], band_names=["slow", "fast"])')
        spectrum = wait_until(page, "spectrum", lambda vs: (top_frequency(vs[0]["note"]) or 999) < 41,
                              what="frequency axis cut at 40 Hz")[0]
        assert "bins" in spectrum["meta"] and "129 bins" not in spectrum["meta"]
        wait_until(page, "bundle", lambda vs: re.search(r"(slow|fast) \((2–6|6–20) Hz\)", vs[0]["note"]),
                   what="bars of the new bands")
        for name in VIEWS:
            wait_until(page, name, lambda vs, b=draws[name]: sum(v["draws"] for v in vs) > b + 5,
                       what="drawing after the change")
        out = kernel_exec(page, "print(p['spectrum'].params['fmax'], p.info_of('bands').axis, "
                                "p.runner.stats()['state'], p.runner.stats()['dropped_chunks'])")
        assert out.split()[:4] == ["40.0", "('slow',", "'fast')", "running"], out
        time.sleep(1.0)
        page.locator(VIEWS["spectrum"]).first.screenshot(path=str(ARTIFACTS / "quickstart-spectrum-after.png"))
        page.locator(VIEWS["bundle"]).first.screenshot(path=str(ARTIFACTS / "quickstart-bundle-after.png"))
        dash.screenshot(path=str(ARTIFACTS / "quickstart-dashboard-after.png"))

        stats = kernel_exec(page, "p.stop(); s = runner.stats(); "
                                  "print(s['chunks'], s['dropped_chunks'], round(s['lag_ms'], 2))")
        frames = {name: [v["frames"] for v in counters(page, name)] for name in VIEWS}
        times["total_s"] = time.perf_counter() - t_start
        print(f"\nquickstart browser test: { {k: round(v, 1) for k, v in times.items()} }; "
              f"runner chunks/dropped/lag_ms: {stats.strip()}; frames per view: {frames}")
        assert console_errors(page) == [], console_errors(page)
