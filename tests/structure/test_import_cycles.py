"""No import cycles in st0x_liquidity: the module graph, read from the source with ast.

Two graphs. The run-time one (imports under ``if TYPE_CHECKING:`` left out, imports
inside functions counted: they run too, only later) must have no cycle at all. The
one with the ``TYPE_CHECKING`` imports added must have none either, except the
cycles listed in ``JUSTIFIED`` with the reason each is acceptable (none today:
``app -> config -> plugins -> hookspecs -> app``, ``cctp.devnet <-> cctp.fake_iris``
and ``rebalancing.operations <-> usdc_flow`` were removed by moving the shared
names to ``registry``, ``fake_iris`` and ``rebalancing.state``).

An import of a package's submodule does not add an edge to the package's
``__init__``: Python has the parent half-imported by then, which is not a cycle
that can fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "st0x_liquidity"
PACKAGE = "st0x_liquidity"

JUSTIFIED: dict[frozenset[str], str] = {}
"""Cycles that exist only through TYPE_CHECKING imports, with why each is fine."""


def modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(
    nodes: list[ast.stmt], *, type_checking: bool
) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node):
            if type_checking:
                yield from _imports(node.body, type_checking=type_checking)
            yield from _imports(node.orelse, type_checking=type_checking)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                inner = [c for c in children if isinstance(c, ast.stmt)]
                for handler in (c for c in children if isinstance(c, ast.ExceptHandler)):
                    inner.extend(handler.body)
                yield from _imports(inner, type_checking=type_checking)


def graph(*, type_checking: bool) -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {}
    for name, (path, is_package) in mods.items():
        here = name.split(".") if is_package else name.split(".")[:-1]
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in _imports(tree.body, type_checking=type_checking):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:  # `from . import x` may name a submodule
                sub = f"{module}.{alias.name}"
                targets.add(sub if sub in mods else module)
        edges[name] = {t for t in targets if t in mods and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_graph_is_read() -> None:
    edges = graph(type_checking=False)
    assert len(edges) > 80
    assert "st0x_liquidity.config" in edges["st0x_liquidity.app"]
    assert "st0x_liquidity.rebalancing.state" in edges["st0x_liquidity.rebalancing.usdc_flow"]
    with_types = graph(type_checking=True)
    assert "st0x_liquidity.services" in with_types["st0x_liquidity.hookspecs"]
    assert "st0x_liquidity.app" not in edges["st0x_liquidity.hookspecs"]


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_at_run_time() -> None:
    found = cycles(graph(type_checking=False))
    assert found == [], [sorted(c) for c in found]


def test_no_import_cycle_even_through_type_checking_imports() -> None:
    found = [c for c in cycles(graph(type_checking=True)) if c not in JUSTIFIED]
    assert found == [], [sorted(c) for c in found]
