"""Token storage, encryption, refresh and expiry against the fake Schwab."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from st0x_schwab.config import SchwabConfig
from st0x_schwab.crypto import TokenCipher, TokenDecryptionError
from st0x_schwab.executor import SchwabExecutor
from st0x_schwab.tokens import NAMESPACE, TOKENS_KEY
from st0x_testing.fake_schwab import FakeSchwab, TestClock

from st0x_liquidity import AuthenticationRequiredError, ConfigError, Secret
from st0x_liquidity.store import SqliteStore


def _all_db_bytes(db_path: Path) -> bytes:
    data = b""
    for path in db_path.parent.glob(db_path.name + "*"):
        data += path.read_bytes()
    return data


def _secrets_of(fake: FakeSchwab) -> list[str]:
    return [*fake.access_tokens, *fake.refresh_tokens]


async def test_login_stores_tokens_encrypted_and_never_in_clear(
    authorized: SchwabExecutor, fake: FakeSchwab, store: SqliteStore, db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = await authorized.tokens.access_token()
    assert token in fake.access_tokens
    await authorized.order_status(str(fake.add_order("AAPL", "BUY", 1).order_id))
    await authorized.tokens.refresh(force=True)
    blob = await store.get_blob(NAMESPACE, TOKENS_KEY)
    assert blob is not None and blob[0] == 1
    everything = _all_db_bytes(db_path)
    logs = caplog.text
    for clear in _secrets_of(fake):
        for probe in (clear, clear[:24], clear.encode().hex()):
            assert probe.encode() not in everything
            assert probe not in logs
        assert clear not in repr(await authorized.tokens.load())


async def test_fresh_nonce_per_encryption() -> None:
    cipher = TokenCipher(secrets.token_bytes(32))
    one, two = cipher.encrypt(b"same"), cipher.encrypt(b"same")
    assert one != two and one[1:13] != two[1:13]
    assert cipher.decrypt(one) == cipher.decrypt(two) == b"same"


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=0, max_size=64), position=st.integers(min_value=0), flip=st.integers(1, 255))
def test_any_tampering_fails_loudly(data: bytes, position: int, flip: int) -> None:
    cipher = TokenCipher(bytes(range(32)))
    blob = bytearray(cipher.encrypt(data))
    blob[position % len(blob)] ^= flip
    with pytest.raises(TokenDecryptionError):
        cipher.decrypt(bytes(blob))


@settings(max_examples=50, deadline=None)
@given(blob=st.binary(max_size=40))
def test_short_or_foreign_blobs_fail_loudly(blob: bytes) -> None:
    with pytest.raises(TokenDecryptionError):
        TokenCipher(bytes(range(32))).decrypt(blob)


async def test_wrong_key_fails_loudly_and_start_refuses(
    authorized: SchwabExecutor, config: SchwabConfig, store: SqliteStore, clock: TestClock
) -> None:
    import attrs

    other = attrs.evolve(config, encryption_key=Secret(secrets.token_hex(32)))
    wrong = SchwabExecutor(other, store, now=clock.now)
    with pytest.raises(TokenDecryptionError) as err:
        await wrong.tokens.access_token()
    assert "encryption_key" in str(err.value)
    assert other.encryption_key.get() not in str(err.value)
    with pytest.raises(ConfigError, match=r"broker\.encryption_key") as start_err:
        await wrong.start()
    assert other.encryption_key.get() not in str(start_err.value)
    await wrong.close()


async def test_tampered_record_in_the_database_fails_loudly(
    authorized: SchwabExecutor, store: SqliteStore
) -> None:
    blob = bytearray((await store.get_blob(NAMESPACE, TOKENS_KEY)) or b"")
    blob[20] ^= 0x01
    await store.put_blob(NAMESPACE, TOKENS_KEY, bytes(blob))
    with pytest.raises(TokenDecryptionError, match="tampered"):
        await authorized.tokens.access_token()


async def test_maintenance_refreshes_before_the_access_token_expires(
    authorized: SchwabExecutor, fake: FakeSchwab, clock: TestClock
) -> None:
    before = await authorized.tokens.load()
    assert before is not None
    clock.advance(minutes=20)
    await authorized.tokens.maintain()
    assert fake.token_grants == ["authorization_code"]  # 10 minutes left: nothing to do
    clock.advance(minutes=6)  # 4 minutes left, inside the 5-minute margin
    await authorized.tokens.maintain()
    assert fake.token_grants == ["authorization_code", "refresh_token"]
    after = await authorized.tokens.load()
    assert after is not None
    assert after.access_token != before.access_token
    assert after.access_expires_at == clock.now() + timedelta(minutes=30)
    # The 7 days still count from the original login.
    assert after.authorized_at == before.authorized_at
    # The old access token would have been refused once expired; the new one works.
    clock.advance(minutes=5)
    await authorized.account_hash()


async def test_expired_access_token_is_refreshed_on_demand(
    authorized: SchwabExecutor, fake: FakeSchwab, clock: TestClock
) -> None:
    clock.advance(minutes=45)
    assert await authorized.account_hash()
    assert fake.token_grants.count("refresh_token") == 1


async def test_401_from_schwab_refreshes_and_retries_once(
    authorized: SchwabExecutor, fake: FakeSchwab
) -> None:
    fake.expire_access_tokens()  # Schwab forgot it early (revoked session, say)
    assert await authorized.account_hash()
    assert fake.token_grants.count("refresh_token") == 1


async def test_refresh_token_dies_seven_days_after_login_not_after_last_refresh(
    authorized: SchwabExecutor, fake: FakeSchwab, clock: TestClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    for _ in range(6):
        clock.advance(days=1)
        await authorized.tokens.maintain()  # refreshes daily; must not extend the deadline
    assert "refresh token expires" in caplog.text  # warned a day ahead
    status = await authorized.auth_status()
    assert status.authorized and status.expires_soon
    clock.advance(days=1)
    grants = len(fake.token_grants)
    with pytest.raises(AuthenticationRequiredError) as err:
        await authorized.tokens.access_token()
    assert "schwab auth" in str(err.value)
    assert len(fake.token_grants) == grants  # known locally; Schwab not bothered
    status = await authorized.auth_status()
    assert not status.authorized and status.problem


async def test_revoked_refresh_token_requires_auth_and_is_not_hammered(
    authorized: SchwabExecutor, fake: FakeSchwab, clock: TestClock
) -> None:
    fake.revoke_refresh_tokens()
    clock.advance(minutes=31)
    with pytest.raises(AuthenticationRequiredError, match="schwab auth"):
        await authorized.account_hash()
    token_posts = sum(1 for m, p in fake.requests if p == "/v1/oauth/token")
    with pytest.raises(AuthenticationRequiredError):
        await authorized.account_hash()
    assert sum(1 for m, p in fake.requests if p == "/v1/oauth/token") == token_posts
    # A new login (another process running `schwab auth`) heals it without a restart.
    other = SchwabExecutor(authorized.config, authorized.store, now=clock.now)
    await other.tokens.exchange_code(fake.issue_code())
    await other.close()
    assert await authorized.account_hash()


async def test_missing_login_asks_for_schwab_auth(executor: SchwabExecutor) -> None:
    await executor.start()  # logs, does not raise
    with pytest.raises(AuthenticationRequiredError, match="schwab auth"):
        await executor.account_hash()


async def test_maintenance_loop_survives_auth_errors_and_logs_once(
    executor: SchwabExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) >= 3:
            raise asyncio.CancelledError

    executor._sleep = fake_sleep
    caplog.set_level(logging.ERROR)
    with pytest.raises(asyncio.CancelledError):
        await executor.maintenance()
    assert len(sleeps) == 3
    assert caplog.text.count("Schwab authorization needed") == 1


def test_encryption_key_validation_never_echoes_the_key() -> None:
    import cattrs

    from st0x_liquidity import make_converter

    conv = make_converter()
    bad = "zz" * 32
    for value in (bad, "00" * 32, "ab" * 10):
        with pytest.raises(cattrs.ClassValidationError) as err:
            conv.structure(
                {"app_key": "k", "app_secret": "s", "encryption_key": value}, SchwabConfig
            )
        text = repr(err.value.exceptions) + str(err.value)
        assert value not in text
    ok = conv.structure(
        {"app_key": "k", "app_secret": "s", "encryption_key": "0x" + "ab" * 32}, SchwabConfig
    )
    assert ok.key_bytes() == bytes([0xAB]) * 32
    assert "ab" * 32 not in repr(ok)


async def test_auth_status_is_published_for_dashboards(
    authorized: SchwabExecutor, clock: TestClock
) -> None:
    import asyncio
    import types

    from st0x_schwab.plugin import AUTH_STATUS_KEY, st0x_app_services

    app = types.SimpleNamespace(executor=authorized, extras={})
    services = st0x_app_services(app=app)
    assert services is not None
    clock.advance(days=6, hours=1)
    task = asyncio.ensure_future(services[0]())
    deadline = asyncio.get_running_loop().time() + 30
    for _ in range(30_000):
        if AUTH_STATUS_KEY in app.extras or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    published = app.extras[AUTH_STATUS_KEY]
    assert published["authorized"] is True and published["expires_soon"] is True
    assert published["refresh_expires_at"] is not None
    assert st0x_app_services(app=types.SimpleNamespace(executor=object(), extras={})) is None
