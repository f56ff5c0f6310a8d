"""Pipeline JSON: versioned export, and a load that validates everything first.

Loading never imports or runs anything named by the document: stage types are
looked up among discovered plugins, and only their manifests' modules are imported.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

from .._check import check_keys, check_option, ensure_int, short_repr as _r
from .._errors import ParameterError, PipelineError
from ..plugin import default_manager, validate_params
from ..plugin._manifest import ISOLATION
from ._isolate import MAX_TIMEOUT as MAX_ISOLATION_TIMEOUT

FORMAT = 1
TOP_KEYS = ("eegkit_pipeline", "name", "description", "source", "stages", "sinks")
STAGE_KEYS = ("id", "type", "input", "params", "plugin_version", "isolation", "isolation_timeout")
SINK_KEYS = ("type", "input", "params")
ID_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# bounds on what a document can ask for (docs/reliability.md, "Documents cannot exhaust …")
MAX_STAGES = 256
MAX_SINKS = 64


class PluginVersionWarning(UserWarning):
    """The installed plugin's version differs from the one a pipeline was saved with."""


def pipeline_to_dict(pipeline) -> dict:
    """Document of a pipeline (format 1)."""
    stages = []
    for s in pipeline.stages:
        entry = {"id": s.id, "type": s.type, "input": s.input,
                 "params": _plain(s.params), "plugin_version": s.code.manifest.version}
        if s.isolation != s.code.spec.isolation:  # only a choice that differs from the manifest's
            entry["isolation"] = s.isolation
        if s.isolation == "process":
            entry["isolation_timeout"] = s.code.timeout
        stages.append(entry)
    doc = {"eegkit_pipeline": FORMAT, "source": pipeline.source_spec, "stages": stages}
    if pipeline.sink_specs:
        doc["sinks"] = pipeline.sink_specs
    return doc


def _plain(params):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def dump(doc: dict, path=None) -> str:
    """JSON text of ``doc``, also written to ``path`` when given."""
    text = json.dumps(doc, indent=2) + "\n"
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    return text


