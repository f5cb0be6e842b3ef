"""Wiring: build the store, executor, source and engine from a config, and run them."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

import attrs

from .config import AppConfig
from .engine import Engine
from .protocols import Executor, FillSource, PositionStore
from .registry import ExecutorContext, Registry
from .services import AppServices
from .store.sqlite import SqliteStore

if TYPE_CHECKING:
    from .store.postgres import PostgresStore

log = logging.getLogger(__name__)


@attrs.define
class App:
    config: AppConfig
    store: PositionStore
    executor: Executor
    source: FillSource
    engine: Engine
    extras: dict[str, Any] = attrs.field(factory=dict)

    def services(self) -> AppServices:
        """The facade plugins' services get (``st0x_app_services``)."""
        return AppServices(
            self.config, self.store, self.executor, self.source, self.engine, self.extras
        )


def open_store(
    config: AppConfig, *, lease: bool = False, read_only: bool = False
) -> SqliteStore | PostgresStore:
    """A store for ``config``'s database (call ``await store.open()`` before use).

    ``lease``: this process writes the engine's streams (``run``,
    ``rebuild-views``) and must be the only one; ``read_only``: it only reads.
    A ``postgresql://`` database_url opens the PostgreSQL store.
    """
    if config.postgres is not None:
        from .store.postgres import PostgresStore

        return PostgresStore(config.postgres.url.get(), lease=lease, read_only=read_only)
    return SqliteStore(
        config.database_path,
        synchronous=config.engine.synchronous,
        lease=lease,
        read_only=read_only,
    )


async def build_app(config: AppConfig, registry: Registry, store: PositionStore) -> App:
    context = ExecutorContext(app=config, store=store)
    executor = registry.executors[config.broker_type].factory(config.broker, context)
    source = registry.sources[config.source_type].factory(config.source, context)
    engine = Engine(config, store, executor, source, database_id=store.database_id)
    return App(config, store, executor, source, engine)


async def _run_services(app: App, registry: Registry) -> None:
    factories = [
        service
        for result in registry.manager.hook.st0x_app_services(app=app.services())
        if result
        for service in result
    ]

    async def guarded(service: Any) -> None:
        try:
            await service()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("service %s failed", getattr(service, "__name__", service))

    await asyncio.gather(*(guarded(s) for s in factories))


async def run_app(config: AppConfig, registry: Registry) -> None:
    """Run until SIGINT/SIGTERM or until a finite source is drained."""
    store = open_store(config, lease=True)
    await store.open()
    try:
        app = await build_app(config, registry, store)
        await app.executor.start()
        try:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, _on_signal, app.engine, sig)
            log.info(
                "running: source=%s broker=%s database=%s",
                config.source_type,
                config.broker_type,
                config.postgres.display if config.postgres else config.database_path,
            )
            services = asyncio.create_task(_run_services(app, registry), name="services")
            try:
                await app.engine.run()
            finally:
                services.cancel()
                await asyncio.gather(services, return_exceptions=True)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().remove_signal_handler(sig)
            await app.source.close()
            await app.executor.close()
    finally:
        await store.close()
    log.info("stopped cleanly")


def _on_signal(engine: Engine, sig: signal.Signals) -> None:
    """First signal: stop gracefully. A second one: exit at once.

    The operator who signals again does not want to wait for a hung broker
    call or node. Exiting without cleanup is as safe as a SIGKILL, which the
    store and the recovery on start are built (and tested) for: every commit is
    atomic and intents are looked up by client_order_id before anything is
    placed again.
    """
    if engine.stop_requested:
        log.warning("%s received again: exiting now without waiting", sig.name)
        logging.shutdown()
        os._exit(128 + int(sig))
    log.info(
        "%s received: stopping intake, finishing in-flight broker calls "
        "(signal again to exit at once)",
        sig.name,
    )
    engine.request_stop()
