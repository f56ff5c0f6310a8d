"""plugin.toml parsing and validation."""

import os

import pytest

from eegkit import ApiVersionError, ManifestError
from eegkit.plugin import check_api, read_manifest

MINIMAL = """\
[plugin]
name = "{name}"
version = "0.1.0"
api = "1.0"

[[stage]]
type = "{name}.copy"
module = "stage.py"
{extra}
"""


def write(tmp_path, name="demo", extra="", body=None, stage="def process(x):\n    pass\n"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "plugin.toml").write_text(body if body is not None else MINIMAL.format(name=name, extra=extra))
    (folder / "stage.py").write_text(stage)
    return folder


def test_minimal_manifest(tmp_path):
    m = read_manifest(write(tmp_path), expected_name="demo")
    assert m.name == "demo" and m.api_tuple == (1, 0)
    (stage,) = m.stages
    assert stage.type == "demo.copy" and stage.setup == "setup" and stage.process == "process"
    assert stage.module.name == "stage.py" and stage.params == {}
    assert stage.output is None  # API 1.0: the warm-up call tells


@pytest.mark.parametrize("output", ["in-place", "new"])
def test_declared_output_is_read(tmp_path, output):
    (stage,) = read_manifest(write(tmp_path, extra=f'output = "{output}"')).stages
    assert stage.output == output and stage.to_dict()["output"] == output


def test_params_parsed_with_defaults_coerced(tmp_path):
    extra = """[stage.params]
low = { type = "float", default = 1, min = 0, unit = "Hz", description = "edge" }
bands = { type = "list[float]", default = [1, 4] }
mode = { type = "str", default = "a", choices = ["a", "b"] }
"""
    (stage,) = read_manifest(write(tmp_path, extra=extra)).stages
    assert stage.params["low"].default == 1.0 and isinstance(stage.params["low"].default, float)
    assert stage.params["bands"].default == [1.0, 4.0]
    assert stage.params["mode"].choices == ("a", "b")


@pytest.mark.parametrize("extra, words", [
    ('[stage.params]\nx = { type = "complex", default = 1 }', ["parameter 'x'", "invalid value for the 'type' key", "Allowed values are 'int'", "'complex'"]),
    ('[stage.params]\nx = { type = "int", default = 1.5 }', ["parameter 'x'", "expects int", "1.5", "declared default"]),
    ('[stage.params]\nx = { type = "int", default = 50, max = 10 }', ["must be <= 10", "50"]),
    ('[stage.params]\nx = { type = "int" }', ["'default' is required"]),
    ('[stage.params]\nx = { type = "int", default = 1, step = 2 }', ["unknown key(s) ['step']"]),
    ('view = "oscilloscope"', ["stage 'demo.copy'", "invalid value for the 'view' key", "'scope'", "'oscilloscope'"]),
    ('view = "ui"', ["[ui] bundle"]),
    ('isolation = "thread"', ["invalid value for the 'isolation' key. Allowed values are 'none' and 'process'", "'thread'"]),
    ('output = "inplace"', ["stage 'demo.copy'", "invalid value for the 'output' key. Allowed values are 'in-place' and 'new'", "'inplace'"]),
    ('output = true', ["stage 'demo.copy'", "invalid value for the 'output' key", "True"]),
    ('colour = "red"', ["unknown key(s) ['colour']", "[[stage]] #1"]),
])
def test_stage_errors_name_the_field(tmp_path, extra, words):
    with pytest.raises(ManifestError) as err:
        read_manifest(write(tmp_path, extra=extra))
    msg = str(err.value)
    assert "plugin.toml" in msg
    for w in words:
        assert w in msg


def test_stage_type_must_start_with_plugin_name(tmp_path):
    body = MINIMAL.format(name="notch", extra="").replace('"notch.copy"', '"notch_filter"')
    with pytest.raises(ManifestError, match=r"must be 'notch\.<lowercase_name>' \(e\.g\. 'notch\.notch_filter'\)"):
        read_manifest(write(tmp_path, name="notch", body=body))


