"""Import cycles between the project's packages, as grimp sees them (imports inside functions and under
TYPE_CHECKING included: an import moved into a function is still a dependency).

    .venv/bin/python scripts/import_cycles.py            # between the layers of pyproject.toml's first contract
    .venv/bin/python scripts/import_cycles.py --packages # between top-level packages

By layers, a node is a layer of the "Layers" contract (its ``:``-joined modules together, each ``|``-joined
package alone); each layer is a whole top-level package now, so both ways give the same answer unless a layer
is split again. Each cycle is printed as the pair (or group) of nodes with the imports that form it.
Exit status 1 when there is a cycle.
"""

from __future__ import annotations

import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def nodes_by_layer(config: dict) -> dict[str, str]:
    """Module (or package) name → the node it belongs to."""
    layers = config["contracts"][0]["layers"]
    node = {}
    for layer in layers:
        names = [n.strip() for n in layer.replace("|", ":").split(":")]
        for name in names:
            node[name] = " : ".join(names) if ":" in layer else name
    return node


def node_of(module: str, nodes: dict[str, str] | None) -> str:
    if nodes is None:
        return module.split(".")[0]
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in nodes:
            return nodes[".".join(parts[:n])]
    return parts[0]


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of nodes that reach each other (more than one node)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            groups.append(sorted([v, *group]))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [g for g in groups if len(g) > 1]


def main(argv: list[str]) -> int:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    nodes = None if "--packages" in argv else nodes_by_layer(config)
    graph = grimp.build_graph(*config["root_packages"], cache_dir=None)
    imports: dict[tuple[str, str], list[str]] = defaultdict(list)
    edges: dict[str, set[str]] = defaultdict(set)
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            a, b = node_of(module, nodes), node_of(imported, nodes)
            if a != b:
                imports[a, b].append(f"{module} -> {imported}")
                edges[a].add(b)
                edges.setdefault(b, set())
    pairs = sorted((a, b) for a, b in imports if a < b and (b, a) in imports)
    for a, b in pairs:
        print(f"{a} <-> {b}")
        print("".join(f"    {line}\n" for line in imports[a, b] + imports[b, a]), end="")
    groups = strongly_connected(edges)
    print(f"{len(pairs)} two-way pairs; groups of nodes on a cycle: {groups or 'none'}")
    return 1 if groups else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
