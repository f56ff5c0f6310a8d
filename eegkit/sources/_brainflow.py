"""BrainFlowSource: EEG boards through BrainFlow (the synthetic board needs no hardware)."""

from __future__ import annotations

import numpy as np

from .._errors import ParameterError, SourceError
from .._info import StreamInfo
from .._optional import require
from ._base import Source

_RING = 450000  # samples BrainFlow keeps before it overwrites: 30 min at 250 Hz


class BrainFlowSource(Source):
    """EEG rows of a BrainFlow board, in volts.

    Parameters
    ----------
    board_id : int or str
        BrainFlow board id, or its name in ``BoardIds`` (``"SYNTHETIC_BOARD"``).
        Default ``-1``, the synthetic board (no hardware needed).
    serial_port : str
        Serial port of boards that need one (``"/dev/ttyUSB0"``, ``"COM3"``).
    channels : "eeg" or list of str
        ``"eeg"``: every EEG row of the board. A list picks EEG channels by name.

    Attributes
    ----------
    last_timestamps : ndarray
        Board timestamps (Unix time, s) of the samples of the last :meth:`read`.

    Notes
    -----
    Names come from ``BoardShim.get_eeg_names`` (``EEG1, EEG2, ...`` when the board
    has none). BrainFlow delivers microvolts; blocks are converted to volts, as in MNE.
    Non-zero values of the board's marker row (:meth:`insert_marker`) come out of
    :meth:`markers` as ``(sample_index, str(value))``.
    """

    type_name = "brainflow"
    live = True

    def __init__(self, board_id=-1, serial_port="", channels="eeg"):
        bf = require("brainflow.board_shim", "brainflow", "BrainFlowSource")
        self.board_id = _board_id(bf, board_id)
        self.serial_port = str(serial_port or "")
        self.channels = list(channels) if isinstance(channels, (list, tuple)) else channels
        bs = bf.BoardShim
        bs.disable_board_logger()
        try:
            rows = list(bs.get_eeg_channels(self.board_id))
            sfreq = bs.get_sampling_rate(self.board_id)
        except Exception as exc:
            raise SourceError(f"BrainFlowSource: board {board_id!r} has no EEG channels "
                              f"described by BrainFlow: {exc}") from exc
        try:
            names = list(bs.get_eeg_names(self.board_id))
        except Exception:  # boards without a montage
            names = []
        if len(names) != len(rows) or len(set(names)) != len(names):
            names = [f"EEG{i + 1}" for i in range(len(rows))]
        if self.channels != "eeg":
            if isinstance(self.channels, str):
                raise ParameterError(f"BrainFlowSource: channels must be 'eeg' or a list of "
                                     f"names, got {self.channels!r}")
            missing = [c for c in self.channels if c not in names]
            if missing:
                raise ParameterError(f"BrainFlowSource: channels {missing} are not on board "
                                     f"{self.board_id}; its EEG channels are {names}")
            rows = [rows[names.index(c)] for c in self.channels]
            names = list(self.channels)
        self._rows = np.array(rows)
        self._ts_row = _optional_row(bs.get_timestamp_channel, self.board_id)
        self._marker_row = _optional_row(bs.get_marker_channel, self.board_id)
        self.info = StreamInfo(sfreq=float(sfreq), ch_names=tuple(names), ch_types="eeg",
                               units="V", dtype="float64")
        self.last_timestamps = np.zeros(0)
        self._markers = []
        self._pos = 0
        params = bf.BrainFlowInputParams()
        params.serial_port = self.serial_port
        self._board = bs(self.board_id, params)
        try:
            self._board.prepare_session()
            self._board.start_stream(_RING)
        except Exception as exc:
            self._release()
            raise SourceError(f"BrainFlowSource: could not start board {self.board_id} "
                              f"(serial_port={self.serial_port!r}): {exc}") from exc

    def read(self, n):
        k = max(0, int(n))
        if self._board is None:
            raise SourceError("BrainFlowSource: the board was closed; open a new source")
        if k == 0:
            return np.zeros((self.info.n_channels, 0))
        try:
            data = self._board.get_board_data(k)  # oldest samples first, removed from the ring
        except Exception as exc:
            raise SourceError(f"BrainFlowSource: reading board {self.board_id} failed: {exc}") from exc
        block = np.ascontiguousarray(data[self._rows], dtype=np.float64)
        block *= 1e-6  # BrainFlow gives µV
        if self._ts_row is not None:
            self.last_timestamps = np.array(data[self._ts_row], dtype=np.float64)
        if self._marker_row is not None:
            hits = np.flatnonzero(data[self._marker_row])
            self._markers += [(self._pos + int(i), f"{data[self._marker_row, i]:g}") for i in hits]
        self._pos += block.shape[1]
        return block

    def insert_marker(self, value: float) -> None:
        """Tag the board's current sample with ``value`` (non-zero); it comes back
        through :meth:`markers` at the sample where the board put it."""
        if not value:
            raise ParameterError("BrainFlowSource.insert_marker: value must be non-zero "
                                 "(0 means 'no marker' in BrainFlow's marker row)")
        self._board.insert_marker(float(value))

    def markers(self):
        out, self._markers = self._markers, []
        return out

    def _release(self):
        """Release the session, ignoring a board that is already gone."""
        try:
            if self._board.is_prepared():
                self._board.release_session()
        except Exception:
            pass
        self._board = None

    def close(self):
        if getattr(self, "_board", None) is None:
            return
        try:
            self._board.stop_stream()
        except Exception:  # not streaming (already stopped or failed to start)
            pass
        self._release()

    def to_spec(self):
        params = {"board_id": self.board_id}
        if self.serial_port:
            params["serial_port"] = self.serial_port
        if self.channels != "eeg":
            params["channels"] = self.channels
        return {"type": "brainflow", "params": params}

    def __repr__(self):
        return (f"BrainFlowSource(board_id={self.board_id}, {self.info.n_channels} channels, "
                f"{self.info.sfreq:g} Hz)")


def _board_id(bf, board_id):
    """Board id as an int, from an int or a ``BoardIds`` name."""
    if isinstance(board_id, str):
        try:
            return int(board_id)
        except ValueError:
            pass
        try:
            return bf.BoardIds[board_id.upper()].value
        except KeyError:
            raise ParameterError(f"BrainFlowSource: unknown board {board_id!r}; give a board id "
                                 f"or a BoardIds name such as 'SYNTHETIC_BOARD'") from None
    try:
        return int(board_id)
    except (TypeError, ValueError):
        raise ParameterError(f"BrainFlowSource: board_id must be an int or a BoardIds name, "
                             f"got {board_id!r}") from None


def _optional_row(getter, board_id):
    """A board row index, or None when the board has no such row."""
    try:
        return int(getter(board_id))
    except Exception:
        return None
