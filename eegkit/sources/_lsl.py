"""LSLSource: a Lab Streaming Layer inlet (real amplifiers, or any LSL outlet)."""

from __future__ import annotations

import time

import numpy as np

from .._check import positive_int
from .._errors import ParameterError, SourceError
from .._info import StreamInfo
from .._optional import require
from ._base import Source

# unit spellings seen in LSL stream descriptions -> (eegkit unit, factor to it)
_VOLT_UNITS = {"v": 1.0, "volt": 1.0, "volts": 1.0, "mv": 1e-3, "millivolt": 1e-3,
               "millivolts": 1e-3, "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "microvolt": 1e-6,
               "microvolts": 1e-6, "nv": 1e-9, "nanovolts": 1e-9}
_VOLT_TYPES = {"eeg", "eog", "ecg", "emg", "seeg", "ecog", "dbs", "bio"}
_RECONNECT_EVERY = 0.2  # seconds between looks for a lost stream
_MAX_TIMEOUT = 3600.0


class LSLSource(Source):
    """Samples from a Lab Streaming Layer stream, resolved by name or type.

    Parameters
    ----------
    name : str, optional
        Stream name to look for (the ``name`` of the outlet).
    type : str, optional
        Stream type to look for (e.g. ``"EEG"``) when no name is given, or to narrow it.
    timeout : float
        Seconds to wait for the stream to appear.
    max_chunk : int
        Most samples one :meth:`read` pulls.

    Attributes
    ----------
    last_timestamps : ndarray
        LSL timestamps (local clock, clock offset to the sender corrected by liblsl's
        clock synchronisation) of the samples of the last :meth:`read`.
    gaps : int
        Number of interruptions seen (stream lost and found again, or a jump in time).
    samples_lost : int
        Samples missing over all gaps, estimated from timestamps and the nominal rate.
    reconnects : int
        Times the stream was lost and found again.

    Notes
    -----
    Channel names, types and units come from the stream description
    (``desc/channels/channel/label|type|unit``), with ``ch0, ch1, ...`` and ``eeg`` as
    fallbacks (unit ``"NA"`` when the stream declares none). Voltages in mV, µV or nV (or MNE-LSL's exponent codes such as ``"-6"``)
    are scaled to volts so blocks follow MNE's convention.

    If the outlet disappears, :meth:`read` keeps returning empty blocks while a
    background resolver looks for a stream with the same name and type; once found,
    reading resumes and the interruption is reported, never hidden: a marker
    ``"gap: N samples lost"`` at the first sample after the gap, and the counters
    :attr:`gaps` and :attr:`samples_lost`. A jump in timestamps of more than 100 ms
    (and at least 2 samples) beyond the nominal sample period is reported the same way.
    """

    type_name = "lsl"
    live = True

    def __init__(self, name=None, type=None, timeout=5.0, max_chunk=1024):
        self._lsl = require("pylsl", "lsl", "LSLSource")
        max_chunk = positive_int(max_chunk, "max_chunk", "LSLSource")
        try:
            seconds = float(timeout)
        except (TypeError, ValueError):
            seconds = -1.0
        if not 0 < seconds <= _MAX_TIMEOUT:  # NaN or inf would wait for ever
            raise ParameterError(f"LSLSource: timeout must be a number of seconds above 0 and at "
                                 f"most {_MAX_TIMEOUT:g}, got {timeout!r}")
        self.name, self.type, self.timeout = name, type, seconds
        self.max_chunk = int(max_chunk)
        self.last_timestamps = np.zeros(0)
        self.gaps = self.samples_lost = self.reconnects = 0
        self._markers = []
        self._pos = 0
        self._last_ts = None
        self._resolver = None
        self._next_look = 0.0
        self._inlet = None
        self._after_reconnect = False
        # where LostError lives moved between pylsl versions; it is a RuntimeError
        self._lost_error = (getattr(self._lsl, "LostError", None)
                            or getattr(getattr(self._lsl, "util", None), "LostError", None)
                            or RuntimeError)
        stream = self._resolve_first()
        self._open(stream)
        full = self._inlet.info(self.timeout)
        self.info, self._scale = _stream_info(full, self._dtype)

    # -- connection ---------------------------------------------------------------
    def _query(self):
        """(prop, value) used to find the stream."""
        if self.name is not None:
            return "name", str(self.name)
        if self.type is not None:
            return "type", str(self.type)
        return None, None

    def _matches(self, info):
        """True when a resolved stream fits both name and type."""
        return ((self.name is None or info.name() == self.name)
                and (self.type is None or info.type() == self.type))

    def _resolve_first(self):
        """Find the stream within ``timeout`` or raise, listing the streams seen."""
        lsl = self._lsl
        prop, value = self._query()
        deadline = time.monotonic() + self.timeout
        while True:
            left = max(deadline - time.monotonic(), 0.0)
            if prop is None:
                found = lsl.resolve_streams(wait_time=min(left, 1.0))
            else:
                found = lsl.resolve_byprop(prop, value, minimum=1, timeout=left)
            found = [s for s in found if self._matches(s)]
            if found or time.monotonic() >= deadline:
                break
        if not found:
            seen = lsl.resolve_streams(wait_time=0.5)
            listing = ", ".join(f"'{s.name()}' (type '{s.type()}', {s.channel_count()} ch, "
                                f"{s.nominal_srate():g} Hz)" for s in seen) or "none"
            raise SourceError(f"LSLSource: no LSL stream with {self._describe()} appeared within "
                              f"{self.timeout:g} s; streams seen: {listing}")
        return found[0]

    def _describe(self):
        """Human form of the query."""
        parts = [f"{k}={v!r}" for k, v in (("name", self.name), ("type", self.type)) if v is not None]
        return " and ".join(parts) or "any name and type"

    def _open(self, stream):
        """Open an inlet on ``stream`` (a resolved pylsl StreamInfo)."""
        lsl = self._lsl
        fmt = stream.channel_format()
        if fmt in (lsl.cf_string,) or stream.nominal_srate() <= 0:
            raise SourceError(
                f"LSLSource: stream '{stream.name()}' is not a regular numeric stream "
                f"(format {fmt}, nominal rate {stream.nominal_srate():g} Hz); marker and "
                f"irregular-rate streams are not supported as a data source")
        self._dtype = np.float32 if fmt == lsl.cf_float32 else np.float64
        inlet_dtype = np.float32 if fmt == lsl.cf_float32 else (np.float64 if fmt == lsl.cf_double64 else None)
        # recover=False: we notice the loss ourselves, so the gap can be reported
        self._inlet = lsl.StreamInlet(stream, max_chunklen=0, recover=False,
                                      processing_flags=lsl.proc_clocksync)
        self._inlet.open_stream(self.timeout)
        # the first clock-offset estimate takes ~0.5 s; pay it here, not in a read()
        self._inlet.time_correction(timeout=self.timeout)
        self._uid = stream.uid()
        n_ch = stream.channel_count()
        self._buf = np.empty((self.max_chunk, n_ch), dtype=inlet_dtype or np.float64)
        # integer streams are pulled through liblsl's own conversion to double
        self._pull_dtype_ok = inlet_dtype is not None
        self._n_ch = n_ch

    def _lost(self):
        """Drop the inlet and start looking for the stream again."""
        try:
            self._inlet.close_stream()
        except Exception:  # the connection is already gone
            pass
        self._inlet = None
        prop, value = self._query()
        lsl = self._lsl
        self._resolver = (lsl.ContinuousResolver(prop=prop, value=value, forget_after=1.0)
                          if prop else lsl.ContinuousResolver(forget_after=1.0))

    def _try_reconnect(self):
        """Reopen the inlet if the stream is visible again (never blocks long)."""
        now = time.monotonic()
        if now < self._next_look:
            return False
        self._next_look = now + _RECONNECT_EVERY
        for s in self._resolver.results():
            if s.uid() != self._uid and self._matches(s) and s.channel_count() == self.info.n_channels:
                self._open(s)
                self._resolver = None
                self.reconnects += 1
                self._after_reconnect = True
                return True
        return False

    # -- reading ------------------------------------------------------------------
    def read(self, n):
        if self._inlet is None and not self._try_reconnect():
            self.last_timestamps = np.zeros(0)
            return np.zeros((self.info.n_channels, 0), dtype=self.info.dtype)
        k = max(0, min(int(n), self.max_chunk))
        if k == 0:
            return np.zeros((self.info.n_channels, 0), dtype=self.info.dtype)
        try:
            if self._pull_dtype_ok:
                _, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=k, dest_obj=self._buf)
                data = self._buf[:len(ts)]
            else:
                samples, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=k)
                data = np.asarray(samples, dtype=np.float64).reshape(len(ts), self._n_ch)
        except self._lost_error:
            self._lost()
            self.last_timestamps = np.zeros(0)
            return np.zeros((self.info.n_channels, 0), dtype=self.info.dtype)
        ts = np.asarray(ts, dtype=np.float64)
        if len(ts):
            self._check_gaps(ts)
            self._last_ts = ts[-1]
        self.last_timestamps = ts
        block = np.ascontiguousarray(data.T, dtype=self.info.dtype)
        if self._scale is not None:
            block *= self._scale[:, None]
        self._pos += len(ts)
        return block

    def _check_gaps(self, ts):
        """Report samples missing before or inside this block, from its timestamps."""
        reconnected, self._after_reconnect = self._after_reconnect, False
        period = 1.0 / self.info.sfreq
        prev = np.concatenate([[self._last_ts], ts]) if self._last_ts is not None else ts
        lost = np.rint(np.diff(prev) / period).astype(np.int64) - 1
        offset = 0 if self._last_ts is not None else 1  # index in ts of the sample after each diff
        jumps = np.flatnonzero((lost >= 2) & (lost * period > 0.1))
        if reconnected and self._last_ts is not None and 0 not in jumps:
            jumps = np.concatenate([[0], jumps])  # always report a reconnection, even as 0
        for j in jumps:
            n = max(int(lost[j]), 0)
            self.gaps += 1
            self.samples_lost += n
            self._markers.append((self._pos + int(j) + offset, f"gap: {n} samples lost"))

    def markers(self):
        out, self._markers = self._markers, []
        return out

    def close(self):
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None
        self._resolver = None

    def to_spec(self):
        params = {}
        if self.name is not None:
            params["name"] = self.name
        if self.type is not None:
            params["type"] = self.type
        params["timeout"] = self.timeout
        if self.max_chunk != 1024:
            params["max_chunk"] = self.max_chunk
        return {"type": "lsl", "params": params}

    def __repr__(self):
        state = "connected" if self._inlet is not None else "lost, looking for it"
        return (f"LSLSource({self._describe()}, {self.info.n_channels} channels, "
                f"{self.info.sfreq:g} Hz, {state})")


