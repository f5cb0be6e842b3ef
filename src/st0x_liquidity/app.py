"""Wiring: build the store, executor, source and engine from a config, and run them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import attrs

from .backoff import backoff_delay
from .config import AppConfig
from .engine import Engine
from .errors import AuthenticationRequiredError, ConfigError, RetryableBrokerError, StoreError
from .ha.role import STANDBY, Role
from .protocols import Executor, FillSource, PositionStore
from .registry import ExecutorContext, Registry
from .sd_notify import notify, watchdog_interval
from .services import AppServices
from .stop_signals import Stopper
from .store.breaker_log import BreakerLog
from .store.sqlite import SqliteStore
from .summary import summary_line

if TYPE_CHECKING:
    from .store.postgres import PostgresStore

log = logging.getLogger(__name__)

STOP_GRACE = 20.0
"""Seconds beyond ``[engine] shutdown_timeout`` a stop may take before it is ended
with every thread's stack on stderr (exit 1); systemd's TimeoutStopSec is 45."""


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
    config: AppConfig, *, lease: bool = False, read_only: bool = False, standby: bool = False
) -> SqliteStore | PostgresStore:
    """A store for ``config``'s database (call ``await store.open()`` before use).

    ``lease``: this process writes the engine's streams (``run``,
    ``rebuild-views``) and must be the only one; ``read_only``: it only reads.
    A ``postgresql://`` database_url opens the PostgreSQL store (``standby``:
    it opens even while another holds the lease, and waits for it).
    """
    if config.postgres is not None:
        from .store.postgres import PostgresStore

        ha = config.ha
        return PostgresStore(
            config.postgres.url.get(),
            lease=lease,
            read_only=read_only,
            lease_ttl=ha.lease_ttl,
            renew_interval=ha.renew_interval,
            fence_margin=ha.fence_margin,
            standby=standby,
        )
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


async def _run_services(app: App, registry: Registry, *, standby: bool = False) -> None:
    hook = registry.manager.hook
    found = (hook.st0x_standby_services if standby else hook.st0x_app_services)(app=app.services())
    factories = [service for result in found if result for service in result]

    async def guarded(service: Any) -> None:
        try:
            await service()
        except asyncio.CancelledError:
            raise
        except StoreError as exc:  # the database went away (a leader steps down on its own)
            log.error("service %s stopped: %s", getattr(service, "__name__", service), exc)
        except Exception:
            log.exception("service %s failed", getattr(service, "__name__", service))

    await asyncio.gather(*(guarded(s) for s in factories))


async def run_app(config: AppConfig, registry: Registry) -> None:
    """Run until SIGINT/SIGTERM or until a finite source is drained.

    With PostgreSQL and ``[ha] standby`` (the default), a process that finds
    the lease held waits as a standby and takes over when it lapses
    (:mod:`.ha.runner`); otherwise a held database is refused (exit 3).
    """
    role = Role(standby_enabled=config.postgres is not None and config.ha.standby)
    stopper = Stopper(asyncio.Event(), grace=config.engine.shutdown_timeout + STOP_GRACE)
    if role.standby_enabled:
        from .ha.runner import run_with_standby

        with stopper.installed():
            await run_with_standby(
                role,
                new_store=lambda: _standby_store(config),
                stand_by=lambda store: stand_by(config, registry, store, role, stopper),
                lead=lambda store: lead(config, registry, store, role, stopper),
                stop=stopper.stop,
                pause=config.ha.standby_poll,
            )
        log.info("stopped cleanly")
        return
    store = open_store(config, lease=True)
    await store.open()
    role.epoch = store.epoch
    try:
        with stopper.installed():
            await lead(config, registry, store, role, stopper)
    finally:
        await store.close()
    log.info("stopped cleanly")


def _standby_store(config: AppConfig) -> PostgresStore:
    store = open_store(config, lease=True, standby=True)
    assert not isinstance(store, SqliteStore)  # standby_enabled: a PostgreSQL database_url
    return store


async def lead(
    config: AppConfig, registry: Registry, store: PositionStore, role: Role, stopper: Stopper
) -> None:
    """The leader's run on an open store holding the lease: ingest and hedge until stopped."""
    app = await build_app(config, registry, store)
    app.extras["role"] = role
    app.engine.broker_ready.clear()
    connect = asyncio.create_task(connect_broker(app), name="connect-broker")
    stopper.running(app.engine)
    try:
        log.info(
            "running: source=%s broker=%s database=%s",
            config.source_type,
            config.broker_type,
            config.postgres.display if config.postgres else config.database_path,
        )
        services = asyncio.create_task(_run_services(app, registry), name="services")
        summaries = asyncio.create_task(_log_summaries(app), name="summaries")
        watchdog = asyncio.create_task(_feed_watchdog(app), name="watchdog")
        fence = asyncio.create_task(_step_down_on_loss(app), name="lease-watch")
        try:
            await restore_breaker(app)
            await app.engine.run()
        finally:
            if stopper.stop.is_set() or not role.standby_enabled:
                notify("STOPPING=1")
            for task in (services, summaries, watchdog, fence):
                task.cancel()
            await asyncio.gather(services, summaries, watchdog, fence, return_exceptions=True)
            log.info("at exit: %s", summary_line(app.engine.status, app.engine.books.values()))
    finally:
        stopper.running(None)
        connect.cancel()
        await asyncio.gather(connect, return_exceptions=True)
        await app.source.close()
        await app.executor.close()


