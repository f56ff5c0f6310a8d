"""RecordSink: stream a stage's output to an EDF or BDF file that survives a crash."""

from __future__ import annotations

import datetime
import os
import tempfile
import warnings

import numpy as np

from .._errors import EegkitIOError, ParameterError
from . import Sink, check_target, io_error, output_path, overwrite_flag

# format -> (digital min, digital max, bytes per sample, default physical range in V)
_FORMATS = {
    "edf": (-32768, 32767, 2, 3.2768e-3),   # 16 bit: ±3.2768 mV, 0.1 µV steps
    "bdf": (-8388608, 8388607, 3, 0.262144),  # 24 bit: ±262.144 mV, 31.25 nV steps (BioSemi)
}
_MAX_RECORD_SECONDS = 60
MAX_CHANNELS = 9999  # the header's signal count is 4 characters wide
MAX_RECORD_VALUES = 2 ** 24  # samples x channels of one record, held in memory as float64
_COUNT_OFFSET = 236  # byte offset of the header's number-of-records field
_FIF_HINT = ("RecordSink cannot write FIF crash-safely: a FIF file is only readable once its "
             "closing tags are written, so a killed run would leave nothing usable. Record to "
             ".bdf (24 bit) or .edf and convert afterwards, e.g. "
             "mne.io.read_raw('rec.bdf').save('rec_raw.fif')")