def _stream_info(full, dtype):
    """(StreamInfo, per-channel scale or None) from a pylsl StreamInfo with its desc."""
    n = full.channel_count()
    names, types, units, scale = [], [], [], np.ones(n)
    ch = full.desc().child("channels").child("channel")
    for i in range(n):
        label = ch.child_value("label") if not ch.empty() else ""
        ctype = (ch.child_value("type") if not ch.empty() else "") or full.type() or "eeg"
        unit = ch.child_value("unit") if not ch.empty() else ""
        ctype = ctype.strip().lower()
        ctype = ctype if ctype in _KNOWN_TYPES else ("eeg" if ctype in ("", "eeg") else "misc")
        names.append(label.strip() or f"ch{i}")
        types.append(ctype)
        unit_name, factor = _unit(unit, ctype)
        units.append(unit_name)
        scale[i] = factor
        if not ch.empty():
            ch = ch.next_sibling("channel")
    if len(set(names)) != len(names):
        # duplicate labels would break name lookups; keep them recognisable
        names = [f"{nm}-{i}" if names.count(nm) > 1 else nm for i, nm in enumerate(names)]
    info = StreamInfo(sfreq=full.nominal_srate(), ch_names=tuple(names), ch_types=tuple(types),
                      units=tuple(units), dtype=np.dtype(dtype).name)
    return info, (None if np.all(scale == 1.0) else scale)


_KNOWN_TYPES = {"eeg", "eog", "ecg", "emg", "seeg", "ecog", "dbs", "bio", "stim", "misc",
                "resp", "gsr", "temperature", "mag", "grad", "fnirs_cw_amplitude", "hbo", "hbr"}


def _unit(text, ctype):
    """(unit name, factor to it) for an LSL unit string."""
    text = (text or "").strip()
    key = text.lower().replace(" ", "")
    if key in _VOLT_UNITS:
        return "V", _VOLT_UNITS[key]
    try:  # MNE-LSL writes the FIFF unit multiplier exponent ("0", "-6")
        exponent = int(text)
    except ValueError:
        pass
    else:
        return ("V" if ctype in _VOLT_TYPES else "NA"), 10.0 ** exponent
    # no unit given: the scale is unknown, so say so rather than claim volts
    return (text or "NA"), 1.0
