"""LSLSink: publish a stage's output as a Lab Streaming Layer outlet."""

from __future__ import annotations

import numpy as np

from .._errors import ParameterError
from .._optional import require
from . import Sink


class LSLSink(Sink):
    """An LSL outlet that publishes every block it gets.

    Parameters
    ----------
    name : str
        Stream name, as inlets resolve it.
    type : str
        Stream type (``"EEG"``; spectrum and feature streams keep it unless changed).
    source_id : str, optional
        Unique id of the stream; lets inlets with recovery on find it again after a
        restart. Default ``"eegkit:<name>:<type>"``.

    Notes
    -----
    The stream description carries one ``desc/channels/channel`` entry per row with
    ``label``, ``type`` and ``unit`` (the stream's units, e.g. ``"V"``: values are sent
    unscaled), plus ``desc/eegkit`` with the stream kind and, for spectrum and feature
    streams, the axis labels and values. Samples are ``float32`` or ``double64`` as the
    stream's dtype; each block is pushed as one chunk, timestamped by liblsl at push.
    """

    type_name = "lsl"

    def __init__(self, name, type="EEG", source_id=None):
        self._lsl = require("pylsl", "lsl", "LSLSink")
        if not isinstance(name, str) or not name:
            raise ParameterError(f"LSLSink: name must be a non-empty string, got {name!r}")
        self.name, self.type = name, str(type)
        self.source_id = source_id or f"eegkit:{name}:{self.type}"
        self._outlet = None
        self.info = None
        self.n_pushed = 0

    def open(self, info):
        lsl = self._lsl
        self.close()
        fmt = lsl.cf_float32 if info.dtype == "float32" else lsl.cf_double64
        sinfo = lsl.StreamInfo(self.name, self.type, info.n_channels, info.sfreq, fmt,
                               self.source_id)
        channels = sinfo.desc().append_child("channels")
        for name, ctype, unit in zip(info.ch_names, info.ch_types, info.units):
            ch = channels.append_child("channel")
            ch.append_child_value("label", name)
            ch.append_child_value("type", ctype)
            ch.append_child_value("unit", unit)
        meta = sinfo.desc().append_child("eegkit")
        meta.append_child_value("kind", info.kind)
        if info.axis:
            axis = meta.append_child("axis")
            for label, value in zip(info.axis, info.axis_values):
                item = axis.append_child("item")
                item.append_child_value("label", label)
                item.append_child_value("value", repr(value))
        self._dtype = np.dtype(info.dtype)
        self._outlet = lsl.StreamOutlet(sinfo)
        self.info = info
        self.n_pushed = 0

    def write(self, block, first_sample):
        if self._outlet is None:
            raise ParameterError("LSLSink: write() before open(); open the sink with a StreamInfo")
        if block.ndim != 2 or block.shape[0] != self.info.n_channels:
            raise ParameterError(f"LSLSink '{self.name}': expected blocks of shape "
                                 f"({self.info.n_channels}, n), got {block.shape}")
        if block.shape[1] == 0:
            return
        # liblsl wants samples as rows
        self._outlet.push_chunk(np.ascontiguousarray(block.T, dtype=self._dtype))
        self.n_pushed += block.shape[1]

    def have_consumers(self) -> bool:
        """True when at least one inlet is connected."""
        return self._outlet is not None and self._outlet.have_consumers()

    def close(self):
        # dropping the last reference destroys the outlet; inlets then see it lost
        self._outlet = None
