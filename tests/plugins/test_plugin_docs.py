"""docs/plugins.md keeps up with the code: every hook, every Executor member, the example verbatim.

Run ``python tests/plugins/test_plugin_docs.py`` to refresh the included
example files in the doc after editing them.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

from st0x_liquidity import hookspecs, protocols
from st0x_liquidity.hookspecs import PROJECT

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
INCLUDE = re.compile(r"<!-- include: (?P<path>\S+) -->\n(?:\n```[a-z]*\n.*?\n```\n)?", re.S)
LANGUAGES = {".py": "python", ".toml": "toml", ".md": "markdown"}


def hook_names() -> set[str]:
    return {
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, f"{PROJECT}_spec")
    }


def documented_hooks(text: str) -> set[str]:
    return set(re.findall(r"^### `(st0x_\w+)`$", text, re.M))


def render_includes(text: str) -> str:
    def block(match: re.Match[str]) -> str:
        path = ROOT / match["path"]
        body = path.read_text().rstrip("\n")
        lang = LANGUAGES.get(path.suffix, "")
        return f"<!-- include: {match['path']} -->\n\n```{lang}\n{body}\n```\n"

    return INCLUDE.sub(block, text)


def test_every_hookspec_is_documented() -> None:
    hooks = hook_names()
    assert "st0x_register_executors" in hooks  # the scan finds hook specs at all
    missing = hooks - documented_hooks(DOC.read_text())
    assert not missing, f"hooks without a '### `name`' section in docs/plugins.md: {sorted(missing)}"


def test_every_documented_hook_exists() -> None:
    unknown = documented_hooks(DOC.read_text()) - hook_names()
    assert not unknown, f"docs/plugins.md documents hooks that do not exist: {sorted(unknown)}"


def test_every_executor_member_is_documented() -> None:
    text = DOC.read_text()
    members = {
        name for name in dir(protocols.Executor) if not name.startswith("_")
    } | set(protocols.Executor.__annotations__)
    assert {"place_market_order", "find_order", "order_rules", "name"} <= members
    missing = {m for m in members if f"`{m}" not in text}
    assert not missing, f"Executor members not in docs/plugins.md: {sorted(missing)}"


def test_error_contract_and_rules_are_documented() -> None:
    text = DOC.read_text()
    for needle in (
        "RetryableBrokerError",
        "AmbiguousBrokerError",
        "FinalBrokerError",
        "AuthenticationRequiredError",
        "NotSupportedError",
        "client_order_id",
        "ST0X_BROKER_",
        "ST0X_DISABLE_PLUGINS",
        "[project.entry-points.st0x_liquidity]",
        "Secret",
        "unknown key",
    ):
        assert needle in text, needle


def test_the_example_is_quoted_verbatim() -> None:
    text = DOC.read_text()
    included = [m["path"] for m in INCLUDE.finditer(text)]
    example = ROOT / "examples" / "plugin-example"
    for path in (
        "pyproject.toml",
        "src/st0x_example_broker/plugin.py",
        "src/st0x_example_broker/executor.py",
    ):
        assert f"examples/plugin-example/{path}" in included
        assert (example / path).is_file()
    assert render_includes(text) == text, (
        "docs/plugins.md quotes an outdated copy of the example; "
        "run `python tests/plugins/test_plugin_docs.py` to refresh it"
    )


def test_example_imports_only_public_api() -> None:
    """The example imports only what the core exports."""
    import st0x_liquidity

    source = (ROOT / "examples/plugin-example/src/st0x_example_broker").rglob("*.py")
    checked = 0
    for path in source:
        for module, names in re.findall(
            r"^from (st0x_liquidity[\w.]*) import (\([^)]*\)|[^\n]*)", path.read_text(), re.M
        ):
            checked += 1
            public = ("st0x_liquidity", "st0x_liquidity.protocols", "st0x_liquidity.hookspecs")
            assert module in public, f"{path.name} imports internals from {module}"
            for name in re.findall(r"\w+", names):
                assert name in st0x_liquidity.__all__ or module != "st0x_liquidity", name
    assert checked >= 2


if __name__ == "__main__":
    DOC.write_text(render_includes(DOC.read_text()))
    sys.exit(0)
