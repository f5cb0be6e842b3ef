"""Plugins import the core only by its public names (docs/plugins.md, "Public API only").

The public modules are ``st0x_liquidity`` (its ``__all__``), ``.protocols``,
``.hookspecs`` and ``.validators`` (its ``__all__``). Checked for every plugin
distribution under ``plugins/`` and the documented example plugin. Not for
``plugins/st0x_testing``: the test support ships with the core, release for
release, and drives its internals (devnets, the store).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import st0x_liquidity
from st0x_liquidity import validators

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = sorted(
    [
        *(p for p in (ROOT / "plugins").glob("*/src/*/*.py") if "st0x_testing" not in p.parts),
        *(ROOT / "examples" / "plugin-example").rglob("*.py"),
    ]
)
PUBLIC_MODULES = {
    "st0x_liquidity",
    "st0x_liquidity.protocols",
    "st0x_liquidity.hookspecs",
    "st0x_liquidity.validators",
}
WITH_ALL = {"st0x_liquidity": st0x_liquidity, "st0x_liquidity.validators": validators}


def core_imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) for every import of st0x_liquidity."""
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "st0x_liquidity":
                found.extend((node.module, a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend(
                (a.name, None, node.lineno)
                for a in node.names
                if a.name.split(".")[0] == "st0x_liquidity"
            )
    return found


def test_validators_is_documented_public_api() -> None:
    assert sorted(validators.__all__) == sorted(set(validators.__all__))
    for name in set(validators.__all__) - {"Validator"}:  # a type alias has no docstring
        assert getattr(validators, name).__doc__, name
    assert "st0x_liquidity.validators" in (ROOT / "docs" / "plugins.md").read_text()
    assert "st0x_liquidity.validators" in (st0x_liquidity.__doc__ or "")


def test_the_plugins_are_found() -> None:
    assert len(PLUGIN_SOURCES) > 20
    assert any(core_imports(p) for p in PLUGIN_SOURCES)
    assert any(
        m == "st0x_liquidity.validators" for p in PLUGIN_SOURCES for m, _, _ in core_imports(p)
    )


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_public_names(path: Path) -> None:
    for module, name, line in core_imports(path):
        where = f"{path.relative_to(ROOT)}:{line}"
        assert module in PUBLIC_MODULES, f"{where} imports internals from {module}"
        if module in WITH_ALL and name is not None:
            assert name in WITH_ALL[module].__all__, f"{where}: {module}.{name} is not public"
        if name is not None:
            assert hasattr(importlib.import_module(module), name), f"{where}: no {module}.{name}"
