"""The live views in real JupyterLab and headless Chromium.

A notebook creates a scope (19 and 64 channels), a spectrum, band-power bars and
the brain_fft "Brain Waves FFT" bundle, and feeds them synthetic EEG from a
background thread. The page must receive and draw frames for every view, ack
them, replace a view whose source changes (hot reload), show a disabled stage's
error, follow the dark theme, and log no console errors. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from lab import (JupyterLab, browser_available, browser_page, cell_errors, console_errors,
                 kernel_exec, open_notebook, run_all_cells, write_notebook)

from eegkit.notebook._widget import MAX_UNACKED

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
BUNDLE = REPO / "plugins" / "brain_fft" / "ui" / "bundle.js"

SETUP = f"""
import json, threading, time
import numpy as np
from scipy import signal
from IPython.display import display
from eegkit._info import StreamInfo
from eegkit.notebook._widget import StreamView

CH = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8",
      "P7", "P3", "Pz", "P4", "P8", "O1", "O2"]
SF, WIN, STEP, CHUNK = 250.0, 256, 32, 16
BANDS = ["delta", "theta", "alpha", "beta", "gamma"]
EDGES = [1.0, 4.0, 8.0, 13.0, 30.0, 45.0]

info = StreamInfo(SF, CH)
freqs = np.fft.rfftfreq(WIN, 1 / SF)
spec_info = info.expand("spectrum", [f"{{f:g}}" for f in freqs], freqs, SF / STEP, unit="V²/Hz")
band_info = info.expand("features", BANDS, [2.5, 6.0, 10.5, 21.5, 37.5], SF / STEP, unit="V²")
info64 = StreamInfo(1000.0, [f"E{{i + 1}}" for i in range(64)])

scope = StreamView(info, "scope", title="Raw EEG")
spectrum = StreamView(spec_info, "spectrum", title="Spectrum (Hann periodogram, 256 samples)")
bars = StreamView(band_info, "bars", title="Band power")
fft = StreamView(band_info, {str(BUNDLE)!r}, title="Brain Waves FFT",
                 params={{"bands": EDGES, "band_names": BANDS}})
scope64 = StreamView(info64, "scope", title="64 channels at 1 kHz", seconds=5.0)
views = dict(scope=scope, spectrum=spectrum, bars=bars, fft=fft, scope64=scope64)
"""

FEED = """
class Eeg:
    # synthetic EEG in volts: 1/f-like background, posterior alpha with waxing and waning, a little
    # theta and beta, mains hum
    def __init__(self, n, sf, seed):
        self.n, self.sf = n, sf
        self.rng = np.random.default_rng(seed)
        self.gain = np.linspace(0.4, 1.0, n)[:, None]
        self.phase = self.rng.uniform(0, 2 * np.pi, (n, 1))
        self.zi = np.zeros((n, 1))

    def read(self, first, k):
        t = (first + np.arange(k)) / self.sf
        noise, self.zi = signal.lfilter([1.0], [1.0, -0.96], self.rng.standard_normal((self.n, k)) * 1.5e-6,
                                        zi=self.zi)
        alpha = 14e-6 * self.gain * np.sin(2 * np.pi * 10.2 * t + self.phase) * (1 + 0.6 * np.sin(2 * np.pi * 0.25 * t))
        theta = 4e-6 * np.sin(2 * np.pi * 5.5 * t + 2 * self.phase)
        beta = 2e-6 * np.sin(2 * np.pi * 21.0 * t + 3 * self.phase)
        return noise + alpha + theta + beta + 1e-6 * np.sin(2 * np.pi * 50.0 * t)

stop = threading.Event()
feeder_error = []

