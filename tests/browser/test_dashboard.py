"""The dashboard in real JupyterLab and headless Chromium: re-running the cell that
builds and starts a pipeline leaves one run going, the views take their cards' width
on a narrow window, and screenshots in the light and dark themes (test-artifacts/)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lab import (JupyterLab, WAIT_KERNEL_IDLE_JS, browser_available, browser_page, console_errors,
                 kernel_exec, open_notebook, write_notebook)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CELL = """\
import eegkit
p = eegkit.Pipeline({"type": "synthetic", "params": {"n_channels": 8, "sfreq": 250.0, "seed": 1}})
p.add("filters.notch", id="notch", freq=50.0)
p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
p.add("brain_fft.spectrum", id="spectrum", window=256, step=32)
p.add("brain_fft.band_power", id="bands", input="bp", window=256, step=32)
p.start()
p.show()"""
RUN_FIRST_CELL_JS = """async () => {
  const w = window.jupyterapp.shell.currentWidget;
  w.content.activeCellIndex = 0;
  await window.jupyterapp.commands.execute('notebook:run-cell');
}"""
# each card's width and the width of the view drawn in it
WIDTHS_JS = """() => Array.from(document.querySelectorAll('.eegkit-card')).map((card) => {
  const view = card.querySelector('.eegkit-view');
  return { card: card.getBoundingClientRect().width,
           view: view ? view.getBoundingClientRect().width : 0,
           draws: view ? +view.dataset.draws : 0 };
})"""
RUNNING = "from eegkit.runtime._registry import running; print(len(running()))"


def run_first_cell(page):
    page.evaluate(RUN_FIRST_CELL_JS)
    time.sleep(0.5)  # the request leaves before the kernel reports busy
    page.wait_for_function(WAIT_KERNEL_IDLE_JS, timeout=120_000)


# views off-screen draw nothing (by design): bring the first one that has not drawn yet
# into view
SHOW_UNDRAWN_JS = """() => {
  const card = Array.from(document.querySelectorAll('.eegkit-card')).find((c) => {
    const view = c.querySelector('.eegkit-view');
    return view && !(+view.dataset.draws > 0);
  });
  if (card) card.scrollIntoView({ block: 'center' });
}"""


def wait_drawn(page, n, timeout=60.0):
    """The n views' widths once every one has drawn (each scrolled into view in turn)."""
    deadline = time.monotonic() + timeout
    while True:
        page.evaluate(SHOW_UNDRAWN_JS)
        cards = page.evaluate(WIDTHS_JS)
        if len(cards) == n and all(c["draws"] > 0 for c in cards):
            return cards
        if time.monotonic() > deadline:
            raise AssertionError(f"not every view drew in {timeout} s: {cards}")
        time.sleep(0.2)


def test_dashboard_rerun_narrow_wide_and_themes(tmp_path):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    ARTIFACTS.mkdir(exist_ok=True)
    write_notebook(tmp_path / "dash.ipynb", [CELL])
    with JupyterLab(tmp_path) as lab, browser_page(viewport=(800, 1600)) as page:
        open_notebook(page, lab, "dash.ipynb")
        page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
        run_first_cell(page)
        assert kernel_exec(page, RUNNING).strip() == "1"
        run_first_cell(page)  # the same cell again: the old pipeline stops
        assert kernel_exec(page, RUNNING).strip() == "1"
        assert kernel_exec(page, "print(p.runner.running)").strip() == "True"

        # 800 px wide window, file browser open: the controls fold under each view
        assert page.evaluate("() => window.jupyterapp.shell.leftCollapsed") is False
        cards = wait_drawn(page, 4)
        dash = page.locator(".eegkit-dashboard").first
        dash.screenshot(path=str(ARTIFACTS / "dashboard-800px-light.png"))
        for c in cards:
            assert c["view"] >= 0.9 * c["card"], cards

        page.set_viewport_size({"width": 1920, "height": 1400})
        time.sleep(1.0)
        cards = wait_drawn(page, 4)
        for c in cards:  # beside the controls, the view still gets most of the card
            assert c["view"] >= 0.6 * c["card"], cards
        dash.screenshot(path=str(ARTIFACTS / "dashboard-1920px-light.png"))

        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Dark'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
        time.sleep(1.0)
        dash.screenshot(path=str(ARTIFACTS / "dashboard-1920px-dark.png"))
        page.set_viewport_size({"width": 800, "height": 1600})
        time.sleep(1.0)
        dash.screenshot(path=str(ARTIFACTS / "dashboard-800px-dark.png"))

        kernel_exec(page, "eegkit.stop_all()")
        assert kernel_exec(page, RUNNING).strip() == "0"
        assert console_errors(page) == [], console_errors(page)


def test_first_run_shows_compile_progress(tmp_path):
    """With an empty compile cache the dashboard appears before the stages are compiled
    and counts them in its header, instead of a silent busy cell."""
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    cell = CELL.replace("p.start()\np.show()", "from IPython.display import display\n"
                                                "display(p.show())\np.start()")
    write_notebook(tmp_path / "first.ipynb", [cell])
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    with JupyterLab(tmp_path, extra_env={"EEGKIT_CACHE_DIR": str(cache)}) as lab, \
            browser_page(viewport=(1280, 1600)) as page:
        open_notebook(page, lab, "first.ipynb")
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        seen = set()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            seen.update(page.eval_on_selector_all(".eegkit-progress", "els => els.map(e => e.textContent)"))
            if page.evaluate(WIDTHS_JS) and all(c["draws"] > 0 for c in page.evaluate(WIDTHS_JS)):
                break
            time.sleep(0.1)
        progress = sorted(t for t in seen if "compiling" in t)
        assert progress and all(t.strip().endswith("/4 stages…") for t in progress), seen
        cards = wait_drawn(page, 4)
        assert page.eval_on_selector_all(".eegkit-progress", "els => els.length") == 0
        print(f"\nprogress seen: {progress}; views: {len(cards)}")
        kernel_exec(page, "eegkit.stop_all()")
        assert console_errors(page) == [], console_errors(page)