class RecordSink(Sink):
    """Write a stream to an EDF or BDF file incrementally, so a crash loses at most the
    record being filled.

    Parameters
    ----------
    path : str or path-like
        Output file ending in ``.edf`` or ``.bdf``. Parent folders are created.
    format : {"edf", "bdf"}, optional
        Must agree with the suffix (the default). FIF is refused: it cannot be kept
        readable while being written.
    physical_range : float or (float, float), optional
        Range of values that can be stored, in the stream's units (volts for EEG).
        A number ``r`` means ``(-r, r)``. Default for volt channels: ±3.2768 mV for EDF
        (16 bit, 0.1 µV steps), ±262.144 mV for BDF (24 bit, 31.25 nV steps). Streams in
        other units need it given explicitly.
    fsync : bool
        Ask the OS to put each flushed record on disk (default True). Without it a
        killed process still loses nothing flushed; a power cut might.
    overwrite : bool
        Replace an existing file (default False: refuse to start). The old file stays
        in place until every sink of the run has opened (the new one is written under
        a temporary name beside it until then).

    Attributes
    ----------
    n_samples : int
        Samples received so far.
    n_records : int
        Data records flushed to disk (and counted in the header).
    n_clipped : int
        Values outside ``physical_range``, stored as the range's end.

    Notes
    -----
    The file is a plain EDF/BDF file: the header, then one data record at a time. From
    :meth:`open` on, the file holds one record (zeros, rewritten in place as the first
    second of samples arrives, with ``eegkit_samples=N`` in the header's recording
    field), so a kill at any instant leaves a file MNE reads. A record holds the shortest whole number of
    seconds with a whole number of samples (1 s for integer rates, at most 60 s; other
    rates are refused). After records are
    written they are flushed (and fsynced), then the header's record count is rewritten
    in place and flushed again, so at any instant the header counts only complete
    records on disk: after ``kill -9`` the file reads back with :func:`mne.io.read_raw`
    up to the last flushed record. (MNE also infers the count from the file size when
    the header disagrees.)

    Volt channels are stored in µV (``"uV"``), so MNE reads them back in volts. Values
    are quantised to the step ``(max - min) / (2**bits - 1)``; values outside the range
    are clipped (counted in :attr:`n_clipped`, with one warning), NaN is stored as 0 (also
    counted). On :meth:`close` the last, partial record is padded with zeros; the real
    number of samples is written in the header's recording field as
    ``eegkit_samples=N``. Channel types are not stored (EDF has no field for them);
    labels are cut to 16 characters, and characters EDF does not allow (outside
    printable ASCII) become ``?``. At most 9999 channels (the header's limit), and at
    most 2**24 values (samples x channels) per record.
    """

    type_name = "record"
    lossless = True  # a dropped chunk would be a silent gap in the file

    def __init__(self, path, format=None, physical_range=None, fsync=True, overwrite=False):
        self.path = output_path(path, "RecordSink")
        suffix = os.path.splitext(self.path)[1].lower().lstrip(".")
        fmt = (format or suffix).lower().lstrip(".") if isinstance(format or suffix, str) else format
        if fmt == "fif" or suffix == "fif":
            raise ParameterError(f"{_FIF_HINT} (got path {self.path!r})")
        if fmt not in _FORMATS:
            raise ParameterError(f"RecordSink: format must be 'edf' or 'bdf' (from the suffix or "
                                 f"the format parameter), got {format or suffix!r} for {self.path!r}")
        if suffix and suffix != fmt:  # notes.txt written as BDF: found by nothing that reads BDF
            raise ParameterError(f"RecordSink: format {fmt!r} does not match the file name "
                                 f"{self.path!r}; name it .{fmt}")
        self.format = fmt
        self.overwrite = overwrite_flag(overwrite, "RecordSink")
        self._tmp = None
        self.physical_range = _range(physical_range)
        self.fsync = bool(fsync)
        self._file = None
        self.info = None
        self.n_samples = self.n_records = self.n_clipped = 0

    # -- header -------------------------------------------------------------------
    def check(self, info):
        """Raise if the stream cannot be recorded or the file cannot be written."""
        if info.n_channels > MAX_CHANNELS:
            raise ParameterError(f"RecordSink {self.path}: {info.n_channels} channels; EDF/BDF "
                                 f"store at most {MAX_CHANNELS}")
        _, spr = _record_length(info.sfreq, self.path)
        if spr * info.n_channels > MAX_RECORD_VALUES:
            raise ParameterError(f"RecordSink {self.path}: one record would hold {spr} samples x "
                                 f"{info.n_channels} channels; at most {MAX_RECORD_VALUES} values "
                                 f"fit (lower the sampling rate or record fewer channels)")
        check_target(self.path, "RecordSink", self.overwrite)

    def open(self, info):
        self.prepare(info)
        self.commit()

    def prepare(self, info):
        """Write the header and a first record to a temporary file beside the target."""
        self.close()
        self.check(info)
        if info.kind != "timeseries":
            warnings.warn(f"RecordSink {self.path}: recording a '{info.kind}' stream; its rows "
                          f"become EDF signals at {info.sfreq:g} windows per second", stacklevel=2)
        dmin, dmax, nbytes, default = _FORMATS[self.format]
        duration, spr = _record_length(info.sfreq, self.path)
        scale, units, pmin, pmax = [], [], [], []
        for name, unit in zip(info.ch_names, info.units):
            if unit == "V":
                lo, hi = self.physical_range or (-default, default)
                scale.append(1e6)
                units.append("uV")
                lo, hi = lo * 1e6, hi * 1e6
            elif self.physical_range is None:
                raise ParameterError(
                    f"RecordSink {self.path}: channel {name!r} is in {unit!r}, which has no "
                    f"default range; give physical_range=(min, max) in {unit!r}")
            else:
                lo, hi = self.physical_range
                scale.append(1.0)
                units.append(unit)
            pmin.append(_num(lo))
            pmax.append(_num(hi))
        pmin_f, pmax_f = np.array(pmin, float), np.array(pmax, float)
        # gain and offset from the numbers as printed, exactly as a reader computes them
        self._cal = (pmax_f - pmin_f) / (dmax - dmin)
        self._offset = pmin_f - dmin * self._cal
        self._scale = np.array(scale)
        self._dlim = (dmin, dmax)
        self._nbytes = nbytes
        self._spr = spr
        self._buf = np.zeros((info.n_channels, spr))
        self._fill = 0
        self.info = info
        self.n_samples = self.n_records = self.n_clipped = 0
        self._warned = False
        self._start = datetime.datetime.now()
        self._provisional = True  # the record on disk is a placeholder, rewritten in place
        header = self._header(info, duration, units, pmin, pmax, true_samples=0)
        self._data_start = len(header)
        folder, name = os.path.split(os.path.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
            self._file = os.fdopen(fd, "wb")
            self._file.write(header)
            self._file.write(self._encode(self._buf, count=False))
            self._sync()
        except OSError as exc:
            self._fail()
            raise io_error("RecordSink", self.path, exc) from None

    def commit(self):
        """Move the prepared file to its name; from here on it is the recording."""
        if self._tmp is None:
            return
        try:
            if not self.overwrite and os.path.lexists(self.path):
                raise EegkitIOError(f"RecordSink: {self.path} appeared while opening; pass "
                                f"overwrite=True to replace it")
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.discard()
            if isinstance(exc, EegkitIOError):
                raise
            raise io_error("RecordSink", self.path, exc) from None
        self._tmp = None

    def discard(self):
        """Close and delete a prepared file that was never committed."""
        self._fail()

    def _fail(self):
        """Release the file after an error, removing it if it was never committed."""
        f, self._file, self._fill = self._file, None, 0
        if f is not None:
            try:
                f.close()
            except OSError:
                pass  # the error that brought us here is the one to report
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None

    def _header(self, info, duration, units, pmin, pmax, true_samples=None):
        """The full EDF/BDF header as bytes."""
        n = info.n_channels
        dmin, dmax = self._dlim
        version = b"\xffBIOSEMI" if self.format == "bdf" else b"0".ljust(8)
        recording = "eegkit" + (f" eegkit_samples={true_samples}" if true_samples is not None else "")
        fields = [
            version,
            _a("X X X X", 80), _a(recording, 80),
            _a(self._start.strftime("%d.%m.%y"), 8), _a(self._start.strftime("%H.%M.%S"), 8),
            _a(str(256 * (n + 1)), 8), _a("24BIT" if self.format == "bdf" else "", 44),
            _a(str(max(self.n_records, 1)), 8), _a(_num(duration), 8), _a(str(n), 4),
        ]
        labels = [_a(c, 16) for c in info.ch_names]
        fields += labels + [_a("", 80)] * n + [_a(u, 8) for u in units]
        fields += [_a(v, 8) for v in pmin] + [_a(v, 8) for v in pmax]
        fields += [_a(str(dmin), 8)] * n + [_a(str(dmax), 8)] * n
        fields += [_a("", 80)] * n + [_a(str(self._spr), 8)] * n + [_a("", 32)] * n
        header = b"".join(fields)
        assert len(header) == 256 * (n + 1)
        return header

    # -- data ---------------------------------------------------------------------
    def write(self, block, first_sample):
        if self._file is None:
            raise ParameterError(f"RecordSink {self.path}: write() before open() or after close()")
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[0] != self.info.n_channels:
            raise ParameterError(f"RecordSink {self.path}: expected blocks of shape "
                                 f"({self.info.n_channels}, n), got {block.shape}")
        if first_sample != self.n_samples:
            raise ParameterError(f"RecordSink {self.path}: got a block starting at sample "
                                 f"{first_sample}, expected {self.n_samples}; EDF/BDF records "
                                 f"are contiguous, so a gap cannot be written")
        records = []
        pos, n = 0, block.shape[1]
        if n == 0:
            return
        while pos < n:
            take = min(self._spr - self._fill, n - pos)
            self._buf[:, self._fill:self._fill + take] = block[:, pos:pos + take]
            self._fill += take
            pos += take
            if self._fill == self._spr:
                records.append(self._encode(self._buf))
                self._fill = 0
        self.n_samples += n
        if records:
            self._append(records)
        elif self._provisional:
            self._rewrite_first()

    def _encode(self, x, count=True):
        """One record (channel-major) as bytes."""
        dmin, dmax = self._dlim
        phys = x * self._scale[:, None]
        dig = np.rint((phys - self._offset[:, None]) / self._cal[:, None])
        bad = ~np.isfinite(dig)
        if bad.any():
            zero = np.rint(-self._offset / self._cal)  # the digital value of 0.0
            dig[bad] = np.broadcast_to(zero[:, None], dig.shape)[bad]
        clipped = int(np.count_nonzero((dig < dmin) | (dig > dmax))) + int(np.count_nonzero(bad))
        if clipped:
            if count:  # a rewrite of the unfinished first record counts nothing twice
                self.n_clipped += clipped
            if count and not self._warned:
                self._warned = True
                warnings.warn(f"RecordSink {self.path}: {clipped} values outside the physical "
                              f"range (or NaN) were clipped; set physical_range to widen it",
                              stacklevel=3)
            np.clip(dig, dmin, dmax, out=dig)
        dig = dig.astype("<i4")
        if self._nbytes == 2:
            return dig.astype("<i2").tobytes()
        return dig.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()

    def _append(self, records):
        """Write whole records, then count them in the header (data before count)."""
        f = self._file
        try:
            if self._provisional:  # the first real record replaces the placeholder
                f.seek(self._data_start)
            f.write(b"".join(records))
            self._sync()
            self.n_records += len(records)
            f.seek(_COUNT_OFFSET)
            f.write(_a(str(self.n_records), 8))
            if self._provisional:
                self._provisional = False
                f.seek(88)
                f.write(_a("eegkit", 80))
            f.seek(0, os.SEEK_END)
            self._sync()
        except OSError as exc:
            self._fail()
            raise io_error("RecordSink", self.path, exc) from None

    def _rewrite_first(self):
        """Put the samples of the unfinished first record on disk (zeros after them)."""
        f = self._file
        self._buf[:, self._fill:] = 0.0
        try:
            f.seek(self._data_start)
            f.write(self._encode(self._buf, count=False))
            f.seek(88)
            f.write(_a(f"eegkit eegkit_samples={self.n_samples}", 80))
            f.seek(0, os.SEEK_END)
            self._sync()
        except OSError as exc:
            self._fail()
            raise io_error("RecordSink", self.path, exc) from None

    def _sync(self):
        """Hand written bytes to the OS (survives a killed process) and maybe to disk."""
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self):
        if self._file is None:
            return
        if self._tmp is not None:  # prepared, never committed: leave no trace
            self._fail()
            return
        try:
            if self._fill:
                self._buf[:, self._fill:] = 0.0
                self._append([self._encode(self._buf)])
            if self._provisional or self.n_records * self._spr != self.n_samples:
                # record the true length where readers that care can find it
                recording = _a(f"eegkit eegkit_samples={self.n_samples}", 80)
                self._file.seek(88)
                self._file.write(recording)
                self._sync()
            self._file.close()
        except OSError as exc:
            self._fail()
            raise io_error("RecordSink", self.path, exc) from None
        finally:
            self._fail()