def run():
    try:
        eeg, eeg64 = Eeg(len(CH), SF, 1), Eeg(64, 1000.0, 2)
        hist = np.zeros((len(CH), WIN))
        band_rows = [(freqs >= lo) & (freqs < hi) for lo, hi in zip(EDGES[:-1], EDGES[1:])]
        first, window, next_t = 0, 0, time.monotonic()
        while not stop.is_set():
            x = eeg.read(first, CHUNK)
            scope.feed(x, first)
            scope64.feed(eeg64.read(4 * first, 4 * CHUNK), 4 * first)
            hist = np.concatenate([hist[:, CHUNK:], x], axis=1)
            first += CHUNK
            if first % STEP == 0 and first >= WIN:
                _, psd = signal.periodogram(hist, SF, window="hann", detrend=False)
                spectrum.feed(psd.reshape(-1, 1), window)
                power = np.stack([psd[:, rows].sum(axis=1) * (freqs[1] - freqs[0]) for rows in band_rows], 1)
                bars.feed(power.reshape(-1, 1), window)
                fft.feed(power.reshape(-1, 1), window)
                window += 1
            next_t += CHUNK / SF
            time.sleep(max(0.0, next_t - time.monotonic()))
    except Exception as exc:
        feeder_error.append(repr(exc))

feeder = threading.Thread(target=run, daemon=True)
feeder.start()
"""

DISPLAY = "display(scope)\ndisplay(spectrum)\ndisplay(bars)\ndisplay(fft)\ndisplay(scope64)"

ROOTS = {"scope": ".eegkit-scope >> nth=0", "spectrum": ".eegkit-spectrum", "bars": ".eegkit-bars",
         "fft": ".eegkit-brain_fft", "scope64": ".eegkit-scope >> nth=1"}

COUNTERS_JS = """() => Array.from(document.querySelectorAll('.eegkit-view')).map(e => ({
  cls: e.className, frames: +e.dataset.frames, draws: +e.dataset.draws,
  seq: +e.dataset.lastSeq, first: e.dataset.firstValue, state: e.dataset.state,
  draw_ms: e.dataset.drawMs }))"""


# Five 64-channel scopes at 1 kHz (10-10 names), their spectrum and a topomap of alpha power.
DENSE = """
import json, threading, time, warnings
import numpy as np
import mne
from IPython.display import display
from eegkit._info import StreamInfo
from eegkit.notebook._widget import StreamView

CH = mne.channels.make_standard_montage("biosemi64").ch_names
SF, CHUNK, WIN = 1000.0, 32, 1024
BANDS = ["delta", "theta", "alpha", "beta", "gamma"]
EDGES = [1.0, 4.0, 8.0, 13.0, 30.0, 45.0]
info = StreamInfo(SF, CH + ["EOG1"])
freqs = np.fft.rfftfreq(WIN, 1 / SF)
spec_info = info.expand("spectrum", [f"{f:g}" for f in freqs], freqs, 4.0, unit="V²/Hz")
band_info = info.expand("features", BANDS, [2.5, 6.0, 10.5, 21.5, 37.5], 4.0, unit="V²")
scopes = [StreamView(info, "scope", title=f"64 ch at 1 kHz #{i + 1}") for i in range(5)]
spectrum = StreamView(spec_info, "spectrum", title="Spectrum", params={"high": 45.0})
topo = StreamView(band_info, "topomap", title="Band power")
views = scopes + [spectrum, topo]
y = np.array([p[1] for p in topo.positions["pos"] if p] + [0.0])

stop = threading.Event()
feeder_error = []

