"""IPython magics: ``%eegkit ...`` line magics and the ``%%eegkit_stage`` cell magic.

``%%eegkit_stage NAME`` turns a cell into a real plugin folder ``NAME/`` (a
``plugin.toml`` and a ``stage.py`` holding the cell) in a per-session folder that
is put first on ``EEGKIT_PLUGINS_PATH``; the default plugin manager is refreshed,
so the normal loader imports and numba-compiles it and stage type ``NAME.NAME``
is usable at once. ``%eegkit save-stage NAME`` copies that folder to
``./plugins/NAME`` where ``eegkit run`` finds it.
"""

from __future__ import annotations

import ast
import atexit
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from .._errors import EegkitError
from ..plugin._toml import toml_value as _toml

USAGE = """\
Usage:
  %eegkit plugins                      plugins found, their status and stage types
  %eegkit status                       pipelines of this session: run state, per-stage health and timing
  %eegkit export PIPELINE PATH.json    write the pipeline named PIPELINE to PATH.json
  %eegkit run PATH.json [NAME]         load a pipeline JSON as NAME (default: the file name),
                                       start it and show its dashboard (--no-start: only load and show)
  %eegkit stop [NAME|all]              stop the background run of pipeline NAME (a variable or a
                                       Pipeline(name=...)); default: every running pipeline
  %eegkit reload [PLUGIN]              reload a plugin's code (default: every plugin) into running pipelines
  %eegkit save-stage NAME [DIR]        write the %%eegkit_stage NAME as a plugin folder (default ./plugins/NAME)

  %%eegkit_stage NAME                  cell magic: the cell defines process(x, *state) (numba-compiled),
                                       optionally setup(info, **params) and PARAMS = {name: {type, default, ...}};
                                       it becomes stage type 'NAME.NAME'"""
STAGE_USAGE = "Usage: %%eegkit_stage NAME   (NAME: lowercase letters, digits and '_', e.g. my_gain)"
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
CELL_KEYS = ("PARAMS", "VIEW", "DESCRIPTION")
TEST_INFO = (8, 250.0)  # the stream a new cell stage is tried on: channels, Hz

_SESSION = None  # session plugin folder, created on first use
_SAVED = set()   # folders written by save-stage (a cell may shadow those)


class UsageError(Exception):
    """Bad magic arguments: shown as a message with the usage, never as a traceback."""


