"""The package's layers (DESIGN §9): imports point one way, including imports inside
functions, and no module reaches into another layer's private attributes of a pipeline.

leaves → plugin → runtime (+ sources, sinks) → live → notebook → batching → cli
"""

import ast
from pathlib import Path

import eegkit

PACKAGE = Path(eegkit.__file__).parent
# rank of each layer: a module may import only from its own rank or lower ones
RANKS = {"leaf": 0, "plugin": 1, "sources": 2, "sinks": 2, "runtime": 3, "live": 4,
         "notebook": 5, "batching": 6, "cli": 7, "top": 8}


def layer_of(module: str) -> str:
    """Layer of a module name inside eegkit ('eegkit.runtime._stage' → 'runtime')."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__", "testing"):
        return "top"  # the package's face: re-exports, ``python -m eegkit``, eegkit.testing
    name = parts[1]
    if name in RANKS:
        return name
    return "leaf"  # _errors, _info, _numba, _check, _paths, _optional, _version, testing


def imports_of(path: Path, module: str):
    """Absolute names of the eegkit modules that ``path`` imports (at any depth)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "eegkit":
                continue
            for alias in node.names:  # `from . import _numba` imports a module
                sub = f"{target}.{alias.name}"
                yield sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() else target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "eegkit":
                    yield alias.name


def module_graph() -> dict:
    """eegkit module → set of eegkit modules it imports."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts)
        graph[module] = set(imports_of(path, module))
    return graph


def test_imports_point_one_way():
    wrong = []
    for module, targets in sorted(module_graph().items()):
        here = layer_of(module)
        for target in sorted(targets):
            there = layer_of(target)
            if RANKS[there] > RANKS[here]:
                    wrong.append(f"{module} ({here}) imports {target} ({there})")
    assert not wrong, "imports pointing up the layers:\n" + "\n".join(wrong)


def test_no_import_cycle_between_layers():
    edges = {}
    for module, targets in module_graph().items():
        for target in targets:
            a, b = layer_of(module), layer_of(target)
            if a != b and "top" not in (a, b):
                edges.setdefault(a, set()).add(b)
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("layer cycle: " + " → ".join(stack[stack.index(node):] + [node]))
        if node in seen:
            return
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for node in sorted(edges):
        visit(node)


def test_no_private_pipeline_fields_outside_the_runtime():
    """Other layers use the pipeline's public hooks (between_chunks, reconfigure, step...)."""
    private = ("_lock", "_info", "_stages", "_sinks", "_step", "_last_plan", "_build_plan",
               "_mark_changed", "_apply_changes", "_wanted", "_plans")
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "runtime":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in private
                    and isinstance(node.value, (ast.Name, ast.Attribute))
                    and "pipeline" in ast.unparse(node.value).lower().split(".")[-1]
                    or isinstance(node, ast.Attribute) and node.attr in private
                    and ast.unparse(node.value) in ("p", "pipe")):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "\n".join(found)


def test_every_public_name_resolves():
    """``__all__`` (lazy names included) points at modules that exist after any move."""
    for name in eegkit.__all__:
        assert getattr(eegkit, name) is not None, name