def run():
    try:
        rng = np.random.default_rng(0)
        n = len(CH) + 1
        # alpha strongest at the back of the head (low y), as in a resting EEG
        gain = np.concatenate([np.interp([p[1] if p else 0 for p in topo.positions["pos"]], [-1, 1], [1.0, 0.2])])[:, None]
        hist = np.zeros((n, WIN))
        first, next_t = 0, time.monotonic()
        while not stop.is_set():
            t = (first + np.arange(CHUNK)) / SF
            x = 3e-6 * rng.standard_normal((n, CHUNK)) + 20e-6 * gain * np.sin(2 * np.pi * 10 * t)
            for s in scopes:
                s.feed(x, first)
            hist = np.concatenate([hist[:, CHUNK:], x], axis=1)
            first += CHUNK
            if first % 256 == 0 and first >= WIN:
                psd = np.abs(np.fft.rfft(hist * np.hanning(WIN), axis=1)) ** 2 / (SF * WIN)
                spectrum.feed(psd.reshape(-1, 1), first)
                power = np.stack([psd[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for lo, hi in zip(EDGES, EDGES[1:])], 1)
                topo.feed(power.reshape(-1, 1), first)
            next_t += CHUNK / SF
            time.sleep(max(0.0, next_t - time.monotonic()))
    except Exception as exc:
        feeder_error.append(repr(exc))

feeder = threading.Thread(target=run, daemon=True)
feeder.start()
"""

DENSE_DISPLAY = "for v in views:\n    display(v)"

VIEW_COUNTERS_JS = """() => Array.from(document.querySelectorAll('.eegkit-view')).map(e => ({
  title: e.querySelector('.eegkit-title').textContent, frames: +e.dataset.frames, draws: +e.dataset.draws,
  seq: +e.dataset.lastSeq, visible: e.dataset.visible, paused: e.dataset.paused, draw_ms: e.dataset.drawMs,
  note: e.querySelector('.eegkit-note').textContent }))"""


def views_titles(counters) -> list:
    """Titles of the views on the page, in order."""
    return [c["title"] for c in counters]


def chromium_cpu_seconds() -> float:
    """User + system CPU time of every Chromium process started under this test process."""
    import psutil

    total = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            if "chrom" in p.name().lower():
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("views")
    write_notebook(root / "views.ipynb", [SETUP, FEED, DISPLAY])
    write_notebook(root / "dense.ipynb", [DENSE, DENSE_DISPLAY])
    with JupyterLab(root) as server:
        yield server


def test_views_receive_and_draw_frames(lab):
    ARTIFACTS.mkdir(exist_ok=True)
    timings = {"server_start_s": round(lab.startup_s, 2)}
    t0 = time.perf_counter()
    # tall enough for all five views under the two code cells: views out of sight draw nothing
    with browser_page(viewport=(1280, 4200)) as page:
        open_notebook(page, lab, "views.ipynb")
        timings["notebook_open_s"] = round(time.perf_counter() - t0, 2)
        t1 = time.perf_counter()
        run_all_cells(page)
        timings["run_cells_s"] = round(time.perf_counter() - t1, 2)
        assert not cell_errors(page), cell_errors(page)

        # every view receives frames and draws them
        t2 = time.perf_counter()
        page.wait_for_function("""() => {
            const els = document.querySelectorAll('.eegkit-view');
            return els.length === 5 && Array.from(els).every(e => +e.dataset.draws >= 10 && +e.dataset.frames >= 10);
        }""", timeout=30_000)
        timings["first_10_draws_s"] = round(time.perf_counter() - t2, 2)
        before = page.evaluate(COUNTERS_JS)
        for c in before:
            assert c["first"] not in ("", "NaN"), c
            assert c["seq"] >= 10 and c["state"] == "ok", c

        # frames keep coming (acks reach the kernel and free the window)
        page.wait_for_function("""(before) => {
            const els = Array.from(document.querySelectorAll('.eegkit-view'));
            return els.every((e, i) => +e.dataset.lastSeq >= before[i] + 10);
        }""", arg=[c["seq"] for c in before], timeout=10_000)

        stats = json.loads(kernel_exec(page, "print(json.dumps({k: v.stats() for k, v in views.items()}))"))
        assert kernel_exec(page, "print(feeder_error)").strip() == "[]"
        for name, s in stats.items():
            assert s["error"] is None, (name, s)
            assert s["sent"] >= 20 and s["acked"] >= s["sent"] - MAX_UNACKED, (name, s)
        timings["kernel_frame_ms"] = {k: {"median": round(s["median_ms"], 3), "p99": round(s["p99_ms"], 3),
                                          "sent": s["sent"], "dropped": s["dropped"]} for k, s in stats.items()}
        timings["browser_counters"] = page.evaluate(COUNTERS_JS)

        for name, sel in ROOTS.items():
            page.locator(sel).screenshot(path=str(ARTIFACTS / f"view_{name}.png"))

        # hot reload: a new view source replaces the view in place and frames keep coming
        kernel_exec(page, "fft._view_js = fft._view_js.replace('share of band power', 'edited: share')")
        page.wait_for_function("""() => {
            const e = document.querySelector('.eegkit-brain_fft');
            return e.dataset.views === '2' && e.querySelector('.eegkit-meta').textContent.includes('edited: share');
        }""", timeout=10_000)
        seq = int(page.locator(ROOTS["fft"]).get_attribute("data-last-seq"))
        page.wait_for_function("(seq) => +document.querySelector('.eegkit-brain_fft').dataset.lastSeq >= seq + 5",
                               arg=seq, timeout=10_000)

        # a disabled stage's error is shown in its view
        kernel_exec(page, "bars.set_status('disabled', ValueError("
                          "\"filters.bandpass: high (300.0 Hz) must be below Nyquist (125.0 Hz)\"))")
        banner = page.locator(".eegkit-bars .eegkit-status")
        banner.wait_for(state="visible", timeout=5_000)
        assert "must be below Nyquist" in banner.text_content()
        assert page.locator(".eegkit-bars").get_attribute("data-state") == "disabled"
        page.locator(ROOTS["bars"]).screenshot(path=str(ARTIFACTS / "view_bars_disabled.png"))
        kernel_exec(page, "bars.set_status('ok')")
        banner.wait_for(state="hidden", timeout=5_000)

        # dark theme: the views redraw with the theme's colours
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Dark'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=10_000)
        page.wait_for_timeout(500)
        for name in ("scope", "spectrum", "fft"):
            page.locator(ROOTS[name]).screenshot(path=str(ARTIFACTS / f"view_{name}_dark.png"))

        kernel_exec(page, "stop.set(); feeder.join(); [v.close() for v in views.values()]")
        errors = console_errors(page)
        timings["total_browser_s"] = round(time.perf_counter() - t0, 2)
        (ARTIFACTS / "browser_views_timings.json").write_text(json.dumps(timings, indent=2))
        print(textwrap.indent(json.dumps(timings, indent=2), "  "))
        assert not errors, errors


def test_offscreen_views_controls_topomap_and_dense_scopes(lab):
    ARTIFACTS.mkdir(exist_ok=True)
    report = {}
    with browser_page(viewport=(1280, 900)) as page:
        open_notebook(page, lab, "dense.ipynb")
        run_all_cells(page)
        assert not cell_errors(page), cell_errors(page)
        first = page.locator(".eegkit-scope >> nth=0")
        first.wait_for(timeout=30_000)
        first.scroll_into_view_if_needed()  # the setup cell's code fills the first screen
        page.wait_for_function("() => +document.querySelector('.eegkit-scope')?.dataset.draws >= 5", timeout=30_000)
        page.wait_for_timeout(1500)

        # views out of sight receive and draw nothing: the topomap at the bottom was never on
        # screen (at most the frames in flight before it said so); others scrolled past stop
        counters = page.evaluate(VIEW_COUNTERS_JS)
        stats = json.loads(kernel_exec(page, "print(json.dumps([v.stats() for v in views]))"))
        hidden = [i for i, c in enumerate(counters) if c["visible"] == "false"]
        assert counters[0]["visible"] == "true" and hidden[-1] == len(views_titles(counters)) - 1, counters
        assert counters[-1]["draws"] == 0 and counters[-1]["frames"] <= MAX_UNACKED, counters[-1]
        assert stats[-1]["sent"] <= MAX_UNACKED, stats[-1]
        page.wait_for_timeout(1000)
        later = page.evaluate(VIEW_COUNTERS_JS)
        stats_later = json.loads(kernel_exec(page, "print(json.dumps([v.stats() for v in views]))"))
        for i in hidden:
            assert later[i]["frames"] == counters[i]["frames"] and later[i]["draws"] == counters[i]["draws"], i
            assert stats_later[i]["sent"] == stats[i]["sent"], (i, stats[i], stats_later[i])
        assert later[0]["draws"] > counters[0]["draws"]

        # scrolled into view, the last one (the topomap) starts drawing
        topo = page.locator(".eegkit-topomap")
        topo.scroll_into_view_if_needed()
        page.wait_for_function("() => +document.querySelector('.eegkit-topomap')?.dataset.draws >= 2", timeout=20_000)
        assert topo.get_attribute("data-visible") == "true"
        assert "alpha · 64/65 ch positioned" in topo.locator(".eegkit-note").text_content()
        topo.screenshot(path=str(ARTIFACTS / "view_topomap.png"))
        spec = page.locator(".eegkit-spectrum")
        spec.scroll_into_view_if_needed()
        page.wait_for_function("() => +document.querySelector('.eegkit-spectrum')?.dataset.draws >= 2", timeout=20_000)
        assert "0–44.9 Hz" in spec.locator(".eegkit-note").text_content()
        spec.screenshot(path=str(ARTIFACTS / "view_spectrum_eeg.png"))

        # controls of the first scope, by keyboard and by button
        first.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        note = first.locator(".eegkit-note")
        assert "ch 1–" in note.text_content() and "of 65" in note.text_content()
        first.focus()
        page.keyboard.press("PageDown")
        page.wait_for_function("(el) => el.querySelector('.eegkit-note').textContent.includes('–65 of 65')",
                               arg=first.element_handle(), timeout=5_000)
        first.screenshot(path=str(ARTIFACTS / "view_scope64_page2.png"))
        page.keyboard.press("PageUp")
        page.keyboard.press("+")
        page.wait_for_function("(el) => !el.querySelector('.eegkit-note').textContent.includes('(auto)')",
                               arg=first.element_handle(), timeout=5_000)
        assert float(kernel_exec(page, "print(scopes[0].scale)")) > 0
        first.screenshot(path=str(ARTIFACTS / "view_scope64_page1.png"))
        first.locator("[data-control='pause']").click()
        page.wait_for_function("(el) => el.dataset.paused === 'true'", arg=first.element_handle(), timeout=5_000)
        assert kernel_exec(page, "print(scopes[0].paused)").strip() == "True"
        seq = int(first.get_attribute("data-last-seq"))
        page.wait_for_timeout(800)
        assert int(first.get_attribute("data-last-seq")) == seq
        first.locator("[data-control='pause']").click()
        page.wait_for_function("(a) => +a[0].dataset.lastSeq > a[1]", arg=[first.element_handle(), seq],
                               timeout=5_000)

        # dark theme screenshots of the same views
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=10_000)
        page.wait_for_timeout(800)
        first.screenshot(path=str(ARTIFACTS / "view_scope64_page1_dark.png"))
        for sel, name in ((".eegkit-spectrum", "view_spectrum_eeg_dark"), (".eegkit-topomap", "view_topomap_dark")):
            page.locator(sel).scroll_into_view_if_needed()
            page.wait_for_timeout(600)
            page.locator(sel).screenshot(path=str(ARTIFACTS / f"{name}.png"))

        # a quick measurement (reported, not asserted): five 64-channel scopes all on screen
        page.set_viewport_size({"width": 1280, "height": 4400})
        first.scroll_into_view_if_needed()
        page.wait_for_timeout(1500)
        before, cpu0, t0 = page.evaluate(VIEW_COUNTERS_JS), chromium_cpu_seconds(), time.perf_counter()
        page.wait_for_timeout(5000)
        after, cpu1, t1 = page.evaluate(VIEW_COUNTERS_JS), chromium_cpu_seconds(), time.perf_counter()
        dt = t1 - t0
        report["draws_per_s"] = [round((a["draws"] - b["draws"]) / dt, 1) for a, b in zip(after[:5], before[:5])]
        report["frames_per_s"] = [round((a["frames"] - b["frames"]) / dt, 1) for a, b in zip(after[:5], before[:5])]
        report["chromium_cpu_percent_of_a_core"] = round(100 * (cpu1 - cpu0) / dt, 1)
        stats = json.loads(kernel_exec(page, "print(json.dumps([v.stats() for v in scopes]))"))
        report["kernel"] = [{k: s[k] for k in ("sent", "dropped", "acked", "median_ms")} for s in stats]
        report["visible"] = [a["visible"] for a in after]
        report["counters"] = after
        assert kernel_exec(page, "print(feeder_error)").strip() == "[]"
        kernel_exec(page, "stop.set(); feeder.join(); [v.close() for v in views]")
        (ARTIFACTS / "browser_dense_views.json").write_text(json.dumps(report, indent=2))
        print(textwrap.indent(json.dumps(report, indent=2), "  "))
        assert not console_errors(page), console_errors(page)
