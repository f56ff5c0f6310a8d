"""Security boundaries (trust model in eegkit/docs/reliability.md).

Plugins are code and are trusted once installed; what eegkit guarantees is that
reading manifests, discovering plugins and loading pipeline JSON never run code,
that every path a manifest names stays inside its plugin folder (symlinks too),
that a view bundle serves only files beside it, and that plugin folders any user
may write are reported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import eegkit
from eegkit import EegkitError, ManifestError, ParameterError
from eegkit.plugin import PluginManager, discover, package_dir, read_manifest

posix_only = pytest.mark.skipif(os.name != "posix", reason="symlinks and modes are POSIX")

MANIFEST = """\
[plugin]
name = "{name}"
version = "0.1.0"
api = "1.0"

[[stage]]
type = "{name}.copy"
module = "{module}"
view = "ui"

[ui]
bundle = "{bundle}"
"""
# importing this module leaves a marker file: the tests check it never appears
EVIL = """import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("code ran")


def process(x):
    pass
"""


def plugin(root, name="demo", module="stage.py", bundle="ui/bundle.js", files=True):
    folder = root / name
    (folder / "ui").mkdir(parents=True)
    (folder / "plugin.toml").write_text(MANIFEST.format(name=name, module=module, bundle=bundle))
    if files:
        (folder / "stage.py").write_text("def process(x):\n    pass\n")
        (folder / "ui" / "bundle.js").write_text("export default { render() {} };\n")
    return folder


@pytest.fixture
def outside(tmp_path):
    """Files outside every plugin folder that a manifest might try to reach."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "evil.py").write_text(EVIL)
    (out / "evil.js").write_text("export default { render() { /* not yours */ } };\n")
    return out


# -- manifest paths ---------------------------------------------------------------------
@pytest.mark.parametrize("bundle", ["../outside/evil.js", "ui/../../outside/evil.js"])
def test_ui_bundle_path_cannot_leave_the_folder(tmp_path, outside, bundle):
    folder = plugin(tmp_path / "plugins", bundle=bundle)
    with pytest.raises(ManifestError, match=r"\[ui\] bundle .* leaves the plugin folder"):
        read_manifest(folder)


def test_ui_bundle_absolute_path_is_refused(tmp_path, outside):
    folder = plugin(tmp_path / "plugins", bundle=str(outside / "evil.js"))
    with pytest.raises(ManifestError, match=r"\[ui\] bundle must be a relative path"):
        read_manifest(folder)


@posix_only
def test_ui_bundle_symlink_to_outside_is_refused(tmp_path, outside):
    folder = plugin(tmp_path / "plugins")
    (folder / "ui" / "bundle.js").unlink()
    os.symlink(outside / "evil.js", folder / "ui" / "bundle.js")
    with pytest.raises(ManifestError, match="leaves the plugin folder"):
        read_manifest(folder)


@posix_only
def test_symlinked_ui_folder_to_outside_is_refused(tmp_path, outside):
    folder = plugin(tmp_path / "plugins", files=False)
    (folder / "stage.py").write_text("def process(x):\n    pass\n")
    (folder / "ui").rmdir()
    (outside / "bundle.js").write_text("export default {};\n")
    os.symlink(outside, folder / "ui")
    with pytest.raises(ManifestError, match=r"\[ui\] bundle 'ui/bundle.js' leaves the plugin folder"):
        read_manifest(folder)


@posix_only
def test_module_in_symlinked_subfolder_is_refused(tmp_path, outside):
    folder = plugin(tmp_path / "plugins", module="lib/evil.py")
    os.symlink(outside, folder / "lib")
    with pytest.raises(ManifestError, match="module 'lib/evil.py' leaves the plugin folder"):
        read_manifest(folder)


@posix_only
def test_symlink_loop_is_a_manifest_error(tmp_path):
    folder = plugin(tmp_path / "plugins")
    (folder / "stage.py").unlink()
    os.symlink(folder / "stage.py", folder / "stage.py")
    with pytest.raises(ManifestError, match="stage.py"):
        read_manifest(folder)


