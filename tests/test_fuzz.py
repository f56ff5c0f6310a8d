"""Fuzzing the two documents eegkit reads from users: pipeline JSON and plugin.toml.

Random and mutated documents (wrong types, unknown keys, deep nesting, huge numbers,
NaN, unicode, missing fields) must load fine or raise an EegkitError subclass whose
message names the file and the field; never another exception, a hang, an import
of anything but eegkit's own modules, or a file created. The number of cases run
is printed at the end (``pytest -s``) and recorded in eegkit/docs/reliability.md.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eegkit
from eegkit import EegkitError, StreamInfo
from eegkit.plugin import PluginManager, package_dir
from eegkit.plugin._discovery import discover
from eegkit.plugin._manifest import read_manifest

pytestmark = pytest.mark.timeout(300)
COUNTS: dict = {}
# EEGKIT_FUZZ_EXAMPLES=5000 explores further (random seeds); the default run is fixed
EXAMPLES = int(os.environ.get("EEGKIT_FUZZ_EXAMPLES", "250"))
FUZZ = settings(max_examples=EXAMPLES, deadline=5000, derandomize="EEGKIT_FUZZ_EXAMPLES" not in os.environ,
                database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BASE_PIPELINE = {
    "eegkit_pipeline": 1,
    "name": "fuzz",
    "description": "the document every mutation starts from",
    "source": {"type": "synthetic", "params": {"n_channels": 4, "sfreq": 250.0, "seed": 1,
                                               "duration": 2.0}},
    "stages": [
        {"id": "bp", "type": "filters.bandpass", "params": {"low": 1.0, "high": 40.0, "order": 4},
         "plugin_version": "0.1.0"},
        {"id": "notch", "type": "filters.notch", "input": "bp", "params": {"freq": 50.0,
                                                                           "harmonics": 2}},
        {"id": "ref", "type": "reref.channels", "params": {"ref_channels": ["Fz"]}},
        {"id": "bands", "type": "brain_fft.band_power", "input": "ref",
         "params": {"window": 64, "step": 16, "bands": [1.0, 4.0, 8.0, 13.0],
                    "band_names": ["delta", "theta", "alpha"]}},
    ],
    "sinks": [{"type": "npz", "input": "bp", "params": {"path": "out/bp.npz"}},
              {"type": "features", "input": "bands", "params": {"path": "out/bands.csv"}}],
}

BASE_MANIFEST = {
    "plugin": {"name": "fuzzplug", "version": "0.1.0", "api": "1.0", "description": "fuzzed"},
    "stage": [
        {"type": "fuzzplug.gain", "module": "stage.py", "setup": "setup", "process": "process",
         "view": "ui", "description": "a gain",
         "params": {"gain": {"type": "float", "default": 1.0, "min": 0.0, "max": 10.0, "unit": "V"},
                    "n": {"type": "int", "default": 2, "choices": [1, 2, 3]},
                    "names": {"type": "list[str]", "default": ["a", "b"]},
                    "edges": {"type": "list[float]", "default": [1.0, 4.0]},
                    "on": {"type": "bool", "default": True}}},
        {"type": "fuzzplug.other", "module": "stage.py", "isolation": "none"},
    ],
    "ui": {"bundle": "ui/bundle.js"},
}
# imported, this module would leave a file behind: discovery must never import it
STAGE_PY = """import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("plugin code ran")


def setup(info, **params):
    return ()


def process(x):
    pass
"""

# -- value strategies -----------------------------------------------------------------
HUGE = [10 ** 18, 2 ** 63, -(2 ** 63) - 1, 10 ** 400, 1e308, -1e308, 5e-324, 1e300]
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10 ** 6), max_value=10 ** 6),
    st.sampled_from(HUGE),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "source", "bp", "filters.bandpass", "../../etc/passwd", "os.system",
                     "__import__('os').system('touch pwned')", "eegkit.runtime._isolate", "\x00",
                     "\ud800", "é" * 300, "a" * 5000, "/dev/zero", "synthetic", "file", "npz"]),
)
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                      | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)


def nested(depth, leaf=1.0, kind="list"):
    """A value nested ``depth`` levels deep (built iteratively)."""
    value = leaf
    for i in range(depth):
        value = [value] if kind == "list" or i % 2 else {"k": value}
    return value


def paths(doc, prefix=()):
    """Every path to a value inside ``doc`` (the root is the empty path)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, prefix + (i,))
    return out


