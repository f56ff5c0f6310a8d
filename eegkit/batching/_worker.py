"""Batch, on the worker: one recording through a pipeline into streamed ``.npy`` files.

Run as a Dask task by :func:`eegkit.batching._client.batch`. Each worker process keeps the
pipelines it built (one per pipeline hash and plugin access) and reuses them for
later recordings; ``Pipeline.open`` resets their state for each file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from .._errors import ParameterError, PipelineError, StageError

BATCH_FORMAT = 1
NPY_HEADER = 128  # fixed, so the final shape can be written over the first one
MAX_WARNINGS = 20
_IDLE = {}          # (pipeline hash, plugin access) -> pipelines not in use in this process
_MANAGERS = {}
_WORKER_LOCK = threading.Lock()


def run_recording(job, bundle=None) -> dict:
    """Process one recording on a worker; return its summary row (errors become rows)."""
    t0 = time.perf_counter()
    out = Path(job["out"])
    final = out / job["name"]
    tmp = out / f".{job['name']}.tmp-{uuid.uuid4().hex[:8]}"
    key, pipe = None, None
    try:
        key, pipe = _checkout(job, bundle)
        tmp.mkdir(parents=True)
        # warnings about a file (MNE's header checks) go to its metadata, not the console
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            meta = _process_file(pipe, job, tmp)
        meta["warnings"] = list(dict.fromkeys(f"{w.category.__name__}: {w.message}"
                                              for w in caught))[:MAX_WARNINGS]
        meta["seconds"] = round(time.perf_counter() - t0, 3)
        _write_json(tmp / "meta.json", meta)
        _publish(tmp, final)
        return _row(job["path"], "ok", output=final, meta=meta, name=job["name"],
                    seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one bad recording must not stop the batch
        shutil.rmtree(tmp, ignore_errors=True)
        return _row(job["path"], "error", error=_one_line(exc), name=job["name"],
                    seconds=time.perf_counter() - t0)
    finally:
        if pipe is not None:
            with _WORKER_LOCK:
                _IDLE.setdefault(key, []).append(pipe)


def _checkout(job, bundle):
    """A pipeline for this job from the process's pool, or a new one."""
    from ..runtime._pipeline import Pipeline
    from ..plugin import PluginManager

    if bundle is not None:
        access = ("bundle", str(_bundle_dir(bundle)))
    else:
        paths = job["plugin_paths"]
        access = ("paths", None if paths is None else tuple(paths), job["entry_points"])
    key = (job["hash"], access)
    with _WORKER_LOCK:
        if _IDLE.get(key):
            return key, _IDLE[key].pop()
        manager = _MANAGERS.get(access)
    if manager is None:
        if access[0] == "bundle":
            manager = PluginManager(paths=[access[1]], entry_points=False)
        else:
            manager = PluginManager(paths=access[1], entry_points=access[2])
        with _WORKER_LOCK:
            manager = _MANAGERS.setdefault(access, manager)
    else:
        manager.refresh()  # a long-lived worker sees plugins added since its last pipeline
    pipe = Pipeline.from_dict(job["doc"], plugins=manager,
                              where=f"pipeline on worker {socket.gethostname()}")
    for stage in pipe.stages:
        want = job["code"][stage.id]
        have = [stage.code.manifest.name, stage.code.manifest.version, stage.code.digest]
        if have != want:
            raise PipelineError(
                f"stage '{stage.id}' ({stage.type}): the worker's plugin '{have[0]}' "
                f"{have[1]} at {stage.code.manifest.path} (code {have[2]}) differs from the "
                f"client's {want[1]} (code {want[2]}); give workers the same plugins "
                f"(a shared EEGKIT_PLUGINS_PATH) or ship them (--ship-plugins)")
    return key, pipe


