"""Turn benchmark results into the published Markdown tables and the target verdicts."""

from __future__ import annotations

from . import workloads as wl

STREAM_ORDER = ("eegkit", "eegkit, every output", "eegkit fused", "numba per-stage",
                "numba fused", "scipy", "scipy periodogram")


def targets(results) -> list:
    """The issue's targets: ``{"target", "measured", "met"}`` (met is True, False or None)."""
    rows = []
    s32 = next((r for r in results.get("streaming", ())
                if r["chunk"] == 32 and r["dtype"] == "float64"), None)

    def add(target, value, ok, fmt="{:.2f}"):
        rows.append({"target": target, "measured": None if value is None else fmt.format(value),
                     "met": None if value is None else bool(ok(value))})

    ratios = s32["ratios"] if s32 else {}
    add("streaming, chunk 32, float64: eegkit median ≤ 1.2 × hand-written numba per-stage",
        ratios.get("eegkit / numba per-stage"), lambda v: v <= 1.2, "{:.2f} ×")
    add("streaming, chunk 32, float64: eegkit ≥ 10 × faster than scipy (the rfft baseline)",
        ratios.get("scipy / eegkit"), lambda v: v >= 10, "{:.2f} × faster")
    add("… same against `scipy.signal.periodogram` with a concatenated buffer (not the target's baseline)",
        ratios.get("scipy periodogram / eegkit"), lambda v: v >= 10, "{:.2f} × faster")
    add("streaming, chunk 32, float64: eegkit with fusion ≤ 1.1 × hand-fused numba",
        ratios.get("eegkit fused / numba fused"), lambda v: v <= 1.1, "{:.2f} ×")
    for name in ("eegkit", "eegkit fused"):
        st = s32["impls"].get(name) if s32 else None
        add(f"streaming, chunk 32, float64: {name} p99 ≤ 3 × median (wall time)",
            st and st["p99_over_median"], lambda v: v <= 3, "p99 = {:.2f} × median")
        add("… same in thread CPU time (what eegkit controls; not an issue target)",
            st and st["cpu_p99_over_median"], lambda v: v <= 3, "p99 = {:.2f} × median")
    off = [r for r in results.get("offline", ()) if r["dtype"] == "float64"]
    longest = max(off, key=lambda r: r["seconds_of_data"]) if off else None
    label = _duration(longest["seconds_of_data"]) if longest else "1 h"
    add(f"offline band-pass + notch + CAR, {label} × {longest['n_channels'] if longest else 64} ch "
        f"float64: eegkit ≥ 3 × faster than scipy (both cores allowed)",
        longest and longest["impls"]["eegkit"]["scipy / this"], lambda v: v >= 3, "{:.2f} × faster")
    cold = results.get("coldstart") or {}
    add("cold start to first processed chunk, warm numba cache < 2 s",
        cold.get("warm_cache", {}).get("spawn_to_first_chunk_s"), lambda v: v < 2, "{:.2f} s")
    build = cold.get("plugins_build_s")
    add("`eegkit plugins build` < 15 s", build if isinstance(build, float) else None,
        lambda v: v < 15, "{:.1f} s")
    widget = (results.get("hooks") or {}).get("widget frame cost", {})
    value = widget.get("value") if widget.get("status") == "ok" else None
    add("widget, 64 ch at 30 fps: < 1 ms kernel CPU per frame",
        value.get("median_ms") if isinstance(value, dict) else None, lambda v: v < 1,
        "{:.3f} ms median")
    return rows


def failed_checks(results) -> list:
    """``"section: implementation: message"`` for every numeric cross-check that failed."""
    bad = []
    for r in results.get("streaming", ()):
        for name, c in r["checks"].items():
            if not c["ok"]:
                bad.append(f"streaming {r['dtype']} chunk {r['chunk']}: {name}: {c['message']}")
    for r in results.get("offline", ()):
        for name, c in r["checks"].items():
            if not c["ok"]:
                bad.append(f"offline {r['seconds_of_data']:g} s {r['dtype']}: {name}: {c['message']}")
    return bad


def markdown(results) -> str:
    """The whole report as Markdown."""
    m, cfg = results["machine"], results["config"]
    out = [f"# eegkit benchmark ({cfg['mode']} run)", "",
           f"{results['started']} · eegkit {m['eegkit']} · run took {results['elapsed_s']:.0f} s", "",
           "**Machine.** " + _machine(m), "",
           f"**Workload.** {cfg['n_channels']} channels at {wl.SFREQ:g} Hz. Band-pass: 4th-order "
           "Butterworth 1–40 Hz as SOS, state carried → notch 50 Hz (`iirnotch`, Q 30), state carried "
           "→ common average reference → (streaming only) alpha band power: periodogram density of "
           "the last 256 samples, periodic Hann window, summed over [8, 12) Hz times the bin width, "
           "after every chunk (`brain_fft.band_power`, `window=256, step=chunk, bands=[8, 12], "
           "band_names=[\"alpha\"]`; at 1 kHz only the 11.72 Hz bin lies in the band). "
           "Deterministic synthetic EEG (seeded, generated in 60 s blocks).", ""]
    bad = failed_checks(results)
    out += ["**Numeric cross-checks:** " + ("all passed (every implementation agrees with scipy; "
            "float64 within 1e-8, float32 within 2e-3 relative to the largest value)." if not bad
            else "**FAILED** — " + "; ".join(bad)), ""]
    out += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in results["targets"]:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        out.append(f"| {t['target']} | {t['measured'] or 'n/a'} | {met} |")
    out += [""] + _streaming(results) + _overhead(results) + _offline(results) + _cold(results) \
        + _hooks(results)
    return "\n".join(out) + "\n"


