"""FeatureSink: a per-window table of features or spectra (CSV or Parquet)."""

from __future__ import annotations

import os

import numpy as np

from .._errors import ParameterError
from .._optional import require
from . import Sink, check_target, io_error, output_path, overwrite_flag

_ROW_GROUP = 4096  # Parquet rows buffered before a row group is written


class FeatureSink(Sink):
    """Write a ``features`` or ``spectrum`` stream as a wide table, one row per window.

    Parameters
    ----------
    path : str or path-like
        ``.csv`` or ``.parquet`` (Parquet needs ``pip install 'eegkit[parquet]'``).
        Parent folders are created.
    overwrite : bool
        Replace an existing file (default False: refuse to start).

    Notes
    -----
    Columns: ``sample`` (index of the window in the feature stream), ``time`` (s,
    ``sample / info.sfreq``), then one column per row of the stream, named like the
    rows: ``channel:item`` (``Fz:alpha``, ``Cz:10.0``).

    CSV rows are appended and flushed at every :meth:`write`, so a crash keeps every
    window written. Parquet is written in row groups of 4096 windows and only readable
    after :meth:`close` (the format's footer is written last).
    """

    type_name = "features"

    def __init__(self, path, overwrite=False):
        self.path = output_path(path, "FeatureSink")
        self.overwrite = overwrite_flag(overwrite, "FeatureSink")
        suffix = os.path.splitext(self.path)[1].lower()
        if suffix not in (".csv", ".parquet"):
            raise ParameterError(f"FeatureSink: path must end in .csv or .parquet, got {self.path!r}")
        self.format = suffix[1:]
        if self.format == "parquet":
            self._pa = require("pyarrow", "parquet", "FeatureSink (.parquet)")
            self._pq = require("pyarrow.parquet", "parquet", "FeatureSink (.parquet)")
        self._file = self._writer = None
        self.info = None
        self.n_rows = 0

    @property
    def columns(self) -> list:
        """Column names of the table (after :meth:`open`)."""
        return ["sample", "time", *self.info.ch_names]

    def check(self, info):
        if info.kind not in ("features", "spectrum"):
            raise ParameterError(
                f"FeatureSink {self.path}: input must be a 'features' or 'spectrum' stream, got "
                f"kind {info.kind!r} ({info.n_channels} rows); use RecordSink for time series")
        check_target(self.path, "FeatureSink", self.overwrite)

    def open(self, info):
        self.close()
        self.check(info)
        self.info = info
        self.n_rows = 0
        if self.format == "csv":
            try:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                self._file = open(self.path, "w", newline="", encoding="utf-8")
                self._file.write(",".join(_csv_field(c) for c in self.columns) + "\n")
                self._file.flush()
            except OSError as exc:
                self._drop()
                raise io_error("FeatureSink", self.path, exc) from None
        else:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            pa = self._pa
            fields = [pa.field("sample", pa.int64()), pa.field("time", pa.float64())]
            value = pa.float32() if info.dtype == "float32" else pa.float64()
            fields += [pa.field(c, value) for c in info.ch_names]
            self._schema = pa.schema(fields, metadata={"eegkit_kind": info.kind,
                                                       "eegkit_sfreq": repr(info.sfreq)})
            self._writer = self._pq.ParquetWriter(self.path, self._schema)
            self._pending = []

    def write(self, block, first_sample):
        if self.info is None:
            raise ParameterError(f"FeatureSink {self.path}: write() before open()")
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[0] != self.info.n_channels:
            raise ParameterError(f"FeatureSink {self.path}: expected blocks of shape "
                                 f"({self.info.n_channels}, n), got {block.shape}")
        n = block.shape[1]
        if n == 0:
            return
        sample = np.arange(first_sample, first_sample + n, dtype=np.int64)
        time = sample / self.info.sfreq
        if self.format == "csv":
            rows = np.column_stack([time, block.T])
            lines = [f"{s}," + ",".join(map(repr, r.tolist())) for s, r in zip(sample.tolist(), rows)]
            try:
                self._file.write("\n".join(lines) + "\n")
                self._file.flush()
            except OSError as exc:
                self._drop()
                raise io_error("FeatureSink", self.path, exc) from None
        else:
            self._pending.append((sample, time, np.array(block, copy=True)))
            if sum(len(p[0]) for p in self._pending) >= _ROW_GROUP:
                self._flush_parquet()
        self.n_rows += n

    def _flush_parquet(self):
        """Write buffered windows as one row group."""
        if not self._pending:
            return
        pa = self._pa
        sample = np.concatenate([p[0] for p in self._pending])
        time = np.concatenate([p[1] for p in self._pending])
        values = np.concatenate([p[2] for p in self._pending], axis=1)
        arrays = [pa.array(sample), pa.array(time)]
        arrays += [pa.array(row) for row in values.astype(self.info.dtype, copy=False)]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
        self._pending = []

    def _drop(self):
        """Release the CSV file after a failed write (its error is the one reported)."""
        f, self._file = self._file, None
        try:
            if f is not None:
                f.close()
        except OSError:
            pass

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            try:
                self._flush_parquet()
            finally:
                self._writer.close()
                self._writer = None


def _csv_field(text):
    """Quote a CSV header field when it needs it."""
    if any(ch in text for ch in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