def get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw, base, extra_values=values):
    """``base`` with one to three mutations; returns (document, mutated paths)."""
    doc = copy.deepcopy(base)
    done = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(doc)))
        op = draw(st.sampled_from(["replace", "delete", "add_key", "rename", "duplicate"]))
        if not path:
            if op == "replace":
                return draw(extra_values), [path]
            op = "add_key"
        parent = get(doc, path[:-1]) if path else None
        target = get(doc, path)
        if op == "replace":
            parent[path[-1]] = draw(extra_values)
        elif op == "delete":
            del parent[path[-1]]
        elif op == "add_key" and isinstance(target, dict):
            target[draw(st.text(max_size=10))] = draw(extra_values)
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = parent.pop(path[-1])
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(target))
        else:
            parent[path[-1]] = draw(extra_values)
        done.append(path)
    return doc, done


# -- oracles --------------------------------------------------------------------------
def count(name):
    COUNTS[name] = COUNTS.get(name, 0) + 1


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


class Guard:
    """No module but eegkit's own imported, no file created under ``root``."""

    def __init__(self, root):
        self.root = root

    def __enter__(self):
        self.modules = set(sys.modules)
        self.files = files_under(self.root)
        return self

    def __exit__(self, *exc):
        # a new top-level package (other than eegkit's plugin modules) would be one the
        # document named; submodules of packages already in use are their own lazy imports
        known = {m.split(".")[0] for m in self.modules}
        new = {m.split(".")[0] for m in set(sys.modules) - self.modules} - known
        new = [m for m in new if not m.startswith("eegkit") or m.startswith("eegkit_plugin_fuzzplug")]
        assert not new, f"modules imported while loading a document: {sorted(new)[:10]}"
        assert files_under(self.root) == self.files, "a file was created while loading"


FIELD_WORDS = ("stages[", "stage '", "sinks[", "sink '", "source", "\"eegkit_pipeline\"", "\"stages\"",
               "\"sinks\"", "\"name\"", "\"description\"", "unknown key", "top level",
               "invalid JSON", "pipeline format", "missing")


