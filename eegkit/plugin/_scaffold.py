"""``eegkit new-plugin``: write a working plugin folder to start from.

The plugin has one stateful stage (a one-pole high-pass filter), its tests (a
scipy reference and the chunk test), a README and, on request, a ``ui/bundle.js``
view. It passes ``eegkit plugins check`` unchanged.
"""

from __future__ import annotations

from pathlib import Path

from .._errors import ParameterError
from ._manifest import HOST_API, NAME_RE, _snake

TEMPLATES = Path(__file__).resolve().parent / "templates"
FILES = {  # written file -> template
    "plugin.toml": "plugin.toml.in",
    "stage.py": "stage.py.in",
    "tests/test_stage.py": "test_stage.py.in",
    "README.md": "README.md.in",
}
UI_FILES = {"ui/bundle.js": "bundle.js.in"}
LANGS = ("python", "c", "rust", "wasm")
NATIVE_FILES = {  # --lang: written file -> template
    "c": {"stage.c": "native/stage.c.in", "Makefile": "native/Makefile.c.in"},
    "rust": {"Cargo.toml": "rust/Cargo.toml.in", "src/lib.rs": "rust/lib.rs.in"},
    "wasm": {"stage.c": "native/stage.c.in", "Makefile": "native/Makefile.wasm.in"},
}
NATIVE_COMMON = {"plugin.toml": "native/plugin.toml.in", "tests/test_stage.py": "native/test_stage.py.in",
                 "README.md": "native/README.md.in", ".gitignore": "native/gitignore.in"}
_LANG_VALUES = {
    "c": {"__LANG_NAME__": "C", "__CODE_KEY__": 'library = "__NAME__"  # bin/<target-triple>/lib__NAME__.so',
          "__CODE_ROW__": "`library = \"__NAME__\"`",
          "__FILE_ROWS__": "| `stage.c` | the stage: setup, process (f64, f32) and free |\n"
                           "| `Makefile` | `make` builds `build/lib__NAME__.so` |\n",
          "__BUILD_NOTE__": "make, then copies the library into bin/<target-triple>/"},
    "rust": {"__LANG_NAME__": "Rust", "__CODE_KEY__": 'library = "__NAME__"  # bin/<target-triple>/lib__NAME__.so',
             "__CODE_ROW__": "`library = \"__NAME__\"`",
             "__FILE_ROWS__": "| `src/lib.rs` | the stage: setup, process (f64, f32) and free |\n"
                              "| `Cargo.toml` | a `cdylib` crate without dependencies |\n",
             "__BUILD_NOTE__": "cargo build --release --offline, then copies the library into bin/<target-triple>/"},
    "wasm": {"__LANG_NAME__": "C compiled to WebAssembly",
             "__CODE_KEY__": 'wasm = "kernel.wasm"  # sandboxed: fuel per chunk, memory limit, no imports',
             "__CODE_ROW__": "`wasm = \"kernel.wasm\"`",
             "__FILE_ROWS__": "| `stage.c` | the stage: setup, process (f64, f32) and free |\n"
                              "| `Makefile` | `make` builds `kernel.wasm` with clang (wasm32 target and wasm-ld) |\n",
             "__BUILD_NOTE__": "make: clang --target=wasm32 builds kernel.wasm"},
}
_CRASH = {"c": "A crash (segfault) in the library ends the process it runs in: set `isolation = \"process\"` "
               "to keep it from taking the pipeline with it.",
          "wasm": "The module runs sandboxed: a trap, an endless loop (its fuel runs out) or a "
                  "memory-hungry kernel disables only this stage."}
_CRASH["rust"] = _CRASH["c"]


def new_plugin(name: str, path=None, ui: bool = False, lang: str = "python") -> Path:
    """Create the plugin folder ``<path>/<name>``.

    Parameters
    ----------
    name : str
        Plugin name: lowercase letters, digits and ``_``, starting with a letter.
    path : path-like, optional
        Folder that receives the plugin (default: ``./plugins``, the project's
        plugin folder, which eegkit searches).
    ui : bool
        Also write ``ui/bundle.js``, a view of the stage's output, and use it.
    lang : {"python", "c", "rust", "wasm"}
        The stage's language: a numba-compiled ``stage.py``, or the same stage as a
        native library (C with a Makefile, Rust with a Cargo.toml) or a WebAssembly
        module (C built with clang's wasm32 target), built by ``eegkit plugins build``.

    Returns
    -------
    Path
        The new plugin folder.

    Raises
    ------
    ParameterError
        For an invalid name, or when the folder already exists.
    """
    if not isinstance(name, str) or not NAME_RE.match(name) or name.startswith("_"):
        hint = _snake(str(name)).strip("_") or "my_plugin"
        if hint[0].isdigit():
            hint = f"p_{hint}"
        raise ParameterError(f"new-plugin: invalid plugin name {name!r}: use lowercase letters, "
                             f"digits and '_', starting with a letter (e.g. {hint!r})")
    if lang not in LANGS:
        raise ParameterError(f"new-plugin: invalid value for the 'lang' parameter. Allowed values "
                             f"are {', '.join(map(repr, LANGS))}, but got {lang!r} instead.")
    root = Path("plugins") if path is None else Path(path)
    folder = root / name
    if folder.exists():
        raise ParameterError(f"new-plugin: {folder} already exists; choose another name or "
                             f"remove that folder")
    values = {
        "__NAME__": name,
        "__API__": f"{HOST_API[0]}.{HOST_API[1]}",
        "__VIEW__": "ui" if ui else "scope",
        "__UI__": '\n[ui]\nbundle = "ui/bundle.js"' if ui else "",
        "__UI_ROW__": "| `ui/bundle.js` | the stage's view in a notebook (a view module: it only draws) |\n"
                      if ui else "",
    }
    files = dict(FILES, **(UI_FILES if ui else {}))
    if lang != "python":
        files = dict(NATIVE_COMMON, **NATIVE_FILES[lang], **(UI_FILES if ui else {}))
        values = {**_LANG_VALUES[lang], "__CRASH_NOTE__": _CRASH[lang], **values}
    for target, template in files.items():
        text = (TEMPLATES / template).read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace(key, value)
        out = folder / target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    return folder
