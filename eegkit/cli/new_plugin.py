"""``eegkit new-plugin NAME``: scaffold a plugin folder."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("new-plugin", help="create a plugin folder to start from",
                       description="Write plugins/NAME/ with plugin.toml, stage.py (a working "
                       "stateful stage), tests/test_stage.py and a README; it passes "
                       "'eegkit plugins check NAME' unchanged.")
    p.add_argument("name", help="plugin name (lowercase letters, digits, '_')")
    p.add_argument("--ui", action="store_true", help="also write ui/bundle.js, a notebook view")
    p.add_argument("--lang", default="python", choices=("python", "c", "rust", "wasm"),
                   help="the stage's language: python (numba, default), c or rust (a native "
                   "library), wasm (C built for WebAssembly with clang); native and wasm "
                   "plugins are built by 'eegkit plugins build NAME'")
    p.add_argument("--path", default=None, metavar="DIR",
                   help="folder that receives the plugin (default: ./plugins)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..plugin._scaffold import new_plugin

    folder = new_plugin(args.name, args.path, ui=args.ui, lang=args.lang)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    print(f"created plugin '{args.name}' in {folder}:")
    for f in files:
        print(f"    {f}")
    if args.lang == "python":
        print(f"next: edit {folder / 'stage.py'}, then run: eegkit plugins check {args.name}")
    else:
        source = folder / ("src/lib.rs" if args.lang == "rust" else "stage.c")
        print(f"next: edit {source}, then run: eegkit plugins build {args.name} && "
              f"eegkit plugins check {args.name}")
    if args.path is not None and args.path.rstrip("/") != "plugins":
        print(f"(eegkit finds it when {args.path} is on EEGKIT_PLUGINS_PATH)")
    return 0