async def restore_breaker(app: App) -> None:
    """A pause survives a restart and a takeover: re-apply the last breaker change
    before recovery can place anything.

    Read in a worker thread: a leader's lease renewals run on this loop, and a
    database that went silent must not hold them up.
    """
    try:
        last = await asyncio.to_thread(BreakerLog(app.config.database).last_change)
    except StoreError as exc:
        log.warning("%s", exc)
        return
    if last is not None and last.action == "pause" and app.engine.status.paused is None:
        log.warning("hedging stays paused (paused before the restart: %s)", last.reason)
        app.engine.pause(last.reason)


async def _step_down_on_loss(app: App) -> None:
    """Stop the engine the moment the store loses its lease, not at its next broker call."""
    lost: asyncio.Event | None = getattr(app.store, "lease_lost", None)
    if lost is None:
        return
    await lost.wait()
    from .store.lease import LeaseLostError

    why = str(getattr(app.store, "lost", None) or "lost the lease")
    role: Role | None = app.extras.get("role")
    if role is not None and role.standby_enabled:
        # Said now, not once the engine has wound down: a query that waits on a
        # partitioned database may take psycopg's cancellation (up to 10 s) to end.
        role.become(STANDBY, role.epoch, f"stepped down: {why}")
    app.engine.fail(LeaseLostError(why))


async def stand_by(
    config: AppConfig, registry: Registry, store: PostgresStore, role: Role, stopper: Stopper
) -> bool:
    """Serve the dashboard read-only until the lease is taken (True) or a stop (False).

    A standby runs no other service (the rebalancer, a broker's token keeper
    act: only the leader may), connects to no broker and reads no source.
    """
    from .ha.runner import wait_for_lease

    stop = stopper.stop
    app = await build_app(config, registry, store)
    app.extras["role"] = role
    dashboard = asyncio.create_task(
        _run_services(app, registry, standby=True), name="standby-services"
    )
    watchdog = asyncio.create_task(_standby_watchdog(stop), name="watchdog")
    try:
        return await wait_for_lease(store, role, config.ha.standby_poll, stop)
    finally:
        for task in (dashboard, watchdog):
            task.cancel()
        await asyncio.gather(dashboard, watchdog, return_exceptions=True)
        await app.source.close()
        await app.executor.close()
        if stop.is_set():
            notify("STOPPING=1")


async def _standby_watchdog(stop: asyncio.Event) -> None:
    """systemd: a standby is ready as soon as it serves; it pings while its loop runs."""
    notify("READY=1")
    every = watchdog_interval()
    if every is None:
        return
    while not stop.is_set():
        notify("WATCHDOG=1")
        await asyncio.sleep(every)


SUMMARY_EVERY = 60.0


async def _feed_watchdog(app: App) -> None:
    """systemd: ready once recovery is done; a ping while the engine is alive.

    The pings come from the event loop the engine runs on, and stop when the
    engine is no longer alive, so a wedged loop or a dead engine gets the
    unit restarted by systemd. They start before recovery ends: a standby
    that takes over said ``READY=1`` long ago, so systemd's watchdog is
    already counting while the new leader recovers (a first start is bounded
    by ``TimeoutStartSec`` instead, which pings do not extend).
    """
    engine = app.engine
    pings = asyncio.create_task(_ping_while_alive(engine), name="watchdog-pings")
    try:
        if not await engine.wait_recovered():
            return
        notify("READY=1")
        await pings
    finally:
        pings.cancel()


async def _ping_while_alive(engine: Engine) -> None:
    every = watchdog_interval()
    if every is None:
        return
    while engine.alive():
        notify("WATCHDOG=1")
        await asyncio.sleep(every)


async def _log_summaries(app: App) -> None:
    while True:
        await asyncio.sleep(SUMMARY_EVERY)
        log.info("%s", summary_line(app.engine.status, app.engine.books.values()))


async def connect_broker(app: App) -> None:
    """Start the executor, retrying until the broker answers; then let the engine call it.

    A broker that is unreachable, rate limiting or refusing the credentials when
    ``run`` starts must not stop fills from being recorded: the engine ingests
    meanwhile, the status says what is wrong (``/health``, the dashboard,
    ``/metrics``), and hedging starts once the broker answers, honouring
    ``Retry-After``.
    """
    status = app.engine.status
    cfg = app.config.hedging
    attempt = 0
    while not app.engine.stopping:
        try:
            await app.executor.start()
        except ConfigError as exc:  # a setting no retry can fix (an undecryptable token store)
            app.engine.fail(exc)
            return
        except AuthenticationRequiredError as exc:
            status.auth_required = str(exc)
            delay = cfg.retry_backoff_max
            log.error("broker login required: %s; asking again in %.1fs", exc, delay)
        except RetryableBrokerError as exc:
            attempt += 1
            status.broker_error = f"broker not answering: {exc}"
            delay = max(backoff_delay(attempt, 1.0, cfg.retry_backoff_max, app.engine.rng), exc.retry_after or 0)
            log.warning("broker not answering at start (%s); asking again in %.1fs", exc, delay)
        except Exception as exc:  # final refusals and plugin bugs: say so, keep asking
            attempt += 1
            status.broker_error = f"broker refused to start: {exc}"
            delay = backoff_delay(attempt, 1.0, max(cfg.retry_backoff_max, 30.0), app.engine.rng)
            log.error("broker refused to start (%s); asking again in %.1fs", exc, delay)
        else:
            status.broker_error = status.auth_required = None
            app.engine.broker_ready.set()
            log.info("broker connected")
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(app.engine.stop_event.wait(), delay)