@pytest.mark.parametrize("change, words", [
    (("version = \"0.1.0\"", "version = 1"), ["version must be a string", "int 1"]),
    (("version = \"0.1.0\"", "version = \"one\""), ["version must look like", "'one'"]),
    (("api = \"1.0\"", "api = \"1\""), ["api must be 'MAJOR.MINOR'", "'1'"]),
    (("api = \"1.0\"\n", ""), ["missing the required key 'api'"]),
    (("name = \"demo\"", "name = \"Demo\""), ["name must be lowercase"]),
    (("name = \"demo\"", "name = \"other\""), ["'other' must equal the folder name 'demo'"]),
    (("[plugin]", "[plugin]\nhomepage = 3"), []),  # allowed key, wrong type is not checked beyond TOML
])
def test_plugin_table_errors(tmp_path, change, words):
    body = MINIMAL.format(name="demo", extra="").replace(*change)
    folder = write(tmp_path, body=body)
    if not words:
        read_manifest(folder, expected_name="demo")
        return
    with pytest.raises(ManifestError) as err:
        read_manifest(folder, expected_name="demo")
    for w in words:
        assert w in str(err.value)


def test_invalid_toml_names_file(tmp_path):
    folder = write(tmp_path, body="[plugin\nname=")
    with pytest.raises(ManifestError, match=r"plugin\.toml: invalid TOML"):
        read_manifest(folder)


def test_module_path_cannot_escape(tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("def process(x):\n    pass\n")
    body = MINIMAL.format(name="demo", extra="").replace('module = "stage.py"', 'module = "../outside.py"')
    with pytest.raises(ManifestError, match="leaves the plugin folder"):
        read_manifest(write(tmp_path, body=body))


def test_symlink_cannot_escape(tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("def process(x):\n    pass\n")
    folder = write(tmp_path)
    (folder / "stage.py").unlink()
    os.symlink(outside, folder / "stage.py")
    with pytest.raises(ManifestError, match="leaves the plugin folder"):
        read_manifest(folder)


def test_missing_module_file(tmp_path):
    folder = write(tmp_path)
    (folder / "stage.py").unlink()
    with pytest.raises(ManifestError, match="'stage.py' does not exist"):
        read_manifest(folder)


def test_api_policy(tmp_path):
    body = MINIMAL.format(name="demo", extra="")
    m = read_manifest(write(tmp_path, body=body))
    assert check_api(m) is None
    newer = read_manifest(write(tmp_path, name="newer", body=MINIMAL.format(name="newer", extra="").replace('api = "1.0"', 'api = "1.4"')))
    assert "1.4" in check_api(newer) and "1.1" in check_api(newer)
    major = read_manifest(write(tmp_path, name="major", body=MINIMAL.format(name="major", extra="").replace('api = "1.0"', 'api = "2.1"')))
    with pytest.raises(ApiVersionError, match=r"targets plugin API 2\.1.*speaks plugin API 1\.1"):
        check_api(major)


def test_setup_defaults_that_differ_from_the_manifest_are_reported(tmp_path):
    from eegkit.plugin._params import default_drift

    extra = ('[stage.params]\nfmax = { type = "float", default = 0.0 }\n'
             'bands = { type = "list[float]", default = [1, 4] }\n'
             'order = { type = "int", default = 4 }')
    (stage,) = read_manifest(write(tmp_path, extra=extra)).stages

    def setup(info, fmax=None, bands=(1.0, 4.0), order=4):
        pass

    def setup_no_defaults(info, fmax, bands):
        pass

    (drift,) = default_drift(stage.params, setup)
    assert "setup() has fmax=None but plugin.toml declares default 0.0" in drift
    (missing,) = default_drift(stage.params, setup_no_defaults)
    assert "has no parameter 'order', which plugin.toml declares" in missing
    assert default_drift(stage.params, lambda info, **params: None) == []
