"""Runtime code never loads the devnet's test-contract artifacts.

``data/raindex_devnet_contracts.json`` and ``data/cctp_devnet_contracts.json`` are
the project's *test* Solidity (anvil stand-ins): their ABIs are not the real
orderbook's. What runs against a real chain (revert decoding, vault calls, event
decoding) reads ``data/raindex_abi.json``, the real interfaces. Runtime modules
are every module of ``st0x_liquidity`` except the devnets and the fakes.

Two checks: the source (no runtime module names an artifact file or imports a
devnet or fake module, except the ``demo`` command, which runs a devnet by
design), and a child process that imports every runtime module, exercises the
chain helpers, and watches every file it opens with an audit hook.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "st0x_liquidity"
ARTIFACTS = ("raindex_devnet_contracts.json", "cctp_devnet_contracts.json")

ALLOWED = {
    ("st0x_liquidity.raindex.plugin", "_cmd_demo"),
    ("st0x_liquidity.raindex.plugin", "_demo"),
}
"""(module, function) that may import a devnet: the ``demo`` command deploys one."""


def _is_test_support(name: str) -> bool:
    return any(part == "devnet" or part.startswith("fake") for part in name.split("."))


def runtime_modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if not _is_test_support(name) and parts[-1] != "__main__":
            found[name] = path
    return found


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
    offenders = []
    for name, path in sorted(modules.items()):
        text = path.read_text("utf-8")
        offenders += [f"{name} names {a}" for a in ARTIFACTS if a in text]
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
loaded = sorted(m for m in sys.modules if m.startswith("st0x_liquidity") and (".devnet" in m or ".fake" in m))
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
