"""st0x-schwab imports only the core's public API and shares no code with the Alpaca plugins."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "st0x_schwab"
PLUGINS = Path(__file__).resolve().parents[2]
# docs/plugins.md: `st0x_liquidity`, `.protocols`, `.hookspecs`; `.validators` is
# documented there as the shared config validators.
PUBLIC = {
    "st0x_liquidity",
    "st0x_liquidity.protocols",
    "st0x_liquidity.hookspecs",
    "st0x_liquidity.validators",
}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_only_public_core_modules_are_imported() -> None:
    sources = sorted(SRC.glob("*.py"))
    assert len(sources) >= 8
    for path in sources:
        for module in imported_modules(path):
            if module.split(".")[0] == "st0x_liquidity":
                assert module in PUBLIC, f"{path.name} imports internals from {module}"
            assert not module.startswith(("st0x_alpaca", "st0x_alpaca_broker")), path.name


def test_no_function_body_is_copied_from_the_alpaca_plugins() -> None:
    def bodies(folder: Path) -> dict[str, str]:
        found: dict[str, str] = {}
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and len(node.body) > 2:
                    dumped = ast.dump(ast.Module(body=node.body, type_ignores=[]))
                    found[dumped] = f"{path.name}:{node.name}"
        return found

    ours = bodies(SRC)
    alpaca = {}
    for name in ("st0x_alpaca", "st0x_alpaca_broker"):
        alpaca.update(bodies(PLUGINS / name / "src"))
    assert ours, "no functions found"
    assert sorted(ours[k] for k in ours.keys() & alpaca.keys()) == []
