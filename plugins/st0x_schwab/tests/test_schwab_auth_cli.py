"""The `schwab auth` subcommand, driven end to end through the real CLI."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from st0x_schwab.cli import RedirectError, check_state, extract_code
from st0x_schwab.config import SchwabConfig
from st0x_schwab.executor import SchwabExecutor
from st0x_testing.fake_schwab import FakeSchwab

from st0x_liquidity import Secret
from st0x_liquidity.cli import main
from st0x_liquidity.store import SqliteStore


@pytest.fixture
async def live_fake() -> AsyncIterator[FakeSchwab]:
    server = FakeSchwab()  # real time: the CLI runs in its own process
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def write_config(tmp: Path, fake: FakeSchwab, *, broker_type: str = "schwab") -> Path:
    (tmp / "fills.jsonl").write_text("")
    path = tmp / "st0x.toml"
    broker = (
        f'type = "schwab"\napp_key = "{fake.app_key}"\nbase_url = "{fake.url}"\n'
        f'redirect_uri = "{fake.redirect_uri}"\nretry_backoff = 0.01\n'
        if broker_type == "schwab"
        else 'type = "dry-run"\n'
    )
    path.write_text(
        'database_url = "sqlite:st0x.db"\n'
        '[source]\ntype = "replay"\npath = "fills.jsonl"\n'
        f"[broker]\n{broker}"
    )
    return path


async def redirect_for(url: str) -> str:
    """What a browser does: open the URL, log in, land on the redirect."""
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as resp:
        assert resp.status == 302
        return resp.headers["Location"]


async def test_full_auth_flow_through_the_cli_subcommand(
    live_fake: FakeSchwab, tmp_path: Path
) -> None:
    config_file = write_config(tmp_path, live_fake)
    key = secrets.token_hex(32)
    env = {
        **os.environ,
        "ST0X_BROKER_APP_SECRET": live_fake.app_secret,
        "ST0X_BROKER_ENCRYPTION_KEY": key,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "st0x_liquidity", "schwab", "auth", "--config-file",
        str(config_file),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )
    assert proc.stdout is not None and proc.stdin is not None
    url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    assert url.startswith(f"{live_fake.url}/v1/oauth/authorize?client_id=")
    assert "redirect_uri=https%3A%2F%2F127.0.0.1" in url
    [state] = parse_qs(urlsplit(url).query)["state"]
    assert len(state) >= 32  # random, per run
    redirected = await redirect_for(url)
    assert parse_qs(urlsplit(redirected).query)["state"] == [state]
    assert "%40" in redirected  # Schwab's codes end in '@', percent-encoded
    out, err = await asyncio.wait_for(proc.communicate((redirected + "\n").encode()), 30)
    out_text = url + out.decode()
    assert proc.returncode == 0, err.decode()
    assert "Schwab authorization stored" in out_text
    assert live_fake.token_grants == ["authorization_code"]
    for token in [*live_fake.access_tokens, *live_fake.refresh_tokens]:
        assert token not in out_text and token not in err.decode()
    assert key not in out_text + err.decode()

    # The stored login is usable by the executor (as a running bot would use it).
    store = SqliteStore(tmp_path / "st0x.db")
    await store.open()
    config = SchwabConfig(
        app_key=live_fake.app_key, app_secret=Secret(live_fake.app_secret),
        encryption_key=Secret(key), base_url=live_fake.url,
    )
    executor = SchwabExecutor(config, store)
    try:
        await executor.start()
        assert await executor.account_hash() == live_fake.accounts[0][1]
        status = await executor.auth_status()
        assert status.authorized and not status.expires_soon
    finally:
        await executor.close()
        await store.close()
    data = read_db_files(tmp_path)
    for token in [*live_fake.access_tokens, *live_fake.refresh_tokens]:
        assert token.encode() not in data


def read_db_files(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.glob("st0x.db*"))


def run_main(argv: list[str], monkeypatch: pytest.MonkeyPatch, key: str, secret: str) -> int:
    monkeypatch.setenv("ST0X_BROKER_APP_SECRET", secret)
    monkeypatch.setenv("ST0X_BROKER_ENCRYPTION_KEY", key)
    return main(argv)


async def test_auth_with_redirect_url_argument_then_status(
    live_fake: FakeSchwab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config_file = str(write_config(tmp_path, live_fake))
    key = secrets.token_hex(32)
    url = f"{live_fake.url}/v1/oauth/authorize?client_id={live_fake.app_key}&redirect_uri=https://127.0.0.1"
    redirected = await redirect_for(url)
    argv = ["schwab", "auth", "--config-file", config_file, "--redirect-url", redirected]
    rc = await asyncio.to_thread(run_main, argv, monkeypatch, key, live_fake.app_secret)
    assert rc == 0
    rc = await asyncio.to_thread(
        run_main, ["schwab", "status", "--config-file", config_file], monkeypatch, key,
        live_fake.app_secret,
    )
    out = capsys.readouterr().out
    assert rc == 0 and "refresh token valid to" in out
    # The same code cannot be used twice: a clear failure, exit 1.
    rc = await asyncio.to_thread(run_main, argv, monkeypatch, key, live_fake.app_secret)
    err = capsys.readouterr().err
    assert rc == 1 and "schwab auth failed" in err and "invalid_grant" in err


async def test_auth_refuses_a_url_without_code_and_other_broker_types(
    live_fake: FakeSchwab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config_file = str(write_config(tmp_path, live_fake))
    key = secrets.token_hex(32)
    argv = ["schwab", "auth", "--config-file", config_file, "--redirect-url", "https://127.0.0.1/?x=1"]
    assert await asyncio.to_thread(run_main, argv, monkeypatch, key, live_fake.app_secret) == 1
    assert "no 'code'" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    dry = str(write_config(other, live_fake, broker_type="dry-run"))
    argv = ["schwab", "auth", "--config-file", dry, "--redirect-url", "https://127.0.0.1/?code=a"]
    assert await asyncio.to_thread(run_main, argv, monkeypatch, key, live_fake.app_secret) == 2
    assert "broker.type" in capsys.readouterr().err
    # A bad encryption key is a config error naming the key, never showing it.
    argv = ["schwab", "status", "--config-file", config_file]
    assert await asyncio.to_thread(run_main, argv, monkeypatch, "12" * 8, live_fake.app_secret) == 2
    err = capsys.readouterr().err
    assert "encryption_key" in err and "12" * 8 not in err


def test_extract_code() -> None:
    assert extract_code("https://127.0.0.1/?code=C0.abc%40&session=s") == "C0.abc@"
    assert extract_code("  https://127.0.0.1?session=1&code=xyz  \n") == "xyz"
    for bad in ("", "https://127.0.0.1/", "https://127.0.0.1/?code="):
        with pytest.raises(RedirectError):
            extract_code(bad)
    with pytest.raises(RedirectError, match="access_denied"):
        extract_code("https://127.0.0.1/?error=access_denied&error_description=no")


def test_check_state() -> None:
    check_state("https://127.0.0.1/?code=c&state=abc", "abc")
    for bad in ("https://127.0.0.1/?code=c&state=abd", "https://127.0.0.1/?code=c", ""):
        with pytest.raises(RedirectError, match="state"):
            check_state(bad, "abc")


async def test_pasted_redirect_of_another_login_is_refused_in_one_line(
    live_fake: FakeSchwab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config_file = str(write_config(tmp_path, live_fake))
    key = secrets.token_hex(32)
    # A redirect from some other authorization URL (its own state), pasted on stdin.
    foreign = await redirect_for(
        f"{live_fake.url}/v1/oauth/authorize?client_id={live_fake.app_key}"
        "&redirect_uri=https%3A%2F%2F127.0.0.1&response_type=code&state=someone-elses"
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(foreign + "\n"))
    argv = ["schwab", "auth", "--config-file", config_file]
    assert await asyncio.to_thread(run_main, argv, monkeypatch, key, live_fake.app_secret) == 1
    captured = capsys.readouterr()
    failure = [line for line in captured.err.splitlines() if "schwab auth failed" in line]
    assert len(failure) == 1 and "'state' does not match" in failure[0]
    assert "state=" in captured.out  # the printed URL carried this run's own state
    assert live_fake.token_grants == []  # the code was never exchanged
    # With --redirect-url, --state names the login it answers; checked the same way.
    argv += ["--redirect-url", foreign, "--state", "mine"]
    assert await asyncio.to_thread(run_main, argv, monkeypatch, key, live_fake.app_secret) == 1
    assert "'state' does not match" in capsys.readouterr().err
    argv[-1] = "someone-elses"
    assert await asyncio.to_thread(run_main, argv, monkeypatch, key, live_fake.app_secret) == 0
    assert live_fake.token_grants == ["authorization_code"]
