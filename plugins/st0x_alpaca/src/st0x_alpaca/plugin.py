"""Entry point ``st0x_liquidity: alpaca``: registers ``alpaca-trading-api``."""

from __future__ import annotations

from collections.abc import Callable

from st0x_liquidity import ExecutorContext, ExecutorType, hookimpl

from .executor import AlpacaTradingConfig, AlpacaTradingExecutor


def _factory(config: AlpacaTradingConfig, context: ExecutorContext) -> AlpacaTradingExecutor:
    executor = AlpacaTradingExecutor(config)
    store = getattr(context, "store", None)  # commands that only read pass no context
    if store is not None:
        # Every order attempt, a re-sent refused POST too, checks the engine's lease first.
        executor.http.before_order = store.verify_lease
    return executor


@hookimpl
def st0x_register_executors(register: Callable[[ExecutorType], None]) -> None:
    register(
        ExecutorType(
            name="alpaca-trading-api",
            config_class=AlpacaTradingConfig,
            factory=_factory,
            description=(
                "Alpaca Trading API (individual accounts), fractional market orders; "
                "extended-hours and overnight limit orders"
            ),
        )
    )
