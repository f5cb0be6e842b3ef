"""``schwab`` CLI subcommands: ``auth`` (OAuth login) and ``status`` (token deadlines).

``python -m st0x_liquidity schwab auth --config-file FILE`` prints the
authorization URL, reads the URL the browser was redirected to (typed/pasted,
or piped on stdin for scripts), exchanges the code for tokens and stores them
encrypted. A running bot picks the new tokens up on its next broker call.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from st0x_liquidity import (
    AppConfig,
    BrokerError,
    ConfigError,
    St0xError,
    load_config,
    load_registry,
    open_store,
)

from .config import SchwabConfig
from .executor import SchwabExecutor


class RedirectError(ValueError):
    """The pasted redirect URL carries no usable authorization code."""


def extract_code(redirect_url: str) -> str:
    """The percent-decoded ``code`` of the redirect URL (Schwab codes often end in ``@``)."""
    text = redirect_url.strip()
    if not text:
        raise RedirectError("no redirect URL was given")
    query = parse_qs(urlsplit(text).query)
    if "error" in query:
        detail = query.get("error_description", query["error"])[0][:200]
        raise RedirectError(f"Schwab did not authorize the app: {query['error'][0][:50]} ({detail})")
    codes = query.get("code")
    if not codes or not codes[0].strip():
        raise RedirectError(
            "the URL has no 'code' parameter; paste the full address the browser was "
            "redirected to after logging in (it starts with your redirect_uri)"
        )
    return codes[0].strip()


def check_state(redirect_url: str, expected: str) -> None:
    """Refuse a redirect whose OAuth ``state`` is not the one this login sent.

    Schwab echoes the ``state`` of the authorization URL; a redirect without it, or
    with another one, answers some other login (an old tab, a forged link).
    """
    states = parse_qs(urlsplit(redirect_url.strip()).query).get("state")
    if not states or not secrets.compare_digest(states[0], expected):
        raise RedirectError(
            "the redirect URL's 'state' does not match this login's (an old or foreign "
            "redirect); run `schwab auth` again and paste the URL its own link leads to"
        )


def add_schwab_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schwab = subparsers.add_parser("schwab", help="Charles Schwab: authorize, check tokens")
    sub = schwab.add_subparsers(dest="schwab_command", metavar="SCHWAB_COMMAND", required=True)

    auth = sub.add_parser(
        "auth",
        help="log in to Schwab once and store the tokens encrypted",
        description=(
            "Prints Schwab's authorization URL. Open it, log in with the brokerage account, "
            "approve, then paste the full URL the browser was redirected to (or pipe it on "
            "stdin). The code expires within about 30 seconds."
        ),
    )
    auth.add_argument("--config-file", required=True, type=Path, help="TOML config file")
    auth.add_argument(
        "--redirect-url",
        help="the redirected URL (otherwise read from stdin; stdin keeps it out of `ps`)",
    )
    auth.add_argument(
        "--state",
        help=(
            "with --redirect-url: the 'state' of the authorization URL that led to it, "
            "checked against the redirect's (a pasted redirect is always checked against "
            "the URL printed by this run)"
        ),
    )
    auth.set_defaults(handler=run_auth)

    status = sub.add_parser("status", help="show when the stored Schwab login expires")
    status.add_argument("--config-file", required=True, type=Path, help="TOML config file")
    status.set_defaults(handler=run_status)


def _schwab_config(args: argparse.Namespace) -> tuple[AppConfig, SchwabConfig] | None:
    registry = getattr(args, "registry", None) or load_registry()
    try:
        config = load_config(args.config_file, registry)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return None
    if not isinstance(config.broker, SchwabConfig):
        print(
            f"config error: broker.type: is {config.broker_type!r}; `schwab` commands need "
            "type = \"schwab\"",
            file=sys.stderr,
        )
        return None
    return config, config.broker


def run_auth(args: argparse.Namespace) -> int:
    loaded = _schwab_config(args)
    if loaded is None:
        return 2
    config, broker = loaded
    state = secrets.token_urlsafe(24)
    print(
        "Open this URL in a browser, log in with the Schwab brokerage account and approve:",
        file=sys.stderr,
    )
    print(_authorize_url(broker, state), flush=True)
    redirect = args.redirect_url
    expected: str | None = getattr(args, "state", None)
    if redirect is None:
        print("Then paste the full URL you were redirected to and press Enter:", file=sys.stderr)
        sys.stderr.flush()
        redirect = sys.stdin.readline()
        expected = state
    try:
        code = extract_code(redirect)
        if expected is not None:
            check_state(redirect, expected)
    except RedirectError as exc:
        print(f"schwab auth failed: {exc}", file=sys.stderr)
        return 1
    try:
        summary = asyncio.run(_exchange(config, broker, code))
    except (BrokerError, St0xError) as exc:
        print(f"schwab auth failed: {exc}", file=sys.stderr)
        return 1
    print(summary, flush=True)
    return 0


def _authorize_url(broker: SchwabConfig, state: str) -> str:
    from urllib.parse import urlencode

    query = urlencode(
        {
            "client_id": broker.app_key,
            "redirect_uri": broker.redirect_uri,
            "response_type": "code",
            "state": state,
        }
    )
    return f"{broker.api_root}/v1/oauth/authorize?{query}"


async def _with_executor(config: AppConfig, broker: SchwabConfig, fn: Any) -> Any:
    store = open_store(config)
    await store.open()
    executor = SchwabExecutor(broker, store)
    try:
        await executor.http.start()
        return await fn(executor)
    finally:
        await executor.close()
        await store.close()


async def _exchange(config: AppConfig, broker: SchwabConfig, code: str) -> str:
    async def go(executor: SchwabExecutor) -> str:
        tokens = await executor.tokens.exchange_code(code)
        await executor.account_hash()  # the configured account must be reachable
        return (
            "Schwab authorization stored (encrypted). The refresh token is valid until "
            f"{tokens.refresh_expires_at.isoformat()} (7 days from now); run `schwab auth` "
            "again before then. A running bot picks the new login up without a restart."
        )

    result: str = await _with_executor(config, broker, go)
    return result


def run_status(args: argparse.Namespace) -> int:
    loaded = _schwab_config(args)
    if loaded is None:
        return 2
    config, broker = loaded

    async def go(executor: SchwabExecutor) -> Any:
        return await executor.auth_status()

    try:
        status = asyncio.run(_with_executor(config, broker, go))
    except St0xError as exc:
        print(f"schwab status failed: {exc}", file=sys.stderr)
        return 1
    if status.authorized_at is not None:
        print(f"authorized at:          {status.authorized_at.isoformat()}")
        print(f"access token valid to:  {status.access_expires_at.isoformat()}")
        print(f"refresh token valid to: {status.refresh_expires_at.isoformat()}")
    if status.problem:
        print(f"problem: {status.problem}")
    elif status.expires_soon:
        print("warning: the refresh token expires within a day; run `schwab auth` again")
    return 0 if status.authorized else 1