def load(path_or_text):
    """Parse a pipeline file (or text): return ``(document, where)``."""
    if isinstance(path_or_text, (str, Path)) and not str(path_or_text).lstrip().startswith("{"):
        path = Path(path_or_text)
        where = str(path)
        try:
            if path.exists() and not path.is_file():  # a folder, a device or a pipe
                raise PipelineError(f"{where}: not a regular file")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PipelineError(f"{where}: no such pipeline file") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: NUL in the path
            if isinstance(exc, PipelineError):
                raise
            raise PipelineError(f"{where}: cannot read: {exc}") from None
    else:
        text, where = str(path_or_text), "pipeline JSON"
    try:
        doc = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                         object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise PipelineError(f"{where}: invalid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{where}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                            f"{exc.msg}") from None
    except RecursionError:
        raise PipelineError(f"{where}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, or an integer of more than 4300 digits
        raise PipelineError(f"{where}: invalid JSON: {exc}") from None
    return doc, where


def validate(doc, plugins=None, where: str = "pipeline") -> list:
    """Check a whole document before anything is built.

    Returns
    -------
    list of str
        Warnings (plugin version drift). Errors raise PipelineError or ParameterError
        naming the stage id and the field.
    """
    plugins = plugins or default_manager()
    if not isinstance(doc, dict):
        raise PipelineError(f"{where}: expected a JSON object at the top level, got {_kind(doc)}")
    _keys(doc, TOP_KEYS, where)
    version = doc.get("eegkit_pipeline")
    if version is None:
        raise PipelineError(f"{where}: missing \"eegkit_pipeline\": {FORMAT} (the format version); "
                            f"is this an eegkit pipeline file?")
    ensure_int(version, '"eegkit_pipeline"', where, what=f"the integer {FORMAT}", error=PipelineError)
    if version != FORMAT:
        newer = " (written by a newer eegkit)" if version > FORMAT else ""
        raise PipelineError(f"{where}: pipeline format {version}{newer}; this eegkit reads format {FORMAT}")
    for key in ("name", "description"):
        if key in doc and not isinstance(doc[key], str):
            raise PipelineError(f"{where}: \"{key}\" must be a string, got {_kind(doc[key])}")
    source = doc.get("source")
    if source is not None:
        from ..sources import source_class

        if not isinstance(source, dict) or not isinstance(source.get("type"), str):
            raise PipelineError(f"{where}: source: expected {{\"type\": ..., \"params\": {{...}}}}, "
                                f"got {_kind(source)}")
        _keys(source, ("type", "params"), f"{where}: source")
        _prefixed(source_class, source["type"], f"{where}: source")
        if not isinstance(source.get("params", {}), dict):
            raise PipelineError(f"{where}: source.params must be an object, got {_kind(source['params'])}")
    stages = doc.get("stages")
    if not isinstance(stages, list):
        raise PipelineError(f"{where}: \"stages\" must be a list of stage objects, got {_kind(stages)}")
    if len(stages) > MAX_STAGES:
        raise PipelineError(f"{where}: {len(stages)} stages; a pipeline holds at most {MAX_STAGES}")
    warnings_out, ids = [], ["source"]
    for i, stage in enumerate(stages):
        warnings_out += _validate_stage(stage, i, ids, plugins, where)
    sinks = doc.get("sinks", [])
    if not isinstance(sinks, list):
        raise PipelineError(f"{where}: \"sinks\" must be a list, got {_kind(sinks)}")
    if len(sinks) > MAX_SINKS:
        raise PipelineError(f"{where}: {len(sinks)} sinks; a pipeline holds at most {MAX_SINKS}")
    for i, sink in enumerate(sinks):
        _validate_sink(sink, i, ids, where)
    return warnings_out


def _validate_stage(stage, i, ids, plugins, where):
    label = f"{where}: stages[{i}]"
    if not isinstance(stage, dict):
        raise PipelineError(f"{label}: expected an object with \"id\" and \"type\", got {_kind(stage)}")
    sid = stage.get("id")
    if not isinstance(sid, str) or not ID_RE.match(sid) or sid == "source":
        raise PipelineError(f"{label}: \"id\" must be a name of letters, digits, '_' or '-' "
                            f"other than 'source', got {_r(sid)}")
    label = f"{where}: stage '{sid}'"
    if sid in ids:
        raise PipelineError(f"{label}: id '{sid}' is used twice")
    _keys(stage, STAGE_KEYS, label)
    stype = stage.get("type")
    if not isinstance(stype, str):
        raise PipelineError(f"{label}: \"type\" must be a string like \"filters.bandpass\", got {_r(stype)}")
    record, spec = plugins.spec(stype, label)
    inp = stage.get("input", ids[-1])
    if not isinstance(inp, str) or inp not in ids:
        raise PipelineError(f"{label}: \"input\" must be 'source' or the id of an earlier stage "
                            f"({', '.join(ids)}), got {_r(inp)}")
    params = stage.get("params", {})
    if not isinstance(params, dict):
        raise PipelineError(f"{label}: \"params\" must be an object, got {_kind(params)}")
    validate_params(spec.params, params, f"{label} ({stype})")
    isolation = check_option("isolation", stage.get("isolation", spec.isolation), ISOLATION, label,
                             what="key", error=PipelineError)
    timeout = stage.get("isolation_timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout <= MAX_ISOLATION_TIMEOUT
                                or isolation != "process"):
        raise PipelineError(f"{label}: \"isolation_timeout\" must be a number of seconds above 0 "
                            f"and at most {MAX_ISOLATION_TIMEOUT:g} on a stage with isolation "
                            f"\"process\", got {_r(timeout)}")
    ids.append(sid)
    wanted = stage.get("plugin_version")
    if wanted is None:
        return []
    if not isinstance(wanted, str):
        raise PipelineError(f"{label}: \"plugin_version\" must be a string, got {_r(wanted)}")
    return _check_version(record.manifest, wanted, label)


def _check_version(manifest, wanted, label):
    have = manifest.version
    if have == wanted:
        return []
    h, w = _version_tuple(have), _version_tuple(wanted)
    compatible = h[0] == w[0] and (h[0] > 0 or h[1] == w[1]) and h >= w
    if not compatible:
        raise PipelineError(f"{label}: saved with plugin '{manifest.name}' version {wanted}, but "
                            f"version {have} is installed ({manifest.path}); these versions are "
                            f"not compatible. Install plugin '{manifest.name}' {wanted}.")
    return [f"{label}: saved with plugin '{manifest.name}' {wanted}, running with {have}"]


def _version_tuple(text):
    nums = re.findall(r"\d+", text)[:3]
    return tuple(int(n) for n in nums) + (0,) * (3 - len(nums))


def _validate_sink(sink, i, ids, where):
    from ..sinks import sink_class

    label = f"{where}: sinks[{i}]"
    if not isinstance(sink, dict):
        raise PipelineError(f"{label}: expected an object with \"type\" and \"input\", got {_kind(sink)}")
    _keys(sink, SINK_KEYS, label)
    if not isinstance(sink.get("type"), str):
        raise PipelineError(f"{label}: \"type\" must be a string, got {_r(sink.get('type'))}")
    _prefixed(sink_class, sink["type"], label)
    if sink.get("input") not in ids:
        raise PipelineError(f"{label}: \"input\" must be 'source' or a stage id "
                            f"({', '.join(ids)}), got {_r(sink.get('input'))}")
    if not isinstance(sink.get("params", {}), dict):
        raise PipelineError(f"{label}: \"params\" must be an object, got {_kind(sink['params'])}")


def pipeline_from_dict(cls, doc, plugins=None, where="pipeline"):
    """Validate ``doc`` completely, then build the pipeline."""
    plugins = plugins or default_manager()
    for text in validate(doc, plugins, where):
        warnings.warn(text, PluginVersionWarning, stacklevel=3)
    try:
        pipeline = cls(source=doc.get("source"), plugins=plugins)
    except (ParameterError, PipelineError) as exc:
        raise type(exc)(f"{where}: source: {exc}") from None
    for stage in doc["stages"]:
        pipeline.add(stage["type"], id=stage["id"], input=stage.get("input"),
                     isolation=stage.get("isolation"),
                     isolation_timeout=stage.get("isolation_timeout"), **stage.get("params", {}))
    for sink in doc.get("sinks", []):
        try:
            pipeline.add_sink(sink["type"], sink["input"], params=sink.get("params", {}))
        except (ParameterError, PipelineError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
    return pipeline


def _prefixed(fn, arg, label):
    try:
        return fn(arg)
    except PipelineError as exc:
        raise PipelineError(f"{label}: {exc}") from None


def _keys(obj, allowed, label):
    """Raise PipelineError for keys of ``obj`` outside ``allowed``."""
    check_keys(obj, allowed, label, error=PipelineError)


class _DuplicateKey(ValueError):
    """A JSON object names a key twice."""


def _unique_keys(pairs):
    """Object hook: a repeated key is an error (json keeps the last one silently)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"key {_r(key)} appears twice in one object "
                                f"(keys: {', '.join(map(_r, dict(pairs)))})")
        out[key] = value
    return out


def _finite_float(text):
    """Float hook: ``1e400`` would silently become infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range (finite numbers up to ~1.8e308)")
    return value


def _no_constant(name):
    raise ValueError(f"{name} is not valid JSON (write numbers, or null)")


def _kind(value):
    """Type name and bounded repr of a value, e.g. ``list [1, 2]``."""
    return f"{type(value).__name__} {_r(value)}"