@posix_only
def test_symlinked_plugin_folder_is_checked_against_its_real_folder(tmp_path, outside):
    """Linking a plugin folder into plugins/ is how authors develop: it loads, and the
    rule applies to the folder it points to."""
    real = plugin(tmp_path / "dev")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    os.symlink(real, plugins / "demo")
    (record,) = discover([plugins], entry_points=False)
    assert record.status == "ok" and record.manifest.path == plugins / "demo"
    assert record.manifest.stages[0].module == (real / "stage.py").resolve()
    assert record.manifest.ui_bundle == (real / "ui" / "bundle.js").resolve()
    # ... and a file in it that points out of the real folder is still refused
    (real / "stage.py").unlink()
    os.symlink(outside / "evil.py", real / "stage.py")
    (record,) = discover([plugins], entry_points=False)
    assert record.status == "error" and "leaves the plugin folder" in record.message
    assert not (outside / "IMPORTED").exists()


def test_discovery_never_imports_plugin_code(tmp_path):
    folder = plugin(tmp_path / "plugins")
    (folder / "stage.py").write_text(EVIL)
    (folder / "helper.py").write_text(EVIL)
    before = set(sys.modules)
    manager = PluginManager(paths=[tmp_path / "plugins"], entry_points=False)
    assert manager.record("demo").status == "ok"
    assert manager.stage_types() == ["demo.copy"]
    manager.spec("demo.copy")
    assert not (folder / "IMPORTED").exists()
    assert not [m for m in set(sys.modules) - before if "demo" in m]


