"""Channel positions for the topomap view, from MNE's standard 10-05 montage."""

from __future__ import annotations

import warnings

import numpy as np

from .._info import StreamInfo
from .._optional import require

#: head radius of MNE's default sphere (m): the projection puts the equator on it
_HEAD_RADIUS = 0.095


def topomap_positions(info) -> dict:
    """2-D positions of a stream's channels for a topomap, from their names.

    The names are looked up (case-insensitively) in MNE's ``standard_1005`` montage and
    projected as MNE's ``_auto_topomap_coords`` does (azimuthal equidistant about the
    origin of MNE's default head sphere), in units of that sphere's radius: the head
    outline is the unit circle.

    Parameters
    ----------
    info : StreamInfo or dict
        The stream; for a spectrum or features stream, its channels' base names
        (``"Cz"`` of ``"Cz:alpha"``) are used.

    Returns
    -------
    dict
        ``ch_names`` (the base names), ``pos`` (``[x, y]`` per channel, nose towards
        +y, or ``None`` for a name the montage does not have) and ``missing`` (those
        names).
    """
    info = info if isinstance(info, StreamInfo) else StreamInfo.from_dict(dict(info))
    mne = require("mne", "io", "topomap channel positions")
    names = _base_names(info)
    with warnings.catch_warnings():  # MNE >= 1.13 renames it colin27_1005: same positions
        warnings.simplefilter("ignore", FutureWarning)
        montage = mne.channels.make_standard_montage("standard_1005")
    lookup = {n.lower(): n for n in montage.ch_names}
    known = sorted({lookup[n.lower()] for n in names if n.lower() in lookup})
    xy = {}
    if known:
        # through an Info, so positions are in MNE's head frame (from the montage's fiducials)
        minfo = mne.create_info(known, 100.0, "eeg")
        minfo.set_montage(montage)
        xyz = np.array([ch["loc"][:3] for ch in minfo["chs"]])
        norm = np.linalg.norm(xyz, axis=1)
        polar = np.arccos(np.clip(xyz[:, 2] / norm, -1.0, 1.0))
        azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
        radius = polar / (np.pi / 2) * norm / _HEAD_RADIUS  # in head radii: the outline is the unit circle
        for name, r, a in zip(known, radius, azimuth):
            xy[name] = [round(float(r * np.cos(a)), 5), round(float(r * np.sin(a)), 5)]
    pos = [xy.get(lookup.get(n.lower(), "")) for n in names]
    return {"ch_names": names, "pos": pos, "missing": [n for n, p in zip(names, pos) if p is None]}


def _base_names(info) -> list:
    """Channel names without the axis item ("Cz" of "Cz:alpha"), once per channel."""
    if info.kind == "timeseries" or not info.axis:
        return list(info.ch_names)
    return [n.rsplit(":", 1)[0] for n in info.ch_names[::len(info.axis)]]
