"""Entry point ``st0x_liquidity: alpaca-broker``: registers ``alpaca-broker-api``."""

from __future__ import annotations

from collections.abc import Callable

from st0x_liquidity import ExecutorContext, ExecutorType, hookimpl

from .executor import AlpacaBrokerConfig, AlpacaBrokerExecutor


def _factory(config: AlpacaBrokerConfig, _context: ExecutorContext) -> AlpacaBrokerExecutor:
    return AlpacaBrokerExecutor(config)


@hookimpl
def st0x_register_executors(register: Callable[[ExecutorType], None]) -> None:
    register(
        ExecutorType(
            name="alpaca-broker-api",
            config_class=AlpacaBrokerConfig,
            factory=_factory,
            description="Alpaca Broker API (managed accounts), fractional market orders",
        )
    )
