"""Soak: the bundled pipeline (notch → band-pass → average reference → band powers) over
a long synthetic recording at full speed, with parameter changes and hot reloads of a
temporary plugin copy; streamed outputs equal a never-reloaded reference, memory flat.

The full hour (64 channels at 1000 Hz) is marked slow; a reduced minute runs always.
Figures are printed (``pytest -s``) and recorded in eegkit/docs/reliability.md.
"""

from __future__ import annotations

import json

import pytest

from tests.soak import soak

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def check(result, reloads):
    shown = {k: v for k, v in result.items() if k not in ("rss_mb", "traced_mb")}
    print("\nsoak: " + json.dumps(shown))
    assert result["equal"] and result["finite"]
    assert result["max_abs_diff"] == {"car": 0.0, "bands": 0.0}
    assert result["reloads"] == reloads
    assert result["reload_states"] and set(result["reload_states"]) == {"kept"}
    assert set(result["status"].values()) == {"ok"} and result["nonfinite_chunks"] == 0
    # between reloads nothing accumulates: no Python objects, no live arrays, no RSS
    assert abs(result["gc_objects_growth_steady"]) < 500
    assert result["traced_growth_kb_steady"] < 1024
    assert result["rss_growth_mb_steady"] < 16


@pytest.mark.slow  # a minute of data with reloads
def test_reduced_soak_one_minute():
    result = soak(60, n_channels=64, sfreq=1000.0, span_seconds=10, n_reloads=2)
    assert result["seconds_of_data"] == 60 and result["spans"] == 6
    assert result["param_changes"] == 3
    check(result, reloads=2)


@pytest.mark.slow
def test_full_soak_one_hour():
    result = soak(3600, n_channels=64, sfreq=1000.0)
    assert result["seconds_of_data"] == 3600 and result["chunks"] == 112500
    assert result["param_changes"] == 30
    check(result, reloads=4)
