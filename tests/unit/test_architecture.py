"""The shape of src/ that DESIGN.md's layer map promises, checked so it stays true.

- No import circles anywhere: every `import`/`from … import` of a fedledger module counts,
  at module level, inside a function or under TYPE_CHECKING alike (a deferred import hides
  a circle; it does not remove it).
- Lower layers never import upper ones, in the order below.
- No module is over 400 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import fedledger

SRC = Path(fedledger.__file__).resolve().parent
MAX_LINES = 400

#: each top-level package (or module) of fedledger and its layer: a module may import its own
#: layer and those below, never one above. audit/ sits below sim/: the simulator runs the audit
#: on its own run, an auditor never needs the simulator. report/ sits beside sim/: it runs the
#: audit and describes its result, and neither needs the other.
LAYERS = {
    "errors": 0,
    "codec": 1,
    "chain": 2,
    "store": 2,
    "aggregation": 3,
    "privacy": 3,
    "incentives": 3,
    "data": 3,
    "spec": 4,
    "training": 5,
    "roles": 6,
    "audit": 7,
    "report": 8,
    "sim": 8,
    "dashboard": 8,
    "cli": 9,
}


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = ("fedledger", *path.relative_to(SRC).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The fedledger modules `path` imports (a `from package import module` names the module)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in known:
                yield node.module
            for alias in node.names:
                if f"{node.module}.{alias.name}" in known:
                    yield f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports(path, known)) - {name} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_the_cycle_finder_finds_a_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_in_src() -> None:
    assert cycles(graph()) == []


def test_every_package_has_a_layer() -> None:
    tops = {name.split(".")[1] for name in modules() if name.count(".") >= 1}
    assert tops <= set(LAYERS), f"place {sorted(tops - set(LAYERS))} in LAYERS (and DESIGN.md's map)"


def test_lower_layers_never_import_upper_ones() -> None:
    upward = [
        f"{m} (layer {layer(m)}) imports {o} (layer {layer(o)})"
        for m, targets in graph().items()
        for o in sorted(targets)
        if (lm := layer(m)) is not None and (lo := layer(o)) is not None and lo > lm
    ]
    assert upward == []


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in modules().values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
