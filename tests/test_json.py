"""Pipeline JSON: round trip, and validation errors that name stage and field."""

import json

import numpy as np
import pytest

import eegkit
from eegkit import ParameterError, PipelineError


def build():
    p = eegkit.Pipeline(source={"type": "synthetic", "params": {"n_channels": 4, "sfreq": 250.0, "seed": 2}})
    p.add("filters.notch", id="notch", freq=50.0, harmonics=2)
    p.add("filters.bandpass", id="bp", low=1.0, high=40.0)
    p.add("reref.average", id="car", input="bp")
    return p


def doc():
    return json.loads(build().to_json())


def test_round_trip_identical_output(tmp_path, eeg):
    x, info = eeg
    p = build()
    path = tmp_path / "pipe.json"
    p.to_json(path)
    q = eegkit.Pipeline.from_json(path)
    assert q.to_dict() == p.to_dict()
    a = p.process(x[:4], sfreq=250.0)
    b = q.process(x[:4], sfreq=250.0)
    for key in a:
        assert np.array_equal(a[key], b[key])
    d = json.loads(path.read_text())
    assert d["eegkit_pipeline"] == 1 and d["stages"][0]["plugin_version"]


def err(d, exc=PipelineError):
    with pytest.raises(exc) as e:
        eegkit.Pipeline.from_dict(d, where="pipe.json")
    return str(e.value)


def test_unknown_stage_type_names_stage():
    d = doc()
    d["stages"][1]["type"] = "filters.bandpas"
    msg = err(d)
    assert "pipe.json: stage 'bp'" in msg and "Did you mean 'filters.bandpass'" in msg


def test_missing_plugin():
    d = doc()
    d["stages"][0]["type"] = "nosuchplugin.thing"
    assert "unknown stage type 'nosuchplugin.thing'" in err(d)


def test_bad_parameter_type_names_stage_and_param():
    d = doc()
    d["stages"][1]["params"]["order"] = "4"
    msg = err(d, ParameterError)
    assert "stage 'bp'" in msg and "parameter 'order' expects int, got str '4'" in msg


def test_bad_input_reference():
    d = doc()
    d["stages"][2]["input"] = "later"
    msg = err(d)
    assert "stage 'car'" in msg and "'later'" in msg and "source, notch, bp" in msg


def test_forward_reference_rejected():
    d = doc()
    d["stages"][0]["input"] = "car"
    assert "stage 'notch'" in err(d)


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.pop("eegkit_pipeline"), ["missing \"eegkit_pipeline\""]),
    (lambda d: d.update(eegkit_pipeline=7), ["format 7", "newer eegkit", "reads format 1"]),
    (lambda d: d.update(eegkit_pipeline="1"), ["must be the integer 1"]),
    (lambda d: d.update(stages={}), ["\"stages\" must be a list"]),
    (lambda d: d.update(extra=1), ["unknown key(s) ['extra']"]),
    (lambda d: d["stages"][0].update(module="os"), ["stage 'notch'", "unknown key(s) ['module']"]),
    (lambda d: d["stages"][1].update(id="notch"), ["id 'notch' is used twice"]),
    (lambda d: d["stages"][1].update(id=""), ["stages[1]", "\"id\""]),
    (lambda d: d["stages"][1].update(params=[1]), ["stage 'bp'", "\"params\" must be an object"]),
    (lambda d: d["stages"][1].update(plugin_version="7.0.0"), ["version 7.0.0", "not compatible"]),
    (lambda d: d.update(source={"type": "tape"}), ["unknown source type 'tape'"]),
    (lambda d: d.update(sinks=[{"type": "record", "input": "zz"}]), ["sinks[0]", "'zz'"]),
    (lambda d: d.update(sinks=[{"type": "printer", "input": "bp"}]), ["unknown sink type 'printer'"]),
])
def test_structural_errors(mutate, words):
    d = doc()
    mutate(d)
    msg = err(d)
    assert msg.startswith("pipe.json")
    for w in words:
        assert w in msg


