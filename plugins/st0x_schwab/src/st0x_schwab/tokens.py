"""Schwab OAuth tokens: exchange, encrypted storage, refresh, expiry.

Lifetimes (Schwab's, not configurable there): the access token lives 30
minutes; the refresh token lives 7 days **from the original login** and is not
extended by refreshing. The record keeps ``authorized_at`` from the code
exchange and never moves it on refresh, so the 7-day deadline is always known.

The record is read from the store on every use, so a ``schwab auth`` run by an
operator in another process is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from st0x_liquidity import (
    AuthenticationRequiredError,
    FinalBrokerError,
    PositionStore,
    RetryableBrokerError,
)

from .config import SchwabConfig
from .crypto import TokenCipher, TokenDecryptionError
from .http import SchwabHttp
from .parsing import TokenReply, parse_token_reply

log = logging.getLogger(__name__)

NAMESPACE = "schwab"
TOKENS_KEY = "tokens"
ACCESS_LIFETIME = timedelta(minutes=30)
REFRESH_LIFETIME = timedelta(days=7)
_MIN_LEFT = timedelta(seconds=60)

AUTH_COMMAND = "python -m st0x_liquidity schwab auth --config-file <your config file>"


def auth_required(why: str) -> AuthenticationRequiredError:
    return AuthenticationRequiredError(
        f"Schwab authorization needed: {why}. Hedging is paused (fills keep accumulating) "
        f"until an operator runs: {AUTH_COMMAND}"
    )


@attrs.frozen(repr=False)
class Tokens:
    access_token: str
    refresh_token: str
    access_expires_at: datetime
    authorized_at: datetime
    refreshed_at: datetime

    def __repr__(self) -> str:
        return (
            f"Tokens(<hidden>, access_expires_at={self.access_expires_at.isoformat()}, "
            f"authorized_at={self.authorized_at.isoformat()})"
        )

    @property
    def refresh_expires_at(self) -> datetime:
        return self.authorized_at + REFRESH_LIFETIME

    def fingerprint(self) -> str:
        """Identifies the login without revealing anything about the tokens."""
        digest = hashlib.sha256(self.refresh_token.encode()).hexdigest()[:16]
        return f"{self.authorized_at.isoformat()}:{digest}"

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "access_expires_at": self.access_expires_at.isoformat(),
                "authorized_at": self.authorized_at.isoformat(),
                "refreshed_at": self.refreshed_at.isoformat(),
            }
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Tokens:
        try:
            raw: Any = json.loads(data)
            return cls(
                access_token=str(raw["access_token"]),
                refresh_token=str(raw["refresh_token"]),
                access_expires_at=datetime.fromisoformat(raw["access_expires_at"]),
                authorized_at=datetime.fromisoformat(raw["authorized_at"]),
                refreshed_at=datetime.fromisoformat(raw["refreshed_at"]),
            )
        except (ValueError, KeyError, TypeError):
            raise TokenDecryptionError(
                "stored Schwab token record decrypted but is not readable; run `schwab auth` again"
            ) from None


def _basic_auth(config: SchwabConfig) -> str:
    raw = f"{config.app_key}:{config.app_secret.get()}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@attrs.frozen
class AuthStatus:
    """What the dashboard and metrics need to know about the Schwab login."""

    authorized: bool
    authorized_at: datetime | None
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None
    expires_soon: bool
    problem: str | None


class TokenManager:
    def __init__(
        self,
        config: SchwabConfig,
        store: PositionStore,
        http: SchwabHttp,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.store = store
        self.http = http
        self._cipher = TokenCipher(config.key_bytes())
        self._now = now
        self._lock = asyncio.Lock()
        self._dead: str | None = None  # fingerprint of a login Schwab refused to refresh
        self._last_warning: datetime | None = None

    # -- storage ---------------------------------------------------------------------

    async def load(self) -> Tokens | None:
        blob = await self.store.get_blob(NAMESPACE, TOKENS_KEY)
        if blob is None:
            return None
        return Tokens.from_bytes(self._cipher.decrypt(blob))

    async def save(self, tokens: Tokens) -> None:
        await self.store.put_blob(NAMESPACE, TOKENS_KEY, self._cipher.encrypt(tokens.to_bytes()))

    # -- OAuth -----------------------------------------------------------------------

    async def _token_request(self, form: dict[str, str], action: str) -> TokenReply:
        reply = await self.http.request(
            "POST",
            "/v1/oauth/token",
            action,
            kind="token",
            headers={
                "Authorization": _basic_auth(self.config),
                "Accept": "application/json",
            },
            form=form,
        )
        return parse_token_reply(reply.body)

    async def exchange_code(self, code: str) -> Tokens:
        """Trade an authorization code for tokens and store them (a fresh login)."""
        reply = await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.config.redirect_uri,
            },
            "token exchange",
        )
        now = self._now()
        tokens = Tokens(
            access_token=reply.access_token,
            refresh_token=reply.refresh_token,
            access_expires_at=now + timedelta(seconds=reply.expires_in),
            authorized_at=now,
            refreshed_at=now,
        )
        async with self._lock:
            await self.save(tokens)
            self._dead = None
        log.info(
            "Schwab authorized; refresh token valid until %s",
            tokens.refresh_expires_at.isoformat(),
        )
        return tokens

    # -- use and refresh ---------------------------------------------------------------

    async def _current(self) -> Tokens:
        tokens = await self.load()
        if tokens is None:
            raise auth_required("no Schwab login is stored")
        return tokens

    def _check_refreshable(self, tokens: Tokens) -> None:
        if self._now() >= tokens.refresh_expires_at:
            raise auth_required(
                f"the refresh token from the login at {tokens.authorized_at.isoformat()} "
                f"expired at {tokens.refresh_expires_at.isoformat()} (Schwab allows 7 days)"
            )
        if self._dead == tokens.fingerprint():
            raise auth_required("Schwab refused the stored refresh token (revoked or expired)")

    async def access_token(self) -> str:
        """A usable access token, refreshing it first if it has under a minute left."""
        tokens = await self._current()
        if self._now() + _MIN_LEFT < tokens.access_expires_at:
            return tokens.access_token
        return (await self.refresh()).access_token

    async def refresh(self, *, force: bool = False, margin: timedelta = _MIN_LEFT) -> Tokens:
        """Refresh the access token unless another caller just did."""
        async with self._lock:
            tokens = await self._current()
            if not force and self._now() + margin < tokens.access_expires_at:
                return tokens
            self._check_refreshable(tokens)
            try:
                reply = await self._token_request(
                    {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
                    "token refresh",
                )
            except RetryableBrokerError:
                raise
            except FinalBrokerError as exc:
                # 400/401 from the token endpoint: refresh token expired or revoked.
                self._dead = tokens.fingerprint()
                raise auth_required(f"Schwab refused the refresh ({exc})") from None
            latest = await self.load()
            if latest is not None and latest.fingerprint() != tokens.fingerprint():
                # An operator re-authorized while we were refreshing: theirs wins.
                return latest
            now = self._now()
            refreshed = Tokens(
                access_token=reply.access_token,
                refresh_token=reply.refresh_token,
                access_expires_at=now + timedelta(seconds=reply.expires_in),
                authorized_at=tokens.authorized_at,
                refreshed_at=now,
            )
            await self.save(refreshed)
            log.info(
                "Schwab access token refreshed; valid until %s",
                refreshed.access_expires_at.isoformat(),
            )
            return refreshed

    async def maintain(self) -> Tokens:
        """Refresh ahead of expiry and warn before the 7-day deadline (maintenance tick)."""
        tokens = await self._current()
        self._warn_if_expiring(tokens)
        margin = timedelta(seconds=self.config.refresh_margin)
        if self._now() + margin >= tokens.access_expires_at:
            tokens = await self.refresh(margin=margin)
        return tokens

    def _warn_if_expiring(self, tokens: Tokens) -> None:
        now = self._now()
        left = tokens.refresh_expires_at - now
        if timedelta(0) < left <= timedelta(seconds=self.config.refresh_warning) and (
            self._last_warning is None or now - self._last_warning >= timedelta(hours=1)
        ):
            self._last_warning = now
            hours = left.total_seconds() / 3600
            log.warning(
                "Schwab refresh token expires at %s (in %.1f hours); hedging will pause then. "
                "Run `%s` before that.",
                tokens.refresh_expires_at.isoformat(),
                hours,
                AUTH_COMMAND,
            )

    async def status(self) -> AuthStatus:
        try:
            tokens = await self.load()
        except TokenDecryptionError as exc:
            return AuthStatus(False, None, None, None, False, str(exc))
        if tokens is None:
            return AuthStatus(False, None, None, None, False, "no Schwab login is stored")
        now = self._now()
        problem = None
        try:
            self._check_refreshable(tokens)
        except AuthenticationRequiredError as exc:
            problem = str(exc)
        soon = now + timedelta(seconds=self.config.refresh_warning) >= tokens.refresh_expires_at
        return AuthStatus(
            problem is None,
            tokens.authorized_at,
            tokens.access_expires_at,
            tokens.refresh_expires_at,
            soon,
            problem,
        )
