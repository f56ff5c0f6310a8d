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


def new_plugin(name: str, path=None, ui: bool = False) -> Path:
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
    for target, template in files.items():
        text = (TEMPLATES / template).read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace(key, value)
        out = folder / target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    return folder