# -- pipeline JSON names no code --------------------------------------------------------
def test_pipeline_json_cannot_import_or_run_anything(tmp_path, outside, monkeypatch):
    """A document that names a Python file, a module or code in every field it has:
    each is refused with an error naming the field, and nothing is imported or run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plugins" / "evil").mkdir(parents=True)
    (tmp_path / "plugins" / "evil" / "evil.py").write_text(EVIL)  # no plugin.toml
    (tmp_path / "evil.py").write_text(EVIL)
    manager = PluginManager(paths=[tmp_path / "plugins", package_dir("plugins")],
                            entry_points=False)
    evil = str(outside / "evil.py")
    good = {"id": "bp", "type": "filters.bandpass"}
    cases = [
        ({"stages": [{"id": "x", "type": "evil.evil"}]}, "plugin 'evil', which is error"),
        ({"stages": [{"id": "x", "type": evil}]}, "unknown stage type"),
        ({"stages": [{"id": "x", "type": "os.system"}]}, "unknown stage type 'os.system'"),
        ({"stages": [{**good, "module": evil}]}, "unknown key(s) ['module']"),
        ({"stages": [{**good, "process": "os.system"}]}, "unknown key(s) ['process']"),
        ({"stages": [{**good, "params": {"low": "__import__('os').system('id')"}}]},
         "parameter 'low' expects float"),
        ({"stages": [{**good, "params": {"setup": evil}}]}, "unknown parameter 'setup'"),
        ({"stages": [good], "source": {"type": evil}}, "unknown source type"),
        ({"stages": [good], "source": {"type": "eegkit.sources._file:FileSource"}},
         "unknown source type"),
        ({"stages": [good], "sinks": [{"type": "evil:Sink", "input": "bp"}]}, "unknown sink type"),
        ({"stages": [good], "plugins": [evil]}, "unknown key(s) ['plugins']"),
        ({"stages": [good], "imports": ["evil"]}, "unknown key(s) ['imports']"),
    ]
    before = set(sys.modules)
    for extra, words in cases:
        doc = {"eegkit_pipeline": 1, **extra}
        with pytest.raises(EegkitError) as err:
            eegkit.Pipeline.from_dict(doc, plugins=manager)
        assert words in str(err.value), (extra, str(err.value))
    assert not (outside / "IMPORTED").exists() and not (tmp_path / "IMPORTED").exists()
    assert not (tmp_path / "plugins" / "evil" / "IMPORTED").exists()
    new = [m for m in set(sys.modules) - before if not m.startswith(("eegkit", "mne"))]
    assert not [m for m in new if "evil" in m]


def test_file_source_never_imports_a_python_file(tmp_path, outside):
    """A file source pointed at a ``.py`` file reads it as data (MNE refuses it)."""
    pytest.importorskip("mne")
    doc = {"eegkit_pipeline": 1, "stages": [{"id": "bp", "type": "filters.bandpass"}],
           "source": {"type": "file", "params": {"path": str(outside / "evil.py")}}}
    manager = PluginManager(paths=[package_dir("plugins")], entry_points=False)
    before = set(sys.modules)
    with pytest.raises(EegkitError, match="MNE could not read"):
        eegkit.Pipeline.from_dict(doc, plugins=manager)
    assert not (outside / "IMPORTED").exists()
    assert not [m for m in set(sys.modules) - before if "evil" in m]


# -- view bundles -------------------------------------------------------------------------
@posix_only
def test_view_bundle_serves_no_file_but_itself(tmp_path, outside):
    """A view bundle travels as its own text; an ``import .. from './x.js'`` (which could
    reach a symlink out of the plugin) is refused, so no other file is ever sent."""
    pytest.importorskip("anywidget")
    from eegkit.notebook._widget import StreamView

    folder = plugin(tmp_path / "plugins")
    (outside / "secret.js").write_text("export function draw() { /* SECRET-7f3a */ }\n")
    os.symlink(outside / "secret.js", folder / "ui" / "helper.js")
    (folder / "ui" / "bundle.js").write_text(
        "import { draw } from './helper.js';\nexport default () => ({ draw });\n")
    info = eegkit.StreamInfo(250.0, ["a", "b"])
    manifest = read_manifest(folder)
    with pytest.raises(ParameterError, match=r"imports a relative file"):
        StreamView(info, view=str(manifest.ui_bundle))
    (folder / "ui" / "bundle.js").write_text("export default () => ({ draw() {} });\n")
    view = StreamView(info, view=str(manifest.ui_bundle))
    assert "SECRET-7f3a" not in view._view_js + view._api_js + str(view._esm)
    view.close()


# -- unsafe permissions -------------------------------------------------------------------
@posix_only
@pytest.mark.parametrize("target", [".", "stage.py", "ui/bundle.js", "plugin.toml", "ui"])
def test_world_writable_plugin_is_reported(tmp_path, target):
    folder = plugin(tmp_path / "plugins")
    (record,) = discover([tmp_path / "plugins"], entry_points=False)
    assert record.status == "ok"
    path = folder / target
    path.chmod(path.stat().st_mode | 0o002)
    (record,) = discover([tmp_path / "plugins"], entry_points=False)
    assert record.status == "warning" and record.usable
    assert "world-writable" in record.message and str(path) in record.message
    assert "chmod o-w" in record.message
    # still usable; the manager shows the warning once when the stage type is used
    manager = PluginManager(paths=[tmp_path / "plugins"], entry_points=False)
    with pytest.warns(UserWarning, match="world-writable"):
        manager.spec("demo.copy")


@posix_only
def test_group_writable_is_not_reported(tmp_path):
    folder = plugin(tmp_path / "plugins")
    (folder / "stage.py").chmod(0o664)
    folder.chmod(0o775)
    (record,) = discover([tmp_path / "plugins"], entry_points=False)
    assert record.status == "ok"


def test_isolated_stage_cannot_reach_the_parent_namespace(tmp_plugin):
    """Isolation limits crashes, not malice: the child is a plain interpreter of the same
    user. What it cannot do is change the parent's objects: it sees only the blocks."""
    pytest.importorskip("eegkit.runtime._isolate")
    manager = tmp_plugin(
        {"plugin": {"name": "snoop"}, "stage": [{"type": "snoop.look", "isolation": "process"}]},
        "import os\nimport numpy as np\n\n"
        "def setup(info):\n    return (np.array([os.getpid()], dtype=np.int64),)\n\n"
        "def process(x, pid):\n    x[:, :] = pid[0]\n",
        manager=PluginManager(paths=[], entry_points=False))
    p = eegkit.Pipeline(plugins=manager)
    p.add("snoop.look", id="look")
    try:
        out = p.process(np.zeros((1, 4)), sfreq=100.0)["look"]
        child = p["look"].code.pid
        assert out[0, 0] == child != os.getpid()
    finally:
        p["look"].code.close()


