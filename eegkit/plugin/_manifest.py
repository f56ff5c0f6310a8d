"""plugin.toml: read, validate, and describe a plugin without importing its code."""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from .._check import check_keys, check_option, short_repr as _r, validate_type
from .._errors import ApiVersionError, ManifestError
from ._params import parse_param

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HOST_API = (1, 1)  # 1.1: [[stage]] output = "in-place" | "new", setup may return eegkit.Setup
MANIFEST = "plugin.toml"
VIEWS = ("scope", "spectrum", "bars", "topomap", "ui", "none")
# how a stage's code runs: in this process, or in a child process fed through shared memory;
# the one list the manifest, Pipeline.add, the pipeline document and the CLI check against
ISOLATION = ("none", "process")
OUTPUTS = ("in-place", "new")  # what process does with its block; absent = found at warm-up
PLUGIN_KEYS = ("name", "version", "api", "description", "authors", "license", "homepage")
STAGE_KEYS = ("type", "module", "library", "wasm", "fuel", "setup", "process", "view",
              "description", "isolation", "output", "params")
CODE_KEYS = ("module", "library", "wasm")  # exactly one per stage: where its kernel is
TOP_KEYS = ("plugin", "stage", "ui")
UI_KEYS = ("bundle",)
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?([.+-]?[0-9A-Za-z.]+)?$")
API_RE = re.compile(r"^(\d+)\.(\d+)$")
# tomllib's time grows faster than linearly with the parts of a dotted key (40,000 parts:
# minutes), so both are bounded before parsing; a real manifest is a few kB, 4 parts deep
MAX_MANIFEST_BYTES = 64 * 1024
MAX_KEY_PARTS = 8
# TOML tokens, enough to tell keys from strings and comments; every alternative consumes
# what it matches (an unterminated string runs to the end), so one pass is linear
_TOKEN = re.compile(r'"""[\s\S]*?(?:"""|\Z)|\'\'\'[\s\S]*?(?:\'\'\'|\Z)|"(?:[^"\\\n]|\\.)*"?'
                    r"|'[^'\n]*'?|#[^\n]*|[A-Za-z0-9_-]+|[ \t]+|[\s\S]")


@dataclass(frozen=True)
class StageSpec:
    """One ``[[stage]]`` of a manifest."""

    type: str
    plugin: str
    module: Path | None   # a Python stage's module; None for library and wasm stages
    setup: str
    process: str
    view: str | None
    description: str
    isolation: str
    params: dict  # name -> ParamSpec, in declaration order
    output: str | None = None  # "in-place" | "new"; None: the warm-up call tells
    library: str | None = None  # a native stage: bin/<target-triple>/lib<library>.so
    wasm: Path | None = None    # a WebAssembly stage: its .wasm (or .wat) module
    fuel: int | None = None     # wasm: instructions allowed per channel-sample and chunk

    @property
    def kind(self) -> str:
        """Where the kernel comes from: ``"python"``, ``"native"`` or ``"wasm"``."""
        return "native" if self.library else "wasm" if self.wasm else "python"

    @property
    def symbol(self) -> str:
        """Prefix of a native or wasm stage's exported functions (``<stage>_setup``, ...)."""
        return self.type.split(".", 1)[1]

    def to_dict(self) -> dict:
        """Plain dict for listings."""
        d = {"type": self.type, "module": self.module.name if self.module else None,
             "view": self.view, "description": self.description, "isolation": self.isolation,
             "output": self.output,
             "params": {n: p.to_dict() for n, p in self.params.items()}}
        if self.kind != "python":
            d.update(kind=self.kind, library=self.library,
                     wasm=self.wasm.name if self.wasm else None)
        return d


@dataclass(frozen=True)
class Manifest:
    """A validated ``plugin.toml``."""

    name: str
    version: str
    api: str
    description: str
    path: Path            # the plugin folder
    stages: tuple         # of StageSpec
    ui_bundle: Path | None

    @property
    def api_tuple(self) -> tuple:
        """``api`` as ``(major, minor)``."""
        major, minor = API_RE.match(self.api).groups()
        return int(major), int(minor)


