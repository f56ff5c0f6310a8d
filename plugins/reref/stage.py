"""Re-referencing: subtract, sample by sample, the mean of some channels from the EEG channels.

Both stages share the compiled kernel :func:`process_reref`; they differ only in which
channels form the reference. As in ``mne.set_eeg_reference(..., projection=False)``, the
reference is subtracted from the channels of type ``"eeg"`` only (EOG, ECG, stimulus and
other channels pass through untouched).
"""

import difflib

import numpy as np

from eegkit import ParameterError, jit, prange

TILE = 512  # samples per tile of the kernel's work row
SPLIT_SAMPLES = 8192  # blocks this long are split into spans over the cores


def setup_average(info):
    """Common average reference over the EEG channels.

    Parameters
    ----------
    info : StreamInfo
        Input stream (a time series with at least one ``"eeg"`` channel).

    Returns
    -------
    tuple
        ``(targets, refs, work)``: both the indices of the EEG channels, and a work row.
    """
    targets = _eeg_channels(info, "reref.average")
    return targets, targets.copy(), np.zeros(TILE, dtype=np.float64)


def setup_channels(info, ref_channels=()):
    """Reference to the mean of the channels named in ``ref_channels``.

    Parameters
    ----------
    info : StreamInfo
        Input stream (a time series with at least one ``"eeg"`` channel).
    ref_channels : list of str
        Names of the reference channels (any type; e.g. ``["TP9", "TP10"]`` for linked
        mastoids). A reference channel of type ``"eeg"`` is re-referenced too, so a single
        reference channel becomes zero, as in MNE.

    Returns
    -------
    tuple
        ``(targets, refs, work)``: indices of the EEG channels and of the reference
        channels, and a work row.
    """
    stage = "reref.channels"
    targets = _eeg_channels(info, stage)
    names = list(info.ch_names)
    if isinstance(ref_channels, str):
        ref_channels = [ref_channels]
    if len(ref_channels) == 0:
        raise ParameterError(f"{stage}: 'ref_channels' is empty; name at least one channel, "
                             f"e.g. ref_channels={names[:2]!r}")
    refs = []
    for name in ref_channels:
        if name not in names:
            hint = _spelling_hint(name, names)
            raise ParameterError(f"{stage}: unknown channel {name!r} in 'ref_channels'; "
                                 f"available channels are {', '.join(names)}.{hint}")
        index = names.index(name)
        if index in refs:
            raise ParameterError(f"{stage}: channel {name!r} appears twice in 'ref_channels'")
        refs.append(index)
    return targets, np.array(refs, dtype=np.int64), np.zeros(TILE, dtype=np.float64)


def process_reref(x, targets, refs, work):
    """Subtract the mean of rows ``refs`` from rows ``targets``, in place, per sample.

    Samples are taken in tiles of ``work.size`` columns so every row is read
    sequentially (large offline blocks stay cache-friendly) without allocating.

    Parameters
    ----------
    x : ndarray, shape (n_channels, n_samples)
        Block, modified in place (float64 or float32).
    targets : ndarray of int64
        Rows that are re-referenced.
    refs : ndarray of int64
        Rows whose mean is the reference (summed in float64, in the given order).
    work : ndarray of float64
        Scratch row; its length is the tile size.
    """
    n_samples = x.shape[1]
    if n_samples < SPLIT_SAMPLES:
        _reref_span(x, targets, refs, work, 0, n_samples)
        return
    # long offline blocks: spans of samples over the cores, each with its own work row
    for b in prange((n_samples + SPLIT_SAMPLES - 1) // SPLIT_SAMPLES):
        start = b * SPLIT_SAMPLES
        _reref_span(x, targets, refs, np.empty(work.shape[0]), start,
                    min(n_samples, start + SPLIT_SAMPLES))


@jit
def _reref_span(x, targets, refs, work, start, stop):
    """Re-reference samples ``start:stop`` tile by tile (see :func:`process_reref`)."""
    n_refs = refs.shape[0]
    tile = work.shape[0]
    for t0 in range(start, stop, tile):
        m = min(tile, stop - t0)
        # the whole mean is taken before any row changes: a reference row may be a target
        for t in range(m):
            work[t] = 0.0
        for i in range(n_refs):
            row = refs[i]
            for t in range(m):
                work[t] += x[row, t0 + t]
        for t in range(m):
            work[t] /= n_refs
        for i in range(targets.shape[0]):
            row = targets[i]
            for t in range(m):
                x[row, t0 + t] -= work[t]


def _spelling_hint(name, names):
    """' Did you mean ...?' for a channel name differing in case or spelling, else ''."""
    same_case = [n for n in names if n.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, names, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _eeg_channels(info, stage):
    """Indices of the ``"eeg"`` channels, or a ParameterError when there is none."""
    if info.kind != "timeseries":
        raise ParameterError(f"{stage}: input must be a timeseries stream, got a {info.kind!r} "
                             f"stream")
    targets = np.array([i for i, t in enumerate(info.ch_types) if t == "eeg"], dtype=np.int64)
    if targets.size == 0:
        types = ", ".join(sorted(set(info.ch_types)))
        raise ParameterError(f"{stage}: the input has no channel of type 'eeg' to re-reference "
                             f"(channel types: {types})")
    return targets