def _bundle_dir(bundle):
    """Write shipped plugin files once per process tree, content-addressed; return the folder."""
    h = hashlib.sha256()
    for name in sorted(bundle):
        for rel in sorted(bundle[name]):
            h.update(f"{name}/{rel}\0{len(bundle[name][rel])}\0".encode())
            h.update(bundle[name][rel])
    root = Path(tempfile.gettempdir()) / "eegkit-batch-plugins" / h.hexdigest()[:16]
    if (root / ".complete").exists():
        return root
    tmp = root.with_name(f"{root.name}.tmp-{uuid.uuid4().hex[:8]}")
    for name, files in bundle.items():
        for rel, data in files.items():
            parts = Path(rel).parts
            if Path(rel).is_absolute() or ".." in parts or "/" in name or name.startswith("."):
                raise PipelineError(f"shipped plugin '{name}': file path {rel!r} leaves its folder")
            target = tmp / name / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    (tmp / ".complete").touch()
    try:
        os.rename(tmp, root)
    except OSError:  # another worker on this machine wrote it first
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _process_file(pipe, job, tmp):
    """Stream one file through the pipeline into ``tmp``; return the metadata."""
    from ..sources._file import FileSource

    path = job["path"]
    src = FileSource(path)
    signature = _input_signature(path)
    markers = []
    try:
        info = src.info
        pipe.open(info)
        lengths = known_lengths(pipe, src.n_samples)
        writers = {id: NpyWriter(tmp / f"{id}.npy", pipe.info_of(id).n_channels,
                                 pipe.info_of(id).dtype, lengths[id]) for id in job["outputs"]}
        try:
            while not src.ended:
                x = src.read(job["block"])
                if x.shape[1] == 0:
                    break
                outs = pipe.push(x, copy=False)
                for id, w in writers.items():
                    w.write(outs[id])
                markers += src.markers()
            markers += src.markers()
        finally:
            for w in writers.values():
                w.close()
    finally:
        src.close()
    disabled = [s for s in pipe.stages if s.status != "ok"]
    if disabled:
        raise StageError("; ".join(f"stage '{s.id}' ({s.type}) disabled: {s.error}" for s in disabled))
    with open(tmp / "markers.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("sample", "description"))
        writer.writerows(markers)
    from .._version import __version__

    return {"eegkit_batch": BATCH_FORMAT, "recording": str(path), "input": signature,
            "pipeline_hash": job["hash"], "pipeline": job["doc"], "eegkit_version": __version__,
            "n_samples": int(src.n_samples), "sfreq": info.sfreq,
            "duration_s": round(src.n_samples / info.sfreq, 6), "n_markers": len(markers),
            "worker": socket.gethostname(),
            "outputs": {id: {"file": f"{id}.npy", "shape": [writers[id].rows, writers[id].n],
                             "info": pipe.info_of(id).to_dict()} for id in job["outputs"]},
            "stages": pipe.status()}


def known_lengths(pipe, n_samples) -> dict:
    """Output length of each stage when it is known before running (same layout as its
    input all the way from the source), else None."""
    lengths = {"source": n_samples}
    for s in pipe.stages:
        same = s.out_info.same_layout(s.in_info) and s.out_info.kind == s.in_info.kind
        lengths[s.id] = lengths[s.input] if same else None
    return lengths


def _publish(tmp, final):
    """Move a finished folder into place (replacing an older result)."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_json(path, doc):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


class NpyWriter:
    """Write a ``(rows, n)`` array to a ``.npy`` file block by block, never holding it whole.

    With a known length the file is C-ordered (each row contiguous on disk, as
    ``Pipeline.process`` returns it) and blocks are written into place. With an
    unknown length (windowed stages) the file is Fortran-ordered, blocks are appended,
    and the shape in the header is written at :meth:`close`. Both load with
    ``np.load`` (and ``mmap_mode="r"``) as ``(rows, n)`` arrays.
    """

    def __init__(self, path, rows, dtype, length=None):
        self.path, self.rows, self.dtype = Path(path), int(rows), np.dtype(dtype)
        self.length = None if length is None else int(length)
        self.fortran = self.length is None
        self.n = 0
        self._f = open(self.path, "wb")
        self._f.write(self._header(self.length or 0))
        if self.length is not None:
            self._f.truncate(NPY_HEADER + self.rows * self.length * self.dtype.itemsize)

    def _header(self, n):
        text = (f"{{'descr': {np.lib.format.dtype_to_descr(self.dtype)!r}, "
                f"'fortran_order': {self.fortran}, 'shape': ({self.rows}, {n}), }}")
        text = text.ljust(NPY_HEADER - 11) + "\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")

    def write(self, block):
        """Append ``block`` (shape ``(rows, k)``)."""
        block = np.asarray(block, dtype=self.dtype)
        k = block.shape[1]
        if block.shape[0] != self.rows:
            raise ParameterError(f"{self.path.name}: block has {block.shape[0]} rows, expected {self.rows}")
        if k == 0:
            return
        if self.fortran:
            self._f.write(np.ascontiguousarray(block.T).data)
        else:
            if self.n + k > self.length:
                raise StageError(f"{self.path.name}: more samples than the {self.length} expected")
            size = self.dtype.itemsize
            for r in range(self.rows):
                self._f.seek(NPY_HEADER + (r * self.length + self.n) * size)
                self._f.write(np.ascontiguousarray(block[r]).data)
        self.n += k

    def close(self):
        """Finish the header; the file is then a valid ``.npy``."""
        if self._f.closed:
            return
        try:
            if self.fortran:
                self._f.seek(0)
                self._f.write(self._header(self.n))
            elif self.n != self.length:
                raise StageError(f"{self.path.name}: {self.n} samples written, {self.length} expected")
            self._f.flush()
            os.fsync(self._f.fileno())
        finally:
            self._f.close()


def _row(path, status, error="", output="", meta=None, seconds=0.0, name=None):
    row = {"recording": str(path), "duration_s": "", "n_samples": "", "status": status,
           "error": error, "seconds": round(seconds, 3), "output": str(output)}
    if meta is not None:
        row["duration_s"], row["n_samples"] = meta["duration_s"], meta["n_samples"]
    if name is not None:
        row["name"] = name
    return row


def _one_line(exc):
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _input_signature(path):
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