def test_source_param_error():
    d = doc()
    d["source"]["params"]["n_chanels"] = 3
    msg = err(d, ParameterError)
    assert "n_chanels" in msg and "Did you mean 'n_channels'" in msg


def test_invalid_json_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"eegkit_pipeline": 1, "stages": [')
    with pytest.raises(PipelineError, match=r"broken\.json: invalid JSON at line 1"):
        eegkit.Pipeline.from_json(path)
    with pytest.raises(PipelineError, match="no such pipeline file"):
        eegkit.Pipeline.from_json(tmp_path / "missing.json")


def test_newer_compatible_plugin_version_warns(tmp_plugin):
    manager = tmp_plugin({"plugin": {"name": "gain", "version": "1.4.2"}, "stage": [{"type": "gain.x2"}]},
                         "def process(x):\n    x *= 2.0\n")
    d = {"eegkit_pipeline": 1, "stages": [{"id": "g", "type": "gain.x2", "plugin_version": "1.2.0"}]}
    with pytest.warns(UserWarning, match="saved with plugin 'gain' 1.2.0, running with 1.4.2"):
        eegkit.Pipeline.from_dict(d, plugins=manager)
    d["stages"][0]["plugin_version"] = "1.5.0"   # older than what it was saved with
    with pytest.raises(PipelineError, match="not compatible"):
        eegkit.Pipeline.from_dict(d, plugins=manager)


def test_json_never_names_code():
    d = doc()
    d["stages"][0]["type"] = "os.system"
    assert "unknown stage type 'os.system'" in err(d)


# -- issue #14: duplicate keys, numbers JSON cannot hold, bounds ------------------------------
@pytest.mark.parametrize("text, words", [
    (('{"eegkit_pipeline": 1, "stages": [], "sinks": [{"type": "npz", "input": "source", '
      '"params": {"path": "a.npz"}}], "sinks": []}'), "key 'sinks' appears twice"),
    (('{"eegkit_pipeline": 1, "stages": [{"id": "a", "type": "filters.highpass", '
      '"params": {"cutoff": 1.0, "cutoff": 2.0}}]}'), "key 'cutoff' appears twice"),
    ('{"eegkit_pipeline": 1, "stages": [], "name": 1e400}', "number 1e400 is out of range"),
    ('{"eegkit_pipeline": 1, "stages": [], "name": -1E+999}', r"number -1E\+999 is out of range"),
])
def test_duplicate_keys_and_numbers_beyond_float_are_refused(tmp_path, text, words):
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(PipelineError, match=f"p.json: invalid JSON: {words}"):
        eegkit.Pipeline.from_json(path)


def test_stage_and_sink_counts_are_bounded():
    from eegkit.runtime._document import MAX_SINKS, MAX_STAGES

    d = doc()
    d["stages"] = [{"id": f"s{i}", "type": "filters.highpass"} for i in range(MAX_STAGES + 1)]
    assert "257 stages; a pipeline holds at most 256" in err(d)
    d = doc()
    d["sinks"] = [{"type": "npz", "input": "bp", "params": {"path": f"{i}.npz"}}
                  for i in range(MAX_SINKS + 1)]
    assert "65 sinks; a pipeline holds at most 64" in err(d)


@pytest.mark.parametrize("timeout", [1e300, 3600.5, 0])
def test_isolation_timeout_is_bounded(timeout):
    d = doc()
    d["stages"][0].update(isolation="process", isolation_timeout=timeout)
    assert "at most 3600" in err(d)
    with pytest.raises(ParameterError, match="at most 3600"):
        build().add("filters.highpass", isolation="process", isolation_timeout=timeout)


def test_sink_params_named_like_add_sink_arguments(tmp_path):
    pytest.importorskip("pylsl")
    d = doc()
    d["sinks"] = [{"type": "lsl", "input": "car", "params": {"name": "car", "type": "Filtered"}}]
    p = eegkit.Pipeline.from_dict(d)  # was TypeError: multiple values for argument 'type'
    assert p.sink_specs == d["sinks"]
    q = build()
    q.add_sink("lsl", "car", params={"name": "car", "type": "Filtered"})
    assert q.to_dict()["sinks"] == d["sinks"]