def load_document(doc, manager, root, guard=True):
    """Pipeline.from_dict must build, or raise an EegkitError naming the field."""
    import contextlib

    with Guard(root) if guard else contextlib.nullcontext(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plugin-version drift warnings are expected
        try:
            p = eegkit.Pipeline.from_dict(doc, plugins=manager)
        except EegkitError as exc:
            msg = str(exc)
            assert msg.startswith("pipeline"), msg
            assert any(w in msg for w in FIELD_WORDS), msg
            return "error"
        except RecursionError:
            raise
        # it loaded: it must also run (bad values disable stages, never raise)
        info = p.source.info if p.source_spec else StreamInfo(250.0, ["Fz", "Cz", "Pz", "Oz"])
        p.open(info)
        out = p.push(np.ones((info.n_channels, 40)) * 1e-6)
        assert set(out) == {s.id for s in p.stages}
        return "loaded"


@pytest.fixture(scope="module")
def manager():
    return PluginManager(paths=[package_dir("plugins")], entry_points=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch current directory (relative sink paths would land here)."""
    root = tmp_path_factory.mktemp("fuzz-cwd")
    old = os.getcwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(old)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    total = sum(COUNTS.values())
    print(f"\nfuzz cases run: {total} " + json.dumps(COUNTS, sort_keys=True))


@pytest.fixture(scope="module", autouse=True)
def warm(manager, workdir):
    """Import everything a valid document may import lazily, so the Guard sees only
    imports caused by a document."""
    import difflib  # noqa: F401 - used lazily by error hints

    for spec in ({"type": "synthetic", "params": {}},):
        eegkit.make_source(spec).close()
    for name in ("file", "lsl", "brainflow"):
        try:
            eegkit.sources.source_class(name)
        except EegkitError:
            pass
    for name in ("npz", "record", "features", "lsl"):
        try:
            eegkit.sinks.sink_class(name)
        except EegkitError:
            pass
    assert load_document(BASE_PIPELINE, manager, workdir, guard=False) == "loaded"
    try:
        eegkit.sources.make_source({"type": "file", "params": {"path": "missing.edf"}})
    except EegkitError:
        pass


# -- pipeline JSON --------------------------------------------------------------------
# lsl/brainflow sources connect when a document is loaded (bounded by their timeout);
# they are exercised in test_bad_data.py, not here.
json_values = values.filter(lambda v: v not in ("lsl", "brainflow"))


@FUZZ
@given(case=mutated(BASE_PIPELINE, json_values))
@pytest.mark.slow  # hundreds of generated documents
def test_mutated_pipeline_documents(case, manager, workdir):
    doc, _ = case
    count("pipeline json, mutated: " + load_document(doc, manager, workdir))


@FUZZ
@given(doc=st.one_of(values, st.fixed_dictionaries(
    {"eegkit_pipeline": st.one_of(st.just(1), values)},
    optional={"source": values, "stages": st.lists(st.dictionaries(
        st.sampled_from(["id", "type", "input", "params", "plugin_version", "isolation",
                         "isolation_timeout"]), values), max_size=3), "sinks": values,
        "name": values})))
def test_random_pipeline_documents(doc, manager, workdir):
    if isinstance(doc, str) or isinstance(doc, dict) and doc.get("source", {}) in ("lsl", "brainflow"):
        doc = {"eegkit_pipeline": 1, "stages": doc}
    count("pipeline json, random: " + load_document(doc, manager, workdir))


@settings(FUZZ, max_examples=max(40, EXAMPLES // 6))
@given(depth=st.integers(1, 20000), where=st.sampled_from(paths(BASE_PIPELINE)[1:]),
       kind=st.sampled_from(["list", "dict"]))
def test_deeply_nested_values(depth, where, kind, manager, workdir):
    doc = copy.deepcopy(BASE_PIPELINE)
    get(doc, where[:-1])[where[-1]] = nested(depth, kind=kind)
    count("pipeline json, deep: " + load_document(doc, manager, workdir))


text_edits = st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace", "truncate"]),
                                st.floats(0, 1), st.text(max_size=4)), min_size=1, max_size=4)


def edit_text(text, edits):
    for op, where, chars in edits:
        i = int(where * len(text))
        if op == "insert":
            text = text[:i] + chars + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1 + len(chars):]
        elif op == "replace":
            text = text[:i] + chars + text[i + len(chars):]
        else:
            text = text[:i]
    return text


@FUZZ
@given(edits=text_edits, special=st.sampled_from([None, "NaN", "Infinity", "-Infinity",
                                                  "1" * 5000, "1e999", "[" * 5000, "\"\\ud800\""]))
def test_pipeline_json_text(edits, special, manager, workdir):
    text = json.dumps(BASE_PIPELINE, indent=1)
    if special is not None:
        text = text.replace("250.0", special, 1)
    text = "{" + edit_text(text[1:], edits)  # keep the leading brace: a path otherwise
    with Guard(workdir):
        try:
            p = eegkit.Pipeline.from_json(text, plugins=manager)
        except EegkitError as exc:
            assert str(exc).startswith("pipeline JSON"), str(exc)
            count("pipeline json text: error")
            return
    count("pipeline json text: loaded")
    assert p.stages


# -- duplicate keys, reserved names, huge numbers (issue #14) ---------------------------
# numbers written as JSON text, beyond what json.dumps can produce from Python values
HUGE_TEXT = ["1e400", "-1e400", "1e308", "4e-400", "1" + "0" * 400, "1e12", "1e300", "3000",
             "10000", "-0.0", "1E+999"]
RESERVED = ["type", "input", "params", "id", "self", "overwrite", "isolation", "source", "path",
            "format", "__class__", "sinks"]


def to_text(value, dup=None):
    """JSON text of ``value``; ``dup`` = (object path, key, raw JSON text) adds that key
    again to the object at that path (a duplicate when the key is already there)."""
    def emit(v, path):
        if isinstance(v, dict):
            items = [f"{json.dumps(k)}: {emit(x, path + (k,))}" for k, x in v.items()]
            if dup is not None and dup[0] == path:
                items.append(f"{json.dumps(dup[1])}: {dup[2]}")
            return "{" + ", ".join(items) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(emit(x, path + (i,)) for i, x in enumerate(v)) + "]"
        return json.dumps(v)
    return emit(value, ())


objects = [p for p in paths(BASE_PIPELINE) if isinstance(get(BASE_PIPELINE, p), dict)]
numbers = [p for p in paths(BASE_PIPELINE) if isinstance(get(BASE_PIPELINE, p), (int, float))
           and not isinstance(get(BASE_PIPELINE, p), bool)]


@FUZZ
@given(where=st.sampled_from(objects), key=st.one_of(st.sampled_from(RESERVED), st.text(max_size=6)),
       raw=st.one_of(st.sampled_from(HUGE_TEXT), json_values.map(json.dumps)),
       number=st.one_of(st.none(), st.tuples(st.sampled_from(numbers), st.sampled_from(HUGE_TEXT))),
       existing=st.booleans(), add=st.booleans())
def test_duplicate_keys_reserved_names_and_huge_numbers(where, key, raw, number, existing, add,
                                                        manager, workdir):
    doc = copy.deepcopy(BASE_PIPELINE)
    target = get(doc, where)
    if existing and target:
        key = min(target)  # the same key twice
    marker = 7.123456789e-7
    if number is not None:  # a number written as text no Python float can hold
        get(doc, number[0][:-1])[number[0][-1]] = marker
    text = to_text(doc, (where, key, raw) if add or number is None else None)
    if number is not None:
        text = text.replace(json.dumps(marker), number[1], 1)
    with Guard(workdir):
        try:
            loaded, _ = eegkit.runtime._document.load(text)
        except EegkitError as exc:
            assert str(exc).startswith("pipeline JSON: invalid JSON"), str(exc)
            count("pipeline json, dup/reserved/huge: invalid JSON")
            return
    assert not (add and existing and target)  # a repeated key never loads
    count("pipeline json, dup/reserved/huge: " + load_document(loaded, manager, workdir))


@pytest.mark.parametrize("sink, params", [
    ("lsl", {"name": "x", "type": "EEG"}), ("lsl", {"name": "x", "input": "bp"}),
    ("record", {"path": "r.bdf", "type": "bdf"}), ("npz", {"path": "r.npz", "params": {}}),
    ("record", {"path": "r.bdf", "physical_range": 1e308}),
    ("record", {"path": "r.bdf", "overwrite": "yes"}),
])
def test_sink_params_with_reserved_names(sink, params, manager, workdir):
    """Sink parameters named like add_sink's own arguments used to raise TypeError."""
    if sink == "lsl":
        pytest.importorskip("pylsl")
    doc = copy.deepcopy(BASE_PIPELINE)
    doc["sinks"] = [{"type": sink, "input": "bp", "params": params}]
    outcome = load_document(doc, manager, workdir)
    count("pipeline json, reserved sink params: " + outcome)
    if params.get("type") == "EEG":
        assert outcome == "loaded"


# -- plugin manifests -----------------------------------------------------------------
def toml_value(v):
    """A value as TOML (inline tables and arrays; keys always quoted)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    return '""'  # None has no TOML form


def toml_document(doc):
    if not isinstance(doc, dict):
        return toml_value(doc)
    return "\n".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in doc.items()) + "\n"


@pytest.fixture(scope="module")
def plugin_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-plugins")
    folder = root / "fuzzplug"
    (folder / "ui").mkdir(parents=True)
    (folder / "stage.py").write_text(STAGE_PY)
    (folder / "ui" / "bundle.js").write_text("export default {render() {}};\n")
    (root / "outside.py").write_text(STAGE_PY)
    return root


def check_manifest(root, text):
    """read_manifest and discovery: a Manifest or a ManifestError naming plugin.toml;
    discovery reports, never raises; no plugin code runs."""
    folder = root / "fuzzplug"
    clear_manifest(folder)
    if isinstance(text, bytes):
        (folder / "plugin.toml").write_bytes(text)
    elif text is not None:  # None: the case placed its own plugin.toml (a FIFO, a symlink)
        (folder / "plugin.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
    with Guard(root):
        try:
            read_manifest(folder, expected_name="fuzzplug")
            outcome = "loaded"
        except EegkitError as exc:
            msg = str(exc)
            assert str(folder / "plugin.toml") in msg, msg
            outcome = "error"
        (record,) = discover([root], entry_points=False)
        assert record.status in ("ok", "warning", "error", "rejected")
        assert (record.status == "error") == (outcome == "error") or record.status == "rejected"
        if record.status == "error":
            assert "plugin.toml" in record.message
    assert not (folder / "IMPORTED").exists() and not (root / "IMPORTED").exists()
    return outcome


def clear_manifest(folder):
    """Remove whatever ``plugin.toml`` is (file, symlink, FIFO, folder), never what it points to."""
    path = folder / "plugin.toml"
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        path.rmdir()


def test_base_manifest_loads(plugin_root):
    assert check_manifest(plugin_root, toml_document(BASE_MANIFEST)) == "loaded"


manifest_values = st.one_of(values, st.sampled_from(
    ["../outside.py", "/etc/passwd", "stage.py\x00.py", "ui/../../outside.py", "ui\\bundle.js",
     "a" * 300 + ".py", "ui", "", ".", "stage.py/", "ui/bundle.js", "process", "1.0", "2.0"]))


@FUZZ
@given(case=mutated(BASE_MANIFEST, manifest_values))
def test_mutated_manifests(case, plugin_root):
    doc, _ = case
    count("manifest, mutated: " + check_manifest(plugin_root, toml_document(doc)))


@FUZZ
@given(edits=text_edits)
def test_manifest_text_mutations(edits, plugin_root):
    text = (Path(package_dir("plugins")) / "brain_fft" / "plugin.toml").read_text()
    text = text.replace('"brain_fft', '"fuzzplug').replace('module = "stage.py"', 'module = "stage.py"')
    count("manifest, text edit: " + check_manifest(plugin_root, edit_text(text, edits)))


@settings(FUZZ, max_examples=max(150, EXAMPLES // 2))
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_random_manifest_bytes(data, plugin_root):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    count("manifest, random bytes: " + check_manifest(plugin_root, data))


SPECIAL_FILES = ["fifo", "/dev/zero", "outside", "folder", "loop", "dangling"]


@settings(FUZZ, max_examples=max(80, EXAMPLES // 3))
@given(kind=st.one_of(st.just("dotted key"), st.sampled_from(SPECIAL_FILES)),
       depth=st.integers(1, 40000),
       quoted=st.booleans(), where=st.sampled_from(["top", "table", "inline", "string"]))
def test_special_files_and_deep_dotted_keys(kind, depth, quoted, where, plugin_root):
    """Issue #14 row 5: a FIFO, a device, a symlink out of the folder or a dotted key of
    any depth (40,000 parts took tomllib 220 s) is a ManifestError, at once."""
    folder = plugin_root / "fuzzplug"
    text = toml_document(BASE_MANIFEST)
    if kind == "dotted key":
        key = ".".join(['"k"' if quoted else "k"] * depth)
        line = {"top": f"{key} = 1", "table": f"[{key}]", "inline": f"x = {{ {key} = 1 }}",
                "string": f'x = "{key}"'}[where]
        count("manifest, dotted key: " + check_manifest(plugin_root, line + "\n" + text))
        return
    if os.name != "posix":
        return
    clear_manifest(folder)
    path = folder / "plugin.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "loop":
        os.symlink("plugin.toml", path)
    elif kind == "dangling":
        os.symlink("missing.toml", path)
    else:
        target = plugin_root / "outside.toml" if kind == "outside" else Path(kind)
        if kind == "outside":
            target.write_text(text)
        os.symlink(target, path)
    outcome = check_manifest(plugin_root, None)
    assert outcome == "error", kind
    count("manifest, special file: " + outcome)
    clear_manifest(folder)


NUMERIC_PATHS = [p for p in paths(BASE_PIPELINE)
                 if isinstance(get(BASE_PIPELINE, p), (int, float)) and p != ("eegkit_pipeline",)]


@pytest.mark.parametrize("value", HUGE + [math.nan, math.inf, -math.inf, -1, 0],
                         ids=lambda v: f"{type(v).__name__}:{str(v)[:10]}")
def test_huge_and_non_finite_numbers_in_every_numeric_field(value, manager, workdir):
    """Every number of the document replaced by a huge, tiny or non-finite one."""
    for path in NUMERIC_PATHS:
        doc = copy.deepcopy(BASE_PIPELINE)
        get(doc, path[:-1])[path[-1]] = value
        count("pipeline json, numbers: " + load_document(doc, manager, workdir))
