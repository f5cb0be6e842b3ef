"""Entry point ``st0x_liquidity: alpaca-broker``: registers ``alpaca-broker-api``."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from st0x_liquidity import AppConfig, Custodian, ExecutorContext, ExecutorType, hookimpl

from .client import AlpacaBrokerClient
from .custody import AlpacaCustodian
from .executor import AlpacaBrokerConfig, AlpacaBrokerExecutor


def _factory(config: AlpacaBrokerConfig, context: ExecutorContext) -> AlpacaBrokerExecutor:
    executor = AlpacaBrokerExecutor(config)
    store = getattr(context, "store", None)  # commands that only read pass no context
    if store is not None:
        # Every order attempt, a re-sent refused POST too, checks the engine's lease first.
        executor.http.before_order = store.verify_lease
    return executor


@hookimpl
def st0x_register_executors(register: Callable[[ExecutorType], None]) -> None:
    register(
        ExecutorType(
            name="alpaca-broker-api",
            config_class=AlpacaBrokerConfig,
            factory=_factory,
            description=(
                "Alpaca Broker API (managed accounts), fractional market orders; "
                "extended-hours and overnight limit orders"
            ),
        )
    )


@hookimpl
def st0x_custodian(config: AppConfig) -> Custodian | None:
    """Tokenization through the same Broker API account as hedging."""
    if config.broker_type != "alpaca-broker-api":
        return None
    broker: AlpacaBrokerConfig = config.broker
    section = config.sections.get("rebalancing")
    client = AlpacaBrokerClient(
        broker.http_settings(broker.resolved_base_url()),
        broker.api_key,
        broker.api_secret,
        str(uuid.UUID(broker.account_id)),
    )
    return AlpacaCustodian(
        client,
        issuer=str(getattr(section, "issuer", "st0x")),
        network=str(getattr(section, "network", "base")),
    )