# -- manifests that would exhaust discovery (issue #14 row 5) -----------------------------
def test_oversized_manifest_is_refused_before_parsing(tmp_path):
    folder = plugin(tmp_path / "plugins")
    text = (folder / "plugin.toml").read_text()
    (folder / "plugin.toml").write_text(text + "# padding\n" * 7000)
    with pytest.raises(ManifestError, match="larger than 64 KB"):
        read_manifest(folder)


@pytest.mark.parametrize("key", ['x.' * 40000 + 'x = 1', 'a . "b" . c.d.e.f.g.h.i = 1',
                                 '[plugin.' + 'q.' * 20 + 'r]'])
def test_deeply_dotted_key_is_refused_before_parsing(tmp_path, key):
    """tomllib took 220 s on a 40,000-part dotted key; the depth is counted first."""
    folder = plugin(tmp_path / "plugins")
    (folder / "plugin.toml").write_text(key[:60000] + "\n")
    with pytest.raises(ManifestError, match="a dotted key has .* parts; at most 8"):
        read_manifest(folder)


def test_dots_in_strings_and_comments_are_not_keys(tmp_path):
    folder = plugin(tmp_path / "plugins")
    text = (folder / "plugin.toml").read_text().replace(
        'version = "0.1.0"', 'version = "0.1.0"  # a.b.c.d.e.f.g.h.i.j\n'
        'description = "a.b.c.d.e.f.g.h.i.j and \\" a.b.c.d.e.f.g.h.i.j"')
    (folder / "plugin.toml").write_text(text)
    assert read_manifest(folder).description.startswith("a.b.c")


@posix_only
def test_fifo_manifest_is_refused_without_waiting(tmp_path):
    folder = plugin(tmp_path / "plugins")
    (folder / "plugin.toml").unlink()
    os.mkfifo(folder / "plugin.toml")  # a writer never comes: a plain open would wait for ever
    (record,) = discover([tmp_path / "plugins"], entry_points=False)
    assert record.status == "error"
    assert "plugin.toml must be a regular file, not a FIFO" in record.message


@posix_only
@pytest.mark.parametrize("target", ["/dev/zero", "outside"])
def test_manifest_symlinked_out_of_the_folder_is_refused(tmp_path, outside, target):
    folder = plugin(tmp_path / "plugins")
    real = Path(target) if target.startswith("/") else outside / "plugin.toml"
    if not target.startswith("/"):
        real.write_text((folder / "plugin.toml").read_text())
    (folder / "plugin.toml").unlink()
    os.symlink(real, folder / "plugin.toml")
    with pytest.raises(ManifestError, match="plugin.toml leaves the plugin folder"):
        read_manifest(folder)


@posix_only
def test_device_manifest_inside_the_folder_is_refused(tmp_path):
    """A symlink that stays inside the folder is followed; what it reaches must be a file."""
    folder = plugin(tmp_path / "plugins")
    (folder / "plugin.toml").unlink()
    os.symlink("ui", folder / "plugin.toml")
    with pytest.raises(ManifestError, match="regular file, not a folder"):
        read_manifest(folder)