def read_manifest(folder, expected_name: str | None = None) -> Manifest:
    """Read and validate ``folder/plugin.toml``.

    Parameters
    ----------
    folder : path-like
        The plugin folder.
    expected_name : str, optional
        The name the plugin must have (the folder name for folder plugins).

    Raises
    ------
    ManifestError
        With the file, the field, what was expected and what was found.
    """
    folder = Path(folder)
    file = folder / MANIFEST
    where = str(file)
    text = _read_text(folder, file, where)
    parts = _deepest_key(text)
    if parts > MAX_KEY_PARTS:
        raise ManifestError(f"{where}: a dotted key has {parts} parts; at most {MAX_KEY_PARTS} "
                            f"are accepted (a manifest needs 4, as in stage.params.window.max)")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{where}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ManifestError(f"{where}: invalid TOML: arrays or tables nested too deeply") from None
    _check_keys(doc, TOP_KEYS, where, "top level")
    plugin = _table(doc, "plugin", where)
    _check_keys(plugin, PLUGIN_KEYS, where, "[plugin]")
    name = _string(plugin, "name", where, "[plugin]")
    _check_name(name, expected_name, where)
    version = _string(plugin, "version", where, "[plugin]")
    if not VERSION_RE.match(version):
        raise ManifestError(f"{where}: [plugin] version must look like '1.2.0', got {_r(version)}")
    api = _string(plugin, "api", where, "[plugin]")
    if not API_RE.match(api):
        raise ManifestError(f"{where}: [plugin] api must be 'MAJOR.MINOR' like '1.0', got {_r(api)}")
    description = _string(plugin, "description", where, "[plugin]", default="")
    ui = doc.get("ui", {})
    if not isinstance(ui, dict):
        raise ManifestError(f"{where}: [ui] must be a table, got {type(ui).__name__}")
    _check_keys(ui, UI_KEYS, where, "[ui]")
    bundle = None
    if "bundle" in ui:
        bundle = _inside(folder, _string(ui, "bundle", where, "[ui]"), where, "[ui] bundle", ".js")
    stages = doc.get("stage", [])
    if not isinstance(stages, list) or not stages:
        raise ManifestError(f"{where}: expected at least one [[stage]] table")
    specs, seen = [], set()
    for i, stage in enumerate(stages):
        spec = _read_stage(stage, i, name, folder, bundle, where)
        if spec.type in seen:
            raise ManifestError(f"{where}: stage type {_r(spec.type)} is declared twice")
        seen.add(spec.type)
        specs.append(spec)
    return Manifest(name=name, version=version, api=api, description=description,
                    path=folder, stages=tuple(specs), ui_bundle=bundle)


def _read_text(folder: Path, file: Path, where: str) -> str:
    """The manifest's text: a regular file inside ``folder``, at most MAX_MANIFEST_BYTES,
    opened without blocking (a FIFO would wait for a writer for ever)."""
    try:
        root, real = folder.resolve(), file.resolve(strict=True)
    except FileNotFoundError:
        raise ManifestError(f"{where}: no plugin.toml in this plugin folder") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise ManifestError(f"{where}: cannot read: {exc}") from None
    if root not in real.parents:
        raise ManifestError(f"{where}: plugin.toml leaves the plugin folder (resolves to {real}); "
                            f"it must be a file inside {root}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(real, flags)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise ManifestError(f"{where}: plugin.toml must be a regular file, not a "
                                    f"{_kind(mode)}")
            chunks, size = [], 0
            while size <= MAX_MANIFEST_BYTES:
                chunk = os.read(fd, MAX_MANIFEST_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ManifestError(f"{where}: cannot read: {exc}") from None
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{where}: larger than {MAX_MANIFEST_BYTES // 1024} KB; a manifest "
                            f"names a plugin, its stages and their parameters in a few kB")
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{where}: cannot read: {exc}") from None


def _kind(mode) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO (named pipe)"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def _deepest_key(text: str) -> int:
    """Most parts in a dotted run of keys (``a.b."c"``) outside strings and comments."""
    parts = best = 0
    dot = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        first = token[0]
        if first in " \t":
            continue
        if token == ".":
            dot = True
            continue
        if first.isalnum() or first in "_-\"'":
            parts = parts + 1 if dot and parts else 1
            best = max(best, parts)
        else:
            parts = 0
        dot = False
    return best


def check_api(manifest: Manifest) -> str | None:
    """Apply the plugin-API version policy.

    Returns a warning text when the plugin targets a newer minor version than the
    host; raises ApiVersionError when the major versions differ.
    """
    major, minor = manifest.api_tuple
    host = f"{HOST_API[0]}.{HOST_API[1]}"
    if major != HOST_API[0]:
        raise ApiVersionError(
            f"{manifest.path / MANIFEST}: plugin '{manifest.name}' targets plugin API "
            f"{manifest.api}, but this eegkit speaks plugin API {host}; major versions must "
            f"match. Use a version of the plugin written for API {HOST_API[0]}.x.")
    if minor > HOST_API[1]:
        return (f"plugin '{manifest.name}' targets plugin API {manifest.api}, newer than this "
                f"eegkit's {host}; it is loaded, but features newer than {host} may not work. "
                f"Upgrade eegkit to silence this warning.")
    return None


def _read_stage(stage, i, name, folder, bundle, where) -> StageSpec:
    label = f"[[stage]] #{i + 1}"
    if not isinstance(stage, dict):
        raise ManifestError(f"{where}: {label} must be a table")
    _check_keys(stage, STAGE_KEYS, where, label)
    stype = _string(stage, "type", where, label)
    label = f"stage {_r(stype)}"
    suffix = stype.split(".", 1)[-1]
    if not stype.startswith(name + ".") or not NAME_RE.match(suffix):
        raise ManifestError(f"{where}: stage type {_r(stype)} must be '{name}.<lowercase_name>' "
                            f"(e.g. '{name}.{_snake(suffix)}')")
    code = [k for k in CODE_KEYS if k in stage]
    if len(code) != 1:
        got = " and ".join(code) if code else "none of them"
        raise ManifestError(f"{where}: {label} must name its code with exactly one of module = "
                            f"\"stage.py\" (Python), library = \"{name}\" (a native library "
                            f"built into bin/<target-triple>/) or wasm = \"kernel.wasm\"; "
                            f"got {got}")
    module = library = wasm = fuel = None
    if "module" in stage:
        module = _inside(folder, _string(stage, "module", where, label), where,
                         f"{label} module", ".py")
    elif "library" in stage:
        library = _string(stage, "library", where, label)
        if not NAME_RE.match(library):
            raise ManifestError(f"{where}: {label} library must be a library name (lowercase "
                                f"letters, digits, '_'; 'fast_iir' for libfast_iir.so), got "
                                f"{_r(library)}")
    else:
        rel = _string(stage, "wasm", where, label)
        # may not exist yet: `eegkit plugins build` makes it (the loader says so)
        wasm = _inside(folder, rel, where, f"{label} wasm", ".wat" if rel.endswith(".wat")
                       else ".wasm", must_exist=False)
    if "fuel" in stage:
        fuel = stage["fuel"]
        if wasm is None or isinstance(fuel, bool) or not isinstance(fuel, int) or fuel < 1:
            raise ManifestError(f"{where}: {label} fuel must be a positive integer (instructions "
                                f"per channel-sample) on a wasm stage, got {_r(fuel)}")
    setup = _string(stage, "setup", where, label, default="setup")
    process = _string(stage, "process", where, label, default="process")
    for key, fn in (("setup", setup), ("process", process)):
        if not fn.isidentifier():
            raise ManifestError(f"{where}: {label} {key} must be a function name, got {_r(fn)}")
    view = stage.get("view")
    if view is not None:
        check_option("view", view, VIEWS, f"{where}: {label}", what="key", error=ManifestError)
    if view == "ui" and bundle is None:
        raise ManifestError(f"{where}: {label} has view = \"ui\" but the manifest has no "
                            f"[ui] bundle = \"ui/bundle.js\"")
    isolation = check_option("isolation", stage.get("isolation", "none"), ISOLATION,
                             f"{where}: {label}", what="key", error=ManifestError)
    output = stage.get("output")
    if output is not None:  # process changes its block in place and returns None, or returns a new array
        check_option("output", output, OUTPUTS, f"{where}: {label}", what="key", error=ManifestError)
    raw_params = stage.get("params", {})
    if not isinstance(raw_params, dict):
        raise ManifestError(f"{where}: {label} params must be a table")
    params = {k: parse_param(k, v, f"{where}: {label}") for k, v in raw_params.items()}
    return StageSpec(type=stype, plugin=name, module=module, setup=setup, process=process,
                     view=view, description=_string(stage, "description", where, label, default=""),
                     isolation=isolation, params=params, output=output, library=library,
                     wasm=wasm, fuel=fuel)


def _check_keys(table, allowed, where, label):
    """Raise ManifestError for keys of ``table`` (at ``label``) outside ``allowed``."""
    check_keys(table, allowed, where, within=f" in {label}", error=ManifestError)


def _table(doc, key, where):
    value = doc.get(key)
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: missing [{key}] table" if value is None
                            else f"{where}: [{key}] must be a table, got {type(value).__name__}")
    return value