def _range(value):
    """(min, max) from None, a number or a pair."""
    if value is None:
        return None
    if np.ndim(value) == 0:
        value = (-abs(float(value)), abs(float(value)))
    lo, hi = (float(v) for v in value)
    if not (hi > lo and np.isfinite(lo) and np.isfinite(hi) and hi - lo < 1e300):
        raise ParameterError(f"RecordSink: physical_range must be r > 0 or (min, max) with "
                             f"min < max, finite, got {value!r}")
    return lo, hi


def _record_length(sfreq, path):
    """(record seconds, samples per record): the shortest whole second count that holds
    a whole number of samples."""
    # longer records would put minutes of data at risk in a crash
    for seconds in range(1, _MAX_RECORD_SECONDS + 1):
        spr = round(sfreq * seconds)
        if spr >= 1 and abs(spr - sfreq * seconds) <= 1e-9 * spr:
            return seconds, int(spr)
    raise ParameterError(f"RecordSink {path}: a sampling rate of {sfreq!r} Hz gives no whole "
                         f"number of samples in any record of up to {_MAX_RECORD_SECONDS} s, so "
                         f"EDF/BDF cannot store it exactly; resample the stream first")


def _num(value):
    """A number as EDF's 8 printable characters, as precise as fits."""
    value = float(value)
    if value == int(value) and len(str(int(value))) <= 8:
        return str(int(value))
    for digits in range(8, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 8:
            return text
    raise ParameterError(f"RecordSink: {value!r} does not fit an 8-character EDF field")


def _a(text, width):
    """ASCII field padded with spaces to ``width`` (cut if longer); EDF allows only
    printable ASCII, so anything else (NUL, control characters, non-ASCII) becomes ``?``."""
    text = "".join(c if " " <= c <= "~" else "?" for c in str(text))
    return text.encode("ascii")[:width].ljust(width)
