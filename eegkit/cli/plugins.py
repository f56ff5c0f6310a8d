"""``eegkit plugins list``: what discovery found, without importing plugin code."""

from __future__ import annotations

import json


def add_parser(sub):
    p = sub.add_parser("plugins", help="list and inspect plugins")
    psub = p.add_subparsers(dest="plugins_command", metavar="ACTION")
    lst = psub.add_parser("list", help="every discovered plugin with its status and stages")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.add_argument("--verbose", "-v", action="store_true", help="show parameters")
    lst.set_defaults(func=list_main)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def list_main(args) -> int:
    from ..plugin import list_plugins

    records = list_plugins()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    if not records:
        print("no plugins found")
        return 0
    for r in records:
        m = r.manifest
        head = f"{r.name} {m.version if m else '?'} (api {m.api if m else '?'}) [{r.status}]"
        print(f"{head}  {r.path}")
        if r.message:
            print(f"    {r.message}")
        for spec in (m.stages if m else ()):
            print(f"    {spec.type}: {spec.description}")
            if args.verbose:
                for name, ps in spec.params.items():
                    unit = f" {ps.unit}" if ps.unit else ""
                    print(f"        {name}: {ps.type} = {ps.default!r}{unit}")
    return 0
