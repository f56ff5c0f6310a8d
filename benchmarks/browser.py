"""Dashboard in a real browser: frames drawn per second per view, and browser CPU.

    python benchmarks/browser.py                 # 8 and 64 channels, 10 s windows
    python benchmarks/browser.py --channels 8 --seconds 5

For each channel count: the quickstart pipeline (notch, band-pass, average reference,
spectrum, band power) on the synthetic source, its dashboard shown in JupyterLab in
headless Chromium (the harness of ``tests/browser/lab.py``) and started, paced to real
time. Once every view has drawn, a window of ``--seconds`` is measured:

- per view on screen: frames received and frames drawn per second (the ``data-frames``
  and ``data-draws`` counters of the view's root element) and its mean draw time
  (``data-draw-ms``, an exponential average kept by the view);
- CPU of Chromium (utime + stime from ``/proc/<pid>/stat``, summed over the browser
  process and its descendants) and of the notebook's kernel, in % of one core.

Prints a table and writes ``benchmarks/results/browser.json``. Needs Linux (``/proc``),
Chromium and playwright (see ``tests/browser/lab.py``). Nothing here is a pass/fail
check: a shared machine moves these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))

from lab import (JupyterLab, browser_available, browser_page, kernel_exec,  # noqa: E402 - after the path insert
                 open_notebook, run_all_cells, write_notebook)

OUT = REPO / "benchmarks" / "results" / "browser.json"
CELLS = ["""\
import eegkit
from IPython.display import display
p = eegkit.Pipeline({{"type": "synthetic", "params": {{"n_channels": {n}, "sfreq": 250.0, "seed": 1}}}})
p.add("filters.notch", id="notch", freq=50.0)
p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
p.add("reref.average", id="car")
p.add("brain_fft.spectrum", id="spectrum", window=256, step=32)
p.add("brain_fft.band_power", id="bands", input="car", window=256, step=32)
display(p.show())
runner = p.start()"""]
# every view of the page: its stage, counters and whether it is on screen
VIEWS_JS = """() => Array.from(document.querySelectorAll('.eegkit-view')).map((el) => {
  const r = el.getBoundingClientRect();
  const title = el.querySelector('.eegkit-title');
  return { title: title ? title.textContent : '', frames: +el.dataset.frames,
           draws: +el.dataset.draws, draw_ms: +(el.dataset.drawMs || NaN),
           visible: r.bottom > 0 && r.top < innerHeight && r.width > 0,
           width: Math.round(r.width) };
})"""
TICK = os.sysconf("SC_CLK_TCK")


def _children() -> dict:
    """pid → parent pid of every process."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return parents


def _descendants(root: int) -> list:
    parents = _children()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        kids = [p for p, pp in parents.items() if pp == pid]
        found += kids
        todo += kids
    return found


def _cmdline(pid) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _cpu_ticks(pids) -> int:
    """utime + stime of ``pids`` (processes that ended are left out)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        rest = fields[fields.rindex(")") + 2:].split()
        total += int(rest[11]) + int(rest[12])  # fields 14 and 15 of stat(5)
    return total


def _processes(kernel_id):
    """(Chromium pids, kernel pids) among this process's descendants: Chromium started
    by our playwright, not another one on the machine."""
    mine = _descendants(os.getpid())
    chromium = [p for p in mine if "chromium" in _cmdline(p).split(" ")[0]]
    kernel = [p for p in mine if kernel_id in _cmdline(p)]
    return chromium, kernel


def _wait_drawn(page, n_views, timeout=120.0):
    deadline = time.monotonic() + timeout
    while True:
        views = page.evaluate(VIEWS_JS)
        # views scrolled out of sight draw nothing by design: wait for the visible ones
        if len(views) >= n_views and all(v["draws"] > 2 for v in views if v["visible"]):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the views did not all draw within {timeout} s: {views}")
        time.sleep(0.25)


def measure(lab, page, n_channels, seconds, viewport):
    """One dashboard of ``n_channels`` channels: counters and CPU over ``seconds``."""
    name = f"bench-{n_channels}ch.ipynb"
    write_notebook(Path(lab.root_dir) / name, [CELLS[0].format(n=n_channels)])
    open_notebook(page, lab, name)
    run_all_cells(page, timeout_ms=300_000)
    _wait_drawn(page, 5)
    time.sleep(2.0)  # past the first frames' layout work
    session = next(s for s in lab.api("GET", "/api/sessions") if s["path"].endswith(name))
    chromium, kernel = _processes(session["kernel"]["id"])
    before = page.evaluate(VIEWS_JS)
    cpu0 = (_cpu_ticks(chromium), _cpu_ticks(kernel), time.perf_counter())
    time.sleep(seconds)
    after = page.evaluate(VIEWS_JS)
    cpu1 = (_cpu_ticks(chromium), _cpu_ticks(kernel), time.perf_counter())
    window = cpu1[2] - cpu0[2]
    views = []
    for a, b in zip(before, after):
        if not b["visible"]:
            continue
        views.append({"view": b["title"], "width_px": b["width"],
                      "frames_per_s": round((b["frames"] - a["frames"]) / window, 2),
                      "draws_per_s": round((b["draws"] - a["draws"]) / window, 2),
                      "draw_ms": round(b["draw_ms"], 3)})
    kernel_exec(page, "p.stop()")
    return {"n_channels": n_channels, "window_s": round(window, 2), "viewport": list(viewport),
            "chromium_processes": len(chromium),
            "chromium_cpu_pct": round(100 * (cpu1[0] - cpu0[0]) / TICK / window, 1),
            "kernel_cpu_pct": round(100 * (cpu1[1] - cpu0[1]) / TICK / window, 1),
            "views": views}


def _git(*args):
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def table(results) -> str:
    rows = [("channels", "view", "width px", "frames/s", "draws/s", "draw ms", "Chromium CPU %",
             "kernel CPU %")]
    for r in results:
        for i, v in enumerate(r["views"]):
            cpu = (str(r["chromium_cpu_pct"]), str(r["kernel_cpu_pct"])) if i == 0 else ("", "")
            rows.append((str(r["n_channels"]) if i == 0 else "", v["view"], str(v["width_px"]),
                         f"{v['frames_per_s']:.1f}", f"{v['draws_per_s']:.1f}", f"{v['draw_ms']:.2f}",
                         *cpu))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--channels", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    reason = browser_available()
    if reason:
        print(f"browser benchmark skipped: {reason}", file=sys.stderr)
        return 2
    viewport = (args.width, args.height)
    results = []
    with tempfile.TemporaryDirectory(prefix="eegkit-bench-browser-") as root, \
            JupyterLab(root) as lab, browser_page(viewport=viewport) as page:
        for n in args.channels:
            results.append(measure(lab, page, n, args.seconds, viewport))
    doc = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain")),
           "widgets_commit": _git("log", "-1", "--format=%H", "--", "widgets"),
           "cpus": os.cpu_count(), "python": platform.python_version(),
           "note": "CPU in % of one core; the machine may be shared",
           "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(results))
    print(f"\ncommit {doc['commit']}{' (dirty)' if doc['dirty'] else ''}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
