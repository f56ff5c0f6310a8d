"""BrainFlowSource on BrainFlow's synthetic board (no hardware)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

bf = pytest.importorskip("brainflow.board_shim")

from eegkit import MissingExtraError, ParameterError, SourceError  # noqa: E402
from eegkit.sources import make_source, parse_source_arg  # noqa: E402
from eegkit.sources._brainflow import BrainFlowSource  # noqa: E402
from eegkit.testing import pull  # noqa: E402




def test_synthetic_board_gives_named_eeg_in_volts():
    board = bf.BoardIds.SYNTHETIC_BOARD.value
    with BrainFlowSource() as src:
        assert src.live and src.n_samples is None
        assert src.info.sfreq == bf.BoardShim.get_sampling_rate(board) == 250
        assert src.info.ch_names == tuple(bf.BoardShim.get_eeg_names(board))
        assert len(src.info.ch_names) == len(bf.BoardShim.get_eeg_channels(board)) == 16
        assert set(src.info.units) == {"V"}
        src.insert_marker(3)
        data, stamps = pull(src, 500, timeout=10.0)  # 2 s
        markers = src.markers()
    assert data.shape == (16, 500) and data.dtype == np.float64 and data.flags.c_contiguous
    # BrainFlow's synthetic EEG is tens to hundreds of µV: in volts it is well below 1 mV
    assert 1e-7 < np.median(np.std(data, axis=1)) < 1e-3
    assert stamps.shape == (500,) and np.all(np.diff(stamps) >= 0) and stamps[0] > 1e9  # Unix time
    assert len(markers) == 1 and markers[0][1] == "3" and 0 <= markers[0][0] < 500


def test_channel_subset_and_board_names():
    with BrainFlowSource(board_id="SYNTHETIC_BOARD", channels=["Oz", "Cz"]) as src:
        assert src.info.ch_names == ("Oz", "Cz")
        data, _ = pull(src, 50, timeout=10.0)
        assert data.shape == (2, 50)
        assert src.to_spec() == {"type": "brainflow",
                                 "params": {"board_id": -1, "channels": ["Oz", "Cz"]}}
    with pytest.raises(ParameterError, match=r"\['Xz'\] are not on board -1; .*'Fz'"):
        BrainFlowSource(channels=["Xz"])
    with pytest.raises(ParameterError, match="unknown board 'NO_SUCH_BOARD'"):
        BrainFlowSource(board_id="NO_SUCH_BOARD")


def test_spec_from_command_line():
    src = make_source(parse_source_arg("brainflow:-1"))
    try:
        assert src.board_id == -1 and src.to_spec() == {"type": "brainflow", "params": {"board_id": -1}}
    finally:
        src.close()
    src.close()  # twice is fine
    with pytest.raises(SourceError, match="closed"):
        src.read(10)


def test_board_that_cannot_start_is_a_source_error():
    with pytest.raises(SourceError, match=r"could not start board 0 \(serial_port='/dev/eegkit-none'\)"):
        BrainFlowSource(board_id="CYTON_BOARD", serial_port="/dev/eegkit-none")


def test_missing_brainflow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "brainflow", None)
    monkeypatch.setitem(sys.modules, "brainflow.board_shim", None)
    with pytest.raises(MissingExtraError, match=r"'brainflow'.*pip install 'eegkit\[brainflow\]'"):
        BrainFlowSource()
