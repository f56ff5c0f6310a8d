"""Batch: one pipeline over many recordings, one Dask task per recording.

The client resolves the inputs, skips recordings whose outputs are complete, and
submits one task per remaining recording. A task (on a worker) builds the pipeline
from its JSON document, streams the file through it in blocks (``FileSource``, never
the whole recording in memory) and streams each requested stage's output to a
``.npy`` file, in a temporary folder renamed into place once everything is written.

Output layout (``OUT`` is ``out=`` / ``--out``)::

    OUT/summary.csv               one row per recording of this run
    OUT/<name>/<stage>.npy        (rows, samples) output of each requested stage
    OUT/<name>/markers.csv        sample,description of the file's annotations/events
    OUT/<name>/meta.json          written last: pipeline hash, StreamInfo of each output

Workers must see the input files and ``OUT`` at the same paths as the client
(a shared file system), and must find the pipeline's plugins: the same way as
locally (``EEGKIT_PLUGINS_PATH``, ``./plugins``, bundled, entry points), or shipped
with each task (``ship_plugins=True``). The task itself lives in ``_batch_task``.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from ._worker import BATCH_FORMAT, _input_signature, _one_line, _row, run_recording
from .._check import ensure_int, positive_int
from .._errors import EegkitIOError, ParameterError, PipelineError
from .._paths import child_env, is_skipped

BLOCK = 65536
RECORDING_EXTS = (".edf", ".bdf", ".gdf", ".fif", ".fif.gz", ".vhdr", ".set", ".cnt")
MANIFEST_EXTS = (".txt", ".lst", ".list", ".csv", ".tsv")
PATH_COLUMNS = ("path", "recording", "file", "filename")
SUMMARY_FIELDS = ("recording", "duration_s", "n_samples", "status", "error", "seconds", "output")
SHIP_LIMIT = 50 * 2**20
HTML_ROWS = 50


# -- public API ----------------------------------------------------------------------
class BatchSummary(list):
    """Rows of a batch run (one dict per recording, the columns of ``summary.csv``).

    Attributes
    ----------
    path : Path
        The ``summary.csv`` written in the output folder.
    """

    path: Path = None

    @property
    def failed(self) -> list:
        """Rows whose status is ``error``."""
        return [r for r in self if r["status"] == "error"]

    def counts(self) -> dict:
        """Number of rows per status (``ok``, ``skipped``, ``error``)."""
        out = {}
        for r in self:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def to_pandas(self):
        """The rows as a ``pandas.DataFrame`` (needs pandas)."""
        from .._optional import require

        return require("pandas", "batch", "BatchSummary.to_pandas").DataFrame(list(self))

    def _repr_html_(self):
        import html

        head = "".join(f"<th>{c}</th>" for c in SUMMARY_FIELDS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in SUMMARY_FIELDS)
                       + "</tr>" for r in self[:HTML_ROWS])
        more = f"<p>… {len(self) - HTML_ROWS} more rows in the CSV</p>" if len(self) > HTML_ROWS else ""
        return (f"<p>{html.escape(repr(self))}</p><table><tr>{head}</tr>{body}</table>{more}")

    def __repr__(self):
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items())) or "empty"
        return f"<BatchSummary {len(self)} recordings: {counts}; {self.path}>"


def batch(pipeline, inputs, out="eegkit-batch", scheduler=None, workers=None, retries=1,
          stages=None, ship_plugins=False, force=False, block=BLOCK,
          progress=True) -> BatchSummary:
    """Run a pipeline over many recordings, one Dask task per recording.

    Parameters
    ----------
    pipeline : Pipeline, dict or path
        A pipeline, its document (:meth:`Pipeline.to_dict`) or a pipeline JSON file.
        Its source and sinks are not used: every recording is its source.
    inputs : path, glob or list of them
        Recording files; globs (``"data/**/*.edf"``); folders (BIDS ``sub-*/eeg/*_eeg.*``,
        else every recording file below); manifests (``.txt``/``.lst``: one path per
        line; ``.csv``/``.tsv``: a ``path`` column). Relative paths in a manifest are
        relative to the manifest.
    out : path
        Output folder (every worker must be able to write it at the same path).
    scheduler : str or distributed.Client, optional
        Address of a running scheduler (``"tcp://127.0.0.1:8786"``) or a Client.
        Default: a ``LocalCluster`` of worker processes on this machine.
    workers : int, optional
        Worker processes of the local cluster (default: cores, at most one per recording).
    retries : int
        Times a task is retried after its worker was lost (and, on the local cluster,
        the scheduler's ``allowed-failures``). A recording that fails to process is not
        retried: it is reported in the summary.
    stages : list of str, optional
        Stage ids whose outputs are written (default: every stage).
    ship_plugins : bool
        Send the files of the plugins the pipeline uses with the tasks; workers write
        them to a temporary folder and load them from there.
    force : bool
        Re-run recordings whose outputs are already complete.
    block : int
        Samples read and processed per step (bounds memory per task).
    progress : bool
        Print the dashboard link and a progress bar to stderr.

    Returns
    -------
    BatchSummary
        One row per recording; also written to ``OUT/summary.csv``.
    """
    pipe = load_pipeline(pipeline)
    wanted = _wanted(pipe, stages)
    block = positive_int(block, "block", "batch", what="a positive number of samples")
    retries = ensure_int(retries, "retries", "batch", min=0, what="an integer >= 0")
    out = writable_folder(out)  # before any task runs: results must have somewhere to go
    paths = resolve_inputs(inputs)
    template = _job_template(pipe, wanted, block, ship_plugins)
    rows, jobs = {}, []
    for path, name in zip(paths, recording_names(paths)):
        final = out / name
        done = None if force else _completed(final, path, template["hash"], wanted)
        if done is not None:
            rows[name] = _row(path, "skipped", output=final, meta=done)
        else:
            _clear_stale(out, name)
            jobs.append({**template, "path": str(path), "name": name, "out": str(out)})
    say = _Say(progress)
    if jobs:
        say(f"eegkit batch: {len(jobs)} to run, {len(rows)} already done, output in {out}")
        for row in _run_jobs(jobs, template, scheduler, workers, retries, say):
            rows[row.pop("name")] = row
    else:
        say(f"eegkit batch: all {len(rows)} recordings already done in {out}")
    summary = BatchSummary(rows[name] for name in recording_names(paths))
    summary.path = write_summary(summary, out / "summary.csv")
    return summary


def load_pipeline(pipeline):
    """A Pipeline from a Pipeline, a document dict, or a JSON path/text."""
    from ..runtime._pipeline import Pipeline

    if isinstance(pipeline, Pipeline):
        return pipeline
    if isinstance(pipeline, dict):
        return Pipeline.from_dict(pipeline)
    return Pipeline.from_json(pipeline)


def _wanted(pipe, stages):
    """Stage ids to write, checked against the pipeline."""
    ids = [s.id for s in pipe.stages]
    if not ids:
        raise PipelineError("batch: the pipeline has no stages; add stages before running a batch")
    if stages is None:
        return ids
    stages = [stages] if isinstance(stages, str) else list(stages)
    unknown = [s for s in stages if s not in ids]
    if unknown or not stages:
        raise ParameterError(f"batch: stages {unknown or stages} are not stage ids of the "
                             f"pipeline; its stages are: {', '.join(ids)}")
    return list(dict.fromkeys(stages))


# -- inputs ---------------------------------------------------------------------------
def resolve_inputs(inputs) -> list:
    """Recording paths from files, globs, folders and manifests (first seen order, no repeats)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found = []
    for item in inputs:
        text = os.path.expanduser(os.fspath(item))
        if any(c in text for c in "*?[") and not os.path.exists(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise ParameterError(f"batch: input pattern {text!r} matches no files")
            for m in matches:
                p = Path(m)
                if p.is_dir():
                    found += _folder(p)
                elif _has_ext(p, RECORDING_EXTS):
                    found.append(p)
        else:
            found += _expand(Path(text), manifests=True)
    seen, paths = set(), []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            paths.append(key)
    if not paths:
        raise ParameterError(f"batch: no recordings found in {list(map(str, inputs))}")
    return paths


def _expand(path, manifests):
    """One explicit input: a folder, a manifest or a recording (kept even if missing)."""
    if path.is_dir():
        return _folder(path)
    if manifests and path.is_file() and _has_ext(path, MANIFEST_EXTS):
        return _manifest(path)
    return [path]


def _folder(root):
    """Recordings in a folder: BIDS ``sub-*/[ses-*/]eeg/*_eeg.*`` if any, else every recording file."""
    bids = [p for p in sorted(root.glob("sub-*/**/eeg/*_eeg.*"))
            if p.is_file() and _has_ext(p, RECORDING_EXTS)]
    if bids:
        return bids
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and _has_ext(p, RECORDING_EXTS)]
    if not files:
        raise ParameterError(f"batch: folder {root} holds no recordings (looked for "
                             f"{', '.join('*' + e for e in RECORDING_EXTS)})")
    return files


def writable_folder(out) -> Path:
    """``out`` created if needed and checked writable; EegkitIOError naming it otherwise."""
    try:
        out = Path(out).expanduser().resolve()
        if out.exists() and not out.is_dir():
            raise EegkitIOError(f"batch: --out {out} is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".eegkit-write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except EegkitIOError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:  # ValueError: NUL; RuntimeError: ~user
        reason = getattr(exc, "strerror", None) or exc
        raise EegkitIOError(f"batch: output folder {out} cannot be written: {reason}") from None
    return out


def _manifest(path):
    """Paths listed in a manifest: one per line, or the path column of a CSV/TSV."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParameterError(f"batch: manifest {path} is not UTF-8 text (byte {exc.start}: "
                             f"{exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8") from None
    except OSError as exc:
        raise EegkitIOError(f"batch: cannot read manifest {path}: {exc.strerror or exc}") from None
    if _has_ext(path, (".csv", ".tsv")):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv" else ",")
        columns = {c.strip().lower(): c for c in reader.fieldnames or []}
        column = next((columns[c] for c in PATH_COLUMNS if c in columns), None)
        if column is None:
            raise ParameterError(f"batch: manifest {path} needs a 'path' column; its columns are "
                                 f"{reader.fieldnames}")
        entries = [(row.get(column) or "").strip() for row in reader]
    else:
        entries = [line.strip() for line in text.splitlines()]
    entries = [e for e in entries if e and not e.startswith("#")]
    if not entries:
        raise ParameterError(f"batch: manifest {path} lists no recordings")
    out = []
    for e in entries:
        p = Path(e).expanduser()
        out += _expand(p if p.is_absolute() else path.parent / p, manifests=False)
    return out


def _has_ext(path, exts):
    return str(path).lower().endswith(exts)


def recording_names(paths) -> list:
    """Output folder name of each recording: its file stem, made unique with a path hash."""
    stems = []
    for p in paths:
        name = Path(p).name
        for ext in sorted(RECORDING_EXTS, key=len, reverse=True):
            if name.lower().endswith(ext):
                name = name[:-len(ext)]
                break
        else:
            name = Path(p).stem
        stems.append("".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip(".")
                     or "recording")
    names = []
    for p, stem in zip(paths, stems):
        if stems.count(stem) > 1:
            stem = f"{stem}-{hashlib.sha256(str(p).encode()).hexdigest()[:8]}"
        names.append(stem)
    return names


# -- the job sent to workers ------------------------------------------------------------
def _job_template(pipe, wanted, block, ship_plugins):
    """What every task of this run shares: the pipeline document, its hash, plugin access."""
    doc = pipe.to_dict()
    doc["source"] = None
    doc.pop("sinks", None)
    code = {s.id: [s.code.manifest.name, s.code.manifest.version, s.code.digest]
            for s in pipe.stages}
    key = json.dumps({"format": BATCH_FORMAT, "stages": doc["stages"], "outputs": wanted,
                      "code": code}, sort_keys=True)
    paths = pipe.plugins.paths
    return {"doc": doc, "outputs": wanted, "code": code, "block": int(block),
            "hash": hashlib.sha256(key.encode()).hexdigest()[:16],
            "plugin_paths": None if paths is None else [str(Path(p).resolve()) for p in paths],
            "entry_points": pipe.plugins.entry_points,
            "bundle": plugin_bundle(pipe) if ship_plugins else None}


def plugin_bundle(pipe) -> dict:
    """Files of the plugins a pipeline uses: ``{plugin: {relative path: bytes}}``."""
    bundle, total = {}, 0
    for name in sorted({s.code.manifest.name for s in pipe.stages}):
        root = next(s.code.manifest.path for s in pipe.stages if s.code.manifest.name == name)
        files = {}
        for p in sorted(Path(root).rglob("*")):
            rel = p.relative_to(root)
            if is_skipped(rel.parts) or not p.is_file():  # hidden files stay home too
                continue
            files[rel.as_posix()] = data = p.read_bytes()
            total += len(data)
        if total > SHIP_LIMIT:
            raise ParameterError(f"batch: plugin folders to ship exceed {SHIP_LIMIT >> 20} MiB "
                                 f"(at plugin '{name}', {root}); put the plugins on a path every "
                                 f"worker sees (EEGKIT_PLUGINS_PATH) instead")
        bundle[name] = files
    return bundle


# -- client side: cluster, submission, progress ---------------------------------------------
def _run_jobs(jobs, template, scheduler, workers, retries, say):
    """Submit every job, collect rows as they finish (failures become rows)."""
    from .._optional import require

    require("dask.distributed", "batch", "eegkit batch")
    from dask.distributed import as_completed

    client, closers = _connect(scheduler, workers, retries, len(jobs))
    try:
        link = _dashboard(client)
        if link:
            say(f"dashboard: {link}")
        bundle = template["bundle"]
        # a task rather than scatter: its result can be recomputed if the worker holding it dies
        shared = (client.submit(_identity, bundle, key=f"eegkit-plugins-{uuid.uuid4().hex[:8]}")
                  if bundle is not None else None)
        run = uuid.uuid4().hex[:8]
        futures = {}
        for job in jobs:
            job = {k: v for k, v in job.items() if k != "bundle"}
            f = client.submit(run_recording, job, shared, key=f"eegkit-batch-{job['name']}-{run}",
                              retries=retries, pure=False)
            futures[f] = job
        bar = _Bar(len(jobs), say)
        for f in as_completed(list(futures)):
            job = futures[f]
            try:
                row = f.result()
            except Exception as exc:  # noqa: BLE001 - lost workers, cancelled tasks
                row = _row(job["path"], "error", error=_one_line(exc), name=job["name"])
            bar.update(row["status"] == "error")
            yield row
        bar.close()
    finally:
        for close in closers:
            close()


def _connect(scheduler, workers, retries, n_jobs):
    """A Client (and what to close afterwards) for a scheduler address, a Client, or a new LocalCluster."""
    import dask
    from dask.distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, []
    if scheduler:
        # how long to wait for a scheduler that does not answer (a Dask duration, "30s")
        wait = os.environ.get("EEGKIT_SCHEDULER_TIMEOUT", "30s")
        try:
            client = Client(str(scheduler), timeout=wait)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise EegkitIOError(f"batch: cannot reach the Dask scheduler at {scheduler!r} "
                                f"within {wait}: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        return client, [client.close]
    if workers is not None:
        workers = positive_int(workers, "workers", "batch")
    n = workers or max(1, min(os.cpu_count() or 1, n_jobs))
    env = {"PYTHONPATH": child_env()["PYTHONPATH"]}
    with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0", env=env)
    client = Client(cluster)
    return client, [client.close, cluster.close]


def _dashboard(client):
    """Dashboard link, when the scheduler serves one."""
    try:
        if "dashboard" in client.scheduler_info().get("services", {}):
            return client.dashboard_link
    except Exception:  # noqa: BLE001 - the link is a courtesy
        pass
    return None


class _Say:
    """Print to stderr when progress is on."""

    def __init__(self, on):
        self.on = bool(on)

    def __call__(self, text, end="\n"):
        if self.on:
            print(text, end=end, file=sys.stderr, flush=True)


class _Bar:
    """A text progress bar over recordings (one line per update when not a terminal)."""

    def __init__(self, total, say):
        self.total, self.done, self.failed, self.say = total, 0, 0, say
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty() or "ipykernel" in sys.modules
        self._draw()

    def update(self, failed):
        self.done += 1
        self.failed += bool(failed)
        self._draw()

    def _draw(self):
        width = 30
        fill = int(width * self.done / max(self.total, 1))
        line = (f"[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} recordings, "
                f"{self.failed} failed, {time.perf_counter() - self.t0:.1f} s")
        self.say(("\r" + line) if self.tty else line, end="" if self.tty else "\n")

    def close(self):
        if self.tty:
            self.say("")


def write_summary(rows, path) -> Path:
    """Write the summary rows as CSV (atomically)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    except OSError as exc:
        failed = [f"{r['recording']}: {r['error']}" for r in rows if r.get("status") == "error"]
        raise EegkitIOError(f"batch: cannot write {path}: {exc.strerror or exc}"
                            + (f"; failed recordings: {'; '.join(failed)}" if failed else "")) from None
    return path




def _identity(value):
    return value






def _completed(final, path, phash, wanted):
    """The meta of a finished output folder for this recording and pipeline, else None."""
    try:
        meta = json.loads((final / "meta.json").read_text(encoding="utf-8"))
        ok = (meta.get("pipeline_hash") == phash and meta.get("recording") == str(path)
              and meta.get("input") == _input_signature(path)
              and all((final / f"{id}.npy").is_file() for id in wanted))
    except (OSError, ValueError):
        return None
    return meta if ok else None


def _clear_stale(out, name):
    """Remove temporary folders left by tasks whose worker died."""
    for p in out.glob(f".{glob.escape(name)}.tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
