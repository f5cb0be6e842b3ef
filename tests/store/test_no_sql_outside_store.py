"""All SQL lives in the store package: nothing else imports a driver or spells a query.

The rest of the code reads typed read models (``store/read_models.py``) and
calls the side-table writers of ``store/``; a second backend then replaces
one package, not queries scattered through the dashboard and the reporter.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STORE = REPO / "src" / "st0x_liquidity" / "store"
DRIVERS = {"sqlite3", "aiosqlite", "asyncpg", "psycopg", "psycopg2"}
ALLOWED = {
    # Test support (st0x-liquidity-testing), not runtime code: it inspects the
    # database a child bot process wrote, as the plugins' end-to-end tests do.
    "plugins/st0x_testing/src/st0x_testing/alpaca_e2e.py",
}
SQL = re.compile(
    r"\bSELECT\b.*\bFROM\b|\bSELECT\s+\d|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b"
    r"|\bDELETE\s+FROM\b|\b(CREATE|DROP|ALTER)\s+(TABLE|INDEX|VIEW|TRIGGER)\b"
    r"|\bPRAGMA\s+\w+|\bBEGIN\s+(IMMEDIATE|EXCLUSIVE|DEFERRED)\b|\bVACUUM\b",
    re.DOTALL,
)


def sources() -> list[Path]:
    roots = [REPO / "src", *sorted((REPO / "plugins").glob("*/src"))]
    return sorted(p for root in roots for p in root.rglob("*.py") if STORE not in p.parents)


def texts(tree: ast.AST) -> list[str]:
    """Every string literal; an f-string with its placeholders as ``x``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            found.append(
                "".join(
                    v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "x"
                    for v in node.values
                )
            )
    return found


def drivers(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [n for n in names if n.split(".")[0] in DRIVERS]


def problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = [f"imports {name}" for name in drivers(tree)]
    found += [f"SQL {m.group(0)[:40]!r}" for text in texts(tree) if (m := SQL.search(text))]
    return found


def test_no_module_outside_the_store_imports_a_driver_or_holds_sql() -> None:
    assert len(sources()) > 50  # the scan sees the code
    offenders = {}
    for path in sources():
        rel = path.relative_to(REPO).as_posix()
        if rel not in ALLOWED and (found := problems(path)):
            offenders[rel] = found
    assert offenders == {}


def test_the_allowed_exceptions_still_need_it() -> None:
    """An exception that no longer holds SQL is dropped from the list."""
    for rel in ALLOWED:
        assert problems(REPO / rel), f"{rel} holds no SQL any more: remove it from ALLOWED"


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("import sqlite3", True),
        ("from aiosqlite import connect", True),
        ("q = 'SELECT a, b FROM t WHERE x = ?'", True),
        ("q = f'SELECT {cols} FROM hedge_orders'", True),
        ("q = ('SELECT a '\n 'FROM t')", True),
        ("q = 'INSERT INTO t VALUES (?)'", True),
        ("q = 'UPDATE t SET a = 1'", True),
        ("q = 'DELETE FROM t'", True),
        ("q = 'CREATE TABLE IF NOT EXISTS t (a)'", True),
        ("q = 'PRAGMA busy_timeout=1'", True),
        ("q = 'BEGIN IMMEDIATE'", True),
        ("SELECTORS = {}", False),
        ("x = 'select the order from the list'", False),
        ("x = _selector('approve(address,uint256)')", False),
        ("logging.getLogger('aiosqlite')", False),
    ],
)
def test_the_scan_recognises_sql(tmp_path: Path, source: str, flagged: bool) -> None:
    path = tmp_path / "m.py"
    path.write_text(source + "\n")
    assert bool(problems(path)) is flagged