def _machine(m):
    return (f"{m['cpu']}, {m['cpus']} cores usable, {m['memory_gb']:.0f} GB; Python {m['python']}, "
            f"numpy {m['numpy']}, scipy {m['scipy']}, numba {m['numba']} (threading layer "
            f"{m['numba_threading_layer']}, {m['numba_threads']} threads); BLAS {m['blas']} "
            f"({m['blas_threads']}); load average {m['load_start']} at start, {m['load_end']} at end. "
            f"{m['threads_note']}")


def _streaming(results):
    rows = results.get("streaming")
    if not rows:
        return []
    out = ["## Streaming: latency per chunk (µs)", "",
           "Every chunk timed alone; implementations interleaved in rounds of "
           f"{results['config']['round']} chunks ({results['config']['stream_chunks']} timed chunks "
           "each at chunk 32, × √(32/chunk) at other sizes). "
           "eegkit: `Pipeline(fuse=False)`, `push(chunk, copy=False, outputs=[\"alpha\"])` (one "
           "compiled call per stage, nothing intermediate kept, like the hand-written per-stage "
           "numba); eegkit, every output: the same returning every stage's output; eegkit fused: "
           "`Pipeline()` with `push(chunk, copy=False, outputs=[\"alpha\"])` (one generated "
           "compiled call). All with manifests, loading, guards, non-finite checks and statistics "
           "on. *CPU* columns: the thread's "
           "CPU time around each call (immune to preemption by other processes; includes about "
           "1 µs of the CPU clock itself). *> 3× median*: share of chunks slower than 3 × the "
           "median (the p99 target holds while it stays under 1 %).", "",
           "| dtype | chunk | implementation | median | p90 | p99 | p99/median | > 3× median | "
           "CPU median | CPU p99 | × real time | check |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        for name in STREAM_ORDER:
            st = r["impls"].get(name)
            if st is None:
                continue
            c = r["checks"].get(name)
            check = "reference" if c is None else ("ok" if c["ok"] else "**WRONG**")
            out.append(f"| {r['dtype']} | {r['chunk']} | {name} | {st['median_us']:.1f} | "
                       f"{st['p90_us']:.1f} | {st['p99_us']:.1f} | {st['p99_over_median']:.2f} | "
                       f"{st['slow_pct']:.2f} % | {st['cpu_median_us']:.1f} | {st['cpu_p99_us']:.1f} | "
                       f"{st['x_realtime']:.0f} | {check} |")
    plans = rows[0].get("eegkit_plans") or {}
    if plans:
        out += ["", "eegkit's execution plans: " + "; ".join(
            f"{name}: {', '.join(p) if p else 'n/a'}" for name, p in plans.items()) + "."]
    keys = list(rows[0]["ratios"])
    out += ["", "Ratios of medians:", "", "| dtype | chunk | " + " | ".join(keys) + " |",
            "|---|---:|" + "---:|" * len(keys)]
    for r in rows:
        out.append(f"| {r['dtype']} | {r['chunk']} | " +
                   " | ".join(f"{r['ratios'][k]:.2f}" for k in keys) + " |")
    return out + [""]


def _overhead(results):
    rows = results.get("overhead")
    if not rows:
        return []
    out = ["## Where eegkit's per-chunk time goes (float64, `fuse=False`, µs per chunk)", "",
           "Each level timed alone on the same chunks (medians): a compiled no-op with each "
           "kernel's arguments (numba dispatch), the kernels called directly, through "
           "`Stage.run`, `push(copy=False)`, `push()` (copies of every output).", "",
           "| chunk | dispatch | kernels | Stage.run | push(copy=False) | push() | framework = push − kernels |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lv = r["levels"]
        out.append(f"| {r['chunk']} | {lv['dispatch']:.1f} | {lv['kernels']:.1f} | "
                   f"{lv['Stage.run']:.1f} | {lv['push']:.1f} | {lv['push copy']:.1f} | "
                   f"{lv['push'] - lv['kernels']:.1f} |")
    r = next((r for r in rows if r["chunk"] == 32), rows[0])
    out += ["", f"Per stage at chunk {r['chunk']} (plan: {', '.join(r['plan'] or ['n/a'])}; "
            f"one `np.copyto` of a chunk: {r['copy_one_chunk_us']:.2f} µs):", "",
            "| stage | numba dispatch | plugin kernel (incl. dispatch) | hand-written kernel | Stage.run |",
            "|---|---:|---:|---:|---:|"]
    for sid, v in r["per_stage"].items():
        hand = "n/a" if v.get("hand_kernel_us") is None else f"{v['hand_kernel_us']:.2f}"
        out.append(f"| {sid} | {v['dispatch_us']:.2f} | {v['kernel_us']:.2f} | {hand} | "
                   f"{v['stage_run_us']:.2f} |")
    out += ["", "| overhead at chunk %d | µs |" % r["chunk"], "|---|---:|"]
    out += [f"| {k} | {v:.2f} |" for k, v in r["overhead"].items()]
    return out + [""]


def _offline(results):
    rows = results.get("offline")
    if not rows:
        return []
    out = ["## Offline: band-pass + notch + CAR over a recording in memory (seconds)", "",
           "Best of the interleaved rounds; each call returns a new filtered array. scipy: "
           "`sosfilt` over the whole duration, 8 channels per call, CAR in place; numba per-stage: "
           "copy + three in-place passes, one thread; numba fused (parallel): both filters per "
           "channel in one pass, channels over numba's threads, parallel CAR; eegkit: "
           "`Pipeline.process(x, outputs=[\"car\"])` on a pipeline built and warmed up beforehand.", "",
           "| data | dtype | implementation | seconds | × real time | scipy / this | this / eegkit | check |",
           "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        data = f"{_duration(r['seconds_of_data'])} × {r['n_channels']} ch ({r['gigabytes']:.2f} GB)"
        for name, st in r["impls"].items():
            c = r["checks"].get(name)
            check = "reference" if c is None else ("ok" if c["ok"] else "**WRONG**")
            out.append(f"| {data} | {r['dtype']} | {name} | {st['seconds']:.3f} | "
                       f"{st['x_realtime']:.0f} | {st['scipy / this']:.2f} | {st['this / eegkit']:.2f} | {check} |")
    peak = max(r["peak_rss_gb"] for r in rows)
    first = rows[0].get("eegkit_first_calls_s")
    out += ["", f"Peak resident memory of the benchmark process: {peak:.1f} GB. "
            + (f"eegkit's first `process` calls (1 s of data per dtype: plan, compile) took "
               f"{first:.2f} s, outside the timings." if first is not None else "")]
    return out + [""]


def _duration(seconds):
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _cold(results):
    c = results.get("coldstart")
    if not c:
        return []
    w, e = c["warm_cache"], c["empty_cache"]
    out = ["## Cold start (fresh process each, median of %d)" % c["repeats"], "",
           f"`python -c pass`: {c['python_bare_s']:.3f} s; `python -c \"import eegkit\"`: "
           f"{c['python_import_eegkit_s']:.3f} s (import ≈ {c['import_eegkit_s']:.3f} s). "
           f"Of the stage loading below, importing numba alone takes ≈ {c['import_numba_s']:.3f} s "
           f"and scipy.signal (used by the filters' setup) ≈ {c['import_scipy.signal_s']:.3f} s "
           "(each: `python -c \"import numpy, X\"` minus `python -c \"import numpy\"`).", "",
           "| step (inside the child) | warm numba cache | empty cache |", "|---|---:|---:|"]
    labels = {"import_s": "import eegkit", "discovery_s": "discovery (`PluginManager()`)",
              "stage_load_s": "4 stages: add + open (import, compile or cache load, warm-up)",
              "first_push_s": "first push", "in_process_to_first_chunk_s": "import → first chunk",
              "spawn_to_first_chunk_s": "**process spawn → first processed chunk**"}
    for k, label in labels.items():
        out.append(f"| {label} | {w[k]:.3f} s | {e[k]:.3f} s |")
    build = c.get("plugins_build_s")
    out += ["", "`eegkit plugins build` (empty cache): " +
            ("n/a (no such command)" if build is None else
             f"{build:.1f} s" if isinstance(build, float) else f"error: {build.get('error')}")]
    if c.get("disabled_stages"):
        out.append(f"\n**Disabled stages in the children:** {'; '.join(c['disabled_stages'])}")
    return out + [""]


def _hooks(results):
    h = results.get("hooks")
    if not h:
        return []
    out = ["## Other measurements", "", "| measurement | result |", "|---|---|"]
    for label, r in h.items():
        if r["status"] == "ok":
            value = r["value"]
            text = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) \
                if isinstance(value, dict) else _fmt(value)
            text = f"`{r['function']}`: {text}"
        elif r["status"] == "n/a":
            text = f"n/a ({r.get('reason', '')})"
        else:
            text = f"error: {r.get('reason', '')}"
        out.append(f"| {label} | {text} |")
    return out + [""]


def _fmt(v):
    return f"{v:.3g}" if isinstance(v, float) else str(v)