def session_plugins() -> Path:
    """This session's plugin folder (first on ``EEGKIT_PLUGINS_PATH``)."""
    global _SESSION
    if _SESSION is None:
        root = Path(tempfile.mkdtemp(prefix="eegkit-session-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _SESSION = root / "plugins"
        _SESSION.mkdir()
    path = os.environ.get("EEGKIT_PLUGINS_PATH", "")
    entries = [p for p in path.split(os.pathsep) if p]
    if str(_SESSION) not in entries:
        os.environ["EEGKIT_PLUGINS_PATH"] = os.pathsep.join([str(_SESSION), *entries])
    return _SESSION


@magics_class
class EegkitMagics(Magics):
    """``%eegkit`` and ``%%eegkit_stage``."""

    @line_magic
    def eegkit(self, line):
        """%eegkit plugins | status | export | run | stop | reload | save-stage (``%eegkit help``)."""
        try:
            args = shlex.split(line)
        except ValueError as exc:
            return _usage(f"cannot parse the arguments: {exc}")
        if not args or args[0] in ("help", "-h", "--help"):
            print(USAGE)
            return None
        command, rest = args[0], args[1:]
        handler = COMMANDS.get(command)
        if handler is None:
            from .._check import did_you_mean

            return _usage(f"unknown command {command!r}.{did_you_mean(command, COMMANDS)}")
        try:
            return handler(self, rest)
        except UsageError as exc:
            return _usage(str(exc), command)
        except EegkitError as exc:
            print(f"%eegkit {command}: error: {exc}", file=sys.stderr)
            return None

    @cell_magic
    def eegkit_stage(self, line, cell):
        """Define stage type ``NAME.NAME`` from the cell (see the module docstring)."""
        args = line.split()
        if len(args) != 1 or not NAME_RE.match(args[0]):
            print(STAGE_USAGE + (f"\n(got {line.strip()!r})" if line.strip() else ""), file=sys.stderr)
            return None
        try:
            define_stage(args[0], cell, [p for _, p in _pipelines(self.shell.user_ns)])
        except (UsageError, EegkitError) as exc:
            print(f"%%eegkit_stage {args[0]}: {exc}", file=sys.stderr)
        return None


def _usage(message, command=None):
    """The problem, then the usage line of ``command`` (or all of them)."""
    lines = [ln for ln in USAGE.splitlines() if command and ln.strip().startswith(f"%eegkit {command}")]
    usage = f"Usage:\n{lines[0]}\n(%eegkit help for every command)" if lines else USAGE
    print(f"%eegkit: {message}\n{usage}", file=sys.stderr)


# -- line magics --------------------------------------------------------------------
def cmd_plugins(magics, args):
    """Table of plugins: name, version, status, origin, stage types; problems below."""
    if args:
        raise UsageError("'plugins' takes no arguments")
    from ..plugin import list_plugins

    records = list_plugins(refresh=True)
    rows = [("plugin", "version", "status", "origin", "stage types")]
    for r in records:
        version = r.manifest.version if r.manifest else "-"
        rows.append((r.name, version, r.status, r.origin, ", ".join(r.stages) or "-"))
    print(table(rows))
    problems = [r for r in records if r.status not in ("ok",) and r.message]
    for r in problems:
        print(f"\n{r.name} ({r.status}): {r.message}")


def cmd_status(magics, args):
    """Pipelines of the session (namespace and running ones) with per-stage health."""
    if args:
        raise UsageError("'status' takes no arguments")
    found = _pipelines(magics.shell.user_ns)
    if not found:
        print("no pipelines in this session (make one with eegkit.Pipeline())")
        return
    for name, p in found:
        runner = getattr(p, "runner", None)
        if runner is None:
            state = "not started"
        else:
            s = runner.stats()
            lag = "-" if s["lag_ms"] is None else f"{s['lag_ms']:.1f} ms"
            state = (f"{s['state']}: {s['seconds']:.1f} s of data, {s['chunks']} chunks, "
                     f"{s['dropped_chunks']} dropped, lag {lag}")
            if s["error"]:
                state += f"; error: {s['error']}"
        print(f"{name}: {state}")
        rows = [("  stage", "type", "status", "calls", "median µs", "p99 µs", "error")]
        for st in p.stats():
            rows.append((f"  {st['id']}", st["type"], st["status"], str(st["calls"]),
                         _num(st["median_us"]), _num(st["p99_us"]), st["error"] or ""))
        print(table(rows) if len(rows) > 1 else "  (no stages)")
        for stage in p.stages:
            if stage.last_error:
                print(f"  {stage.id}: {stage.last_error}")
        print()


def cmd_export(magics, args):
    """``export PIPELINE PATH.json``."""
    if len(args) != 2:
        raise UsageError("'export' needs PIPELINE and PATH.json, e.g. %eegkit export p pipeline.json")
    name, path = args
    pipeline = _lookup(magics.shell.user_ns, name)
    pipeline.to_json(path)
    print(f"wrote {path} ({len(pipeline.stages)} stages); run it with: eegkit run {path}")


def cmd_run(magics, args):
    """``run PATH.json [NAME] [--no-start]``."""
    start = "--no-start" not in args
    args = [a for a in args if a != "--no-start"]
    if not 1 <= len(args) <= 2:
        raise UsageError("'run' needs PATH.json and optionally a NAME, e.g. %eegkit run pipeline.json p")
    path = Path(args[0])
    name = args[1] if len(args) == 2 else re.sub(r"\W", "_", path.stem) or "pipeline"
    if not name.isidentifier():
        raise UsageError(f"NAME must be a Python identifier, got {name!r}")
    from ._pipeline import Pipeline
    from ..runtime._registry import claim_name

    old = magics.shell.user_ns.get(name)
    if isinstance(old, Pipeline):
        old.stop()
    pipeline = Pipeline.from_json(path)
    claim_name(pipeline, name)  # a pipeline loaded under this name before stops
    magics.shell.user_ns[name] = pipeline
    if start:
        pipeline.start()
    print(f"loaded {path} as '{name}'" + (f"; running (stop with {name}.stop())" if start else ""))
    from IPython.display import display

    display(pipeline.show())


def cmd_stop(magics, args):
    """``stop [NAME|all]``: stop background runs (every running pipeline by default)."""
    if len(args) > 1:
        raise UsageError("'stop' takes at most one NAME (or 'all')")
    from ._pipeline import Pipeline
    from ..runtime._registry import named, stop_all

    if not args or args[0] == "all":
        stopped = stop_all()
        print(f"stopped {len(stopped)} running pipeline{'s' if len(stopped) != 1 else ''}")
        return
    name = args[0]
    value = magics.shell.user_ns.get(name)
    pipeline = value if isinstance(value, Pipeline) else named(name)
    if pipeline is None:
        raise UsageError(f"no pipeline named {name!r} (a notebook variable or Pipeline(name=...)); "
                         f"see %eegkit status")
    was = pipeline.runner is not None and pipeline.runner.running
    pipeline.stop()
    print(f"stopped '{name}'" if was else f"'{name}' was not running")


def cmd_reload(magics, args):
    """``reload [PLUGIN]``: new plugin code swapped into live pipelines between two chunks."""
    if len(args) > 1:
        raise UsageError("'reload' takes at most one PLUGIN name")
    from ..plugin import default_manager

    manager = default_manager()
    manager.refresh()
    if args and manager.record(args[0]) is None:
        raise UsageError(f"no plugin named {args[0]!r}; see %eegkit plugins")
    lines = reload_stages(args[0] if args else None)
    print("\n".join(lines) if lines else
          f"no live pipeline uses {'plugin ' + repr(args[0]) if args else 'any plugin'}")


def reload_stages(plugin=None, pipelines=None) -> list:
    """Reload ``plugin`` (or every plugin) in ``pipelines`` (default: every live one)
    with the hot-reload machinery; one report line per stage."""
    from ..live._reload import reload

    return [str(result) for result in reload(plugin, pipelines)]


def cmd_save_stage(magics, args):
    """``save-stage NAME [DIR]``."""
    if not 1 <= len(args) <= 2:
        raise UsageError("'save-stage' needs the NAME of a %%eegkit_stage cell and optionally a DIR")
    name = args[0]
    src = session_plugins() / name
    if not (src / "plugin.toml").is_file():
        raise UsageError(f"no %%eegkit_stage {name} cell was run in this session")
    dest = Path(args[1]) if len(args) == 2 else Path("plugins") / name
    if dest.name != name:
        dest = dest / name  # a plugin folder is named after its plugin
    if dest.exists() and any(dest.iterdir()):
        from ..plugin import read_manifest

        try:
            same = read_manifest(dest).name == name
        except EegkitError:
            same = False
        if not same:
            raise UsageError(f"{dest} exists and is not plugin {name!r}; choose another DIR")
    dest.mkdir(parents=True, exist_ok=True)
    for file in ("plugin.toml", "stage.py"):
        shutil.copy2(src / file, dest / file)
    _SAVED.add(dest.resolve())
    print(f"wrote plugin folder {dest} (plugin.toml, stage.py). `eegkit run` finds stage type "
          f"'{name}.{name}' when started in the folder holding plugins/, or with "
          f"EEGKIT_PLUGINS_PATH={dest.parent.resolve()}")


COMMANDS = {"plugins": cmd_plugins, "status": cmd_status, "export": cmd_export, "run": cmd_run,
            "stop": cmd_stop, "reload": cmd_reload, "save-stage": cmd_save_stage}


# -- cell magic ---------------------------------------------------------------------
def define_stage(name: str, cell: str, pipelines=()) -> None:
    """Write ``cell`` as plugin ``name`` in the session folder, load and try it; stages
    of that type in ``pipelines`` get the new code between two chunks."""
    decl = _read_cell(cell)
    from ..plugin import default_manager

    manager = default_manager()
    folder = session_plugins() / name
    existing = manager.record(name)
    if (existing is not None and existing.path.resolve() != folder.resolve()
            and existing.path.resolve() not in _SAVED):
        raise UsageError(f"a plugin named {name!r} already exists at {existing.path}; "
                         f"pick another NAME")
    files = {"plugin.toml": manifest_text(name, decl),
             "stage.py": f"# Written by %%eegkit_stage {name}\n{cell.rstrip()}\n"}
    old = {f: (folder / f).read_text(encoding="utf-8") for f in files if (folder / f).is_file()}
    folder.mkdir(parents=True, exist_ok=True)
    for file, text in files.items():
        (folder / file).write_text(text, encoding="utf-8")
    manager.refresh()
    record = manager.record(name)
    if record is None or not record.usable:
        # a rejected manifest leaves the last good version (or nothing) behind
        for file in files:
            if file in old:
                (folder / file).write_text(old[file], encoding="utf-8")
            else:
                (folder / file).unlink()
        if not old:
            folder.rmdir()
        manager.refresh()
        raise UsageError(record.message if record is not None else "the plugin was not found")
    t0 = time.perf_counter()
    stage_type = f"{name}.{name}"
    code = manager.load(stage_type, f"%%eegkit_stage {name}", reload=True)
    problem = _try_stage(code)
    took = time.perf_counter() - t0
    params = ", ".join(code.spec.params) or "no parameters"
    if problem:
        print(f"%%eegkit_stage {name}: stage type '{stage_type}' is defined, but it failed on a test "
              f"stream of {TEST_INFO[0]} channels at {TEST_INFO[1]:g} Hz:\n  {problem}", file=sys.stderr)
        return
    print(f"stage type '{stage_type}' ready ({params}; loaded and compiled in {took:.2f} s): "
          f"pipeline.add('{stage_type}', ...)")
    using = [p for p in pipelines if any(s.type == stage_type for s in p.stages)]
    if using:
        print("\n".join(reload_stages(name, using)))


def _read_cell(cell):
    """Check the cell's top level; return the literal PARAMS / VIEW / DESCRIPTION."""
    try:
        tree = ast.parse(cell)
    except SyntaxError as exc:
        raise UsageError(f"syntax error on line {exc.lineno} of the cell: {exc.msg}") from None
    functions = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if "process" not in functions:
        raise UsageError("the cell must define `def process(x, *state):` (the kernel, "
                         "compiled with numba); optionally `def setup(info, **params):` and "
                         "PARAMS = {'gain': {'type': 'float', 'default': 1.0}}")
    decl = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            key = node.targets[0].id
            if key in CELL_KEYS:
                try:
                    decl[key] = ast.literal_eval(node.value)
                except ValueError:
                    raise UsageError(f"{key} must be a literal (line {node.lineno}), "
                                     f"e.g. PARAMS = {{'gain': {{'type': 'float', 'default': 1.0}}}}") from None
    params = decl.get("PARAMS", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise UsageError("PARAMS must be a dict of declarations, e.g. "
                         "{'gain': {'type': 'float', 'default': 1.0, 'min': 0.0}}")
    for key in ("VIEW", "DESCRIPTION"):
        if key in decl and not isinstance(decl[key], str):
            raise UsageError(f"{key} must be a string, got {decl[key]!r}")
    decl["setup"] = "setup" in functions
    return decl


def manifest_text(name: str, decl: dict) -> str:
    """plugin.toml of a cell stage."""
    lines = ["[plugin]", f"name = {_toml(name)}", 'version = "0.1.0"', 'api = "1.0"',
             f"description = {_toml(decl.get('DESCRIPTION', f'Stage {name} written in a notebook.'))}",
             "", "[[stage]]", f"type = {_toml(name + '.' + name)}", 'module = "stage.py"']
    if decl.get("VIEW"):
        lines.append(f"view = {_toml(decl['VIEW'])}")
    if decl.get("DESCRIPTION"):
        lines.append(f"description = {_toml(decl['DESCRIPTION'])}")
    params = decl.get("PARAMS", {})
    if params:
        lines.append("[stage.params]")
        for pname, spec in params.items():
            if not isinstance(pname, str) or not pname.isidentifier():
                raise UsageError(f"PARAMS key {pname!r} must be a Python identifier")
            lines.append(f"{pname} = {_toml(spec)}")
    return "\n".join(lines) + "\n"


def _try_stage(code) -> str | None:
    """Set the stage up on a test stream and run its kernel once; the error, if any."""
    from .._info import StreamInfo
    from ..runtime._stage import Stage

    n, sfreq = TEST_INFO
    info = StreamInfo(sfreq, [f"ch{i}" for i in range(n)])
    stage = Stage(code, id="try", input="source", params={})
    logger = logging.getLogger("eegkit")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # the error is reported below, once
    try:
        stage.configure(info)
    finally:
        logger.setLevel(level)
    if stage.status == "ok":
        return None
    text = re.sub(r"\x1b\[[0-9;]*m", "", stage.error)  # numba colours its messages
    return text.replace("_WarmupError: ", "")


# -- helpers ------------------------------------------------------------------------
def _pipelines(ns) -> list:
    """(name, pipeline) of the namespace's pipelines, then running ones not named there."""
    from ._pipeline import Pipeline
    from ..runtime._runner import active

    found = [(k, v) for k, v in ns.items() if isinstance(v, Pipeline) and not k.startswith("_")]
    seen = {id(p) for _, p in found}
    for runner in active():
        if id(runner.pipeline) not in seen:
            seen.add(id(runner.pipeline))
            found.append((runner.pipeline.name or "(unnamed)", runner.pipeline))
    return found


def _lookup(ns, name):
    from ._pipeline import Pipeline

    if name not in ns:
        raise UsageError(f"no variable named {name!r} in the notebook")
    value = ns[name]
    if not isinstance(value, Pipeline):
        raise UsageError(f"{name!r} is a {type(value).__name__}, not an eegkit.Pipeline")
    return value


def table(rows) -> str:
    """Rows of strings as left-aligned columns."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(wd) for c, wd in zip(r, widths)).rstrip() for r in rows)


def _num(v):
    return "-" if v is None else f"{v:.1f}"


def load_ipython_extension(ipython):
    """Register the magics (called by ``%load_ext eegkit``)."""
    ipython.register_magics(EegkitMagics)
