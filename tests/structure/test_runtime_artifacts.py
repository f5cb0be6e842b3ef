"""Runtime code never imports test support nor loads the test-contract artifacts.

Fakes, devnets and the devnet's test contracts (``*_devnet_contracts.json``, the
project's own Solidity: their ABIs are not the real orderbook's) live in the
``st0x_testing`` package of the separate ``st0x-liquidity-testing`` distribution
(``plugins/st0x_testing``). What runs against a real chain (revert decoding, vault
calls, event decoding) reads ``data/raindex_abi.json``, the real interfaces.
Runtime modules are every module under ``src/`` and ``plugins/*/src`` except
``st0x_testing``.

Two checks: the source (no runtime module names an artifact file or imports test
support, except the ``demo`` command, which runs a devnet by design and says what
to install when it is missing), and a child process that imports every runtime
module, exercises the chain helpers, and watches every file it opens with an audit
hook.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "src", *sorted((ROOT / "plugins").glob("*/src"))]
TESTING = "st0x_testing"
ARTIFACTS = ("raindex_devnet_contracts.json", "cctp_devnet_contracts.json")

ALLOWED = {("st0x_liquidity.raindex.plugin", "_cmd_demo")}
"""(module, function) that may import test support: the ``demo`` command deploys a devnet."""


def _is_test_support(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == TESTING or any(
        part in {"devnet", "e2e", "testing"} or part.startswith("fake") for part in parts
    )


def runtime_modules() -> dict[str, Path]:
    found = {}
    for root in SOURCES:
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join(parts)
            if parts[0] != TESTING and parts[-1] != "__main__":
                found[name] = path
    return found


def test_test_support_lives_only_in_st0x_testing() -> None:
    misplaced = [name for name in runtime_modules() if _is_test_support(name)]
    assert misplaced == []
    assert not [p for root in SOURCES for p in root.rglob("*_devnet_contracts.json")
                if TESTING not in p.parts]


def _imports(module: str, path: Path) -> list[tuple[str, str]]:
    """(imported module, enclosing function or "") of every import in ``path``."""
    tree = ast.parse(path.read_text("utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[str, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            where = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                where = child.name
            if isinstance(child, ast.Import):
                out.extend((alias.name, where) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                out.append((base, where))
                out.extend((f"{base}.{alias.name}", where) for alias in child.names)
            visit(child, where)

    visit(tree, "")
    return out


def test_runtime_sources_do_not_name_or_import_test_artifacts() -> None:
    modules = runtime_modules()
    assert "st0x_liquidity.rebalancing.chain" in modules
    assert {"st0x_alpaca.executor", "st0x_alpaca_broker.executor", "st0x_schwab.executor"} <= set(
        modules
    )
    offenders = []
    for name, path in sorted(modules.items()):
        text = path.read_text("utf-8")
        offenders += [f"{name} names {a}" for a in ARTIFACTS if a in text]
        for call in ast.walk(ast.parse(text)):  # importlib.import_module, __import__
            if isinstance(call, ast.Call) and any(
                isinstance(a, ast.Constant) and isinstance(a.value, str) and TESTING in a.value
                for a in call.args
            ):
                offenders.append(f"{name} passes {TESTING} to a call (line {call.lineno})")
        for target, function in _imports(name, path):
            if _is_test_support(target) and (name, function) not in ALLOWED:
                offenders.append(f"{name} ({function or 'module level'}) imports {target}")
    assert offenders == []


CHILD = """
import importlib, json, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
names = json.loads(sys.argv[1])
for name in names:
    importlib.import_module(name)
from decimal import Decimal
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from st0x_liquidity.rebalancing import chain
from st0x_liquidity.raindex import abi, decode
error = keccak(text="ZeroVaultId(address,address)")[:4] + encode(["address", "address"], ["0x" + "11" * 20, "0x" + "22" * 20])
decoded = chain.decode_revert(error)
for interface in ("v5", "v6"):
    chain.vault_deposit("0x" + "22" * 20, b"\\x00" * 31 + b"\\x01", Decimal(1), interface)
    chain.vault_withdraw("0x" + "22" * 20, b"\\x00" * 31 + b"\\x01", Decimal(1), interface)
abi.topic0("TakeOrderV3")
loaded = sorted(m for m in sys.modules if m.startswith("st0x_testing") or ".devnet" in m or ".fake" in m)
print(json.dumps({"decoded": decoded, "loaded": loaded, "opened": [p for p in opened if "devnet_contracts" in p]}))
"""


def test_importing_and_using_runtime_modules_opens_no_test_artifact() -> None:
    names = sorted(runtime_modules())
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["decoded"] == (
        "ZeroVaultId(0x1111111111111111111111111111111111111111, "
        "0x2222222222222222222222222222222222222222)"
    )
    assert report["loaded"] == []
    assert report["opened"] == []