def _string(table, key, where, label, default=None):
    if key not in table:
        if default is not None:
            return default
        raise ManifestError(f"{where}: {label} is missing the required key '{key}'")
    return validate_type(table[key], str, f"{label} {key}", where, type_name="a string",
                         error=ManifestError)


def _check_name(name, expected, where):
    if not NAME_RE.match(name):
        raise ManifestError(f"{where}: [plugin] name must be lowercase letters, digits and '_' "
                            f"(a Python identifier), got {_r(name)}")
    if expected is not None and name != expected:
        raise ManifestError(f"{where}: [plugin] name {_r(name)} must equal the folder name {_r(expected)}")


def _inside(folder: Path, rel: str, where: str, label: str, suffix: str,
            must_exist: bool = True) -> Path:
    """Resolve ``rel`` inside ``folder``, refusing anything that escapes it (symlinks too)."""
    if Path(rel).is_absolute() or "\\" in rel or "\x00" in rel:
        raise ManifestError(f"{where}: {label} must be a relative path inside the plugin "
                            f"folder, got {_r(rel)}")
    try:
        root = folder.resolve()
        target = (folder / rel).resolve()
        if root != target and root not in target.parents:
            raise ManifestError(f"{where}: {label} {_r(rel)} leaves the plugin folder (resolves "
                                f"to {target}); every path must stay inside {root}")
        if target.suffix != suffix:
            raise ManifestError(f"{where}: {label} must be a {suffix} file, got {_r(rel)}")
        if must_exist and not target.is_file():
            raise ManifestError(f"{where}: {label} {_r(rel)} does not exist in {folder}")
    except (OSError, RuntimeError) as exc:  # a name too long; RuntimeError: a symlink loop
        raise ManifestError(f"{where}: {label} {_r(rel)} cannot be used: {exc}") from None
    return target


def _snake(text):
    return re.sub(r"[^a-z0-9_]", "_", re.sub(r"(?<!^)(?=[A-Z])", "_", text).lower()) or "stage"
