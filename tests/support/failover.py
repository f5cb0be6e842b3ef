"""Two ``run`` processes on one PostgreSQL database: a leader and a standby, and their losses.

Each instance has its own working directory, dashboard port and TCP proxy to
the database (:class:`~support.tcp_proxy.TcpProxy`, so the test can cut one
off), and its own Alpaca key, so the fake broker knows which instance called
(:class:`TwoKeyAlpaca`). Fills flow from one replay file both follow; the
lease row, read directly (not through a proxy), says who leads.

Used by ``tests/cli/test_failover.py`` and ``benchmarks/failover.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import attrs
import psycopg
from st0x_testing.fake_alpaca import FakeAlpacaTrading

from .fills import random_lines, write_lines
from .tcp_proxy import TcpProxy

SECRET = "s3cr3t-trading-value-0123456789"
KEYS = {"a": "PKTESTKEYA0000000001", "b": "PKTESTKEYB0000000001"}
SYMBOLS = ["AAPL", "TSLA", "NVDA"]
FAST_HA = {"lease_ttl": 2.0, "renew_interval": 0.5, "fence_margin": 0.8, "standby_poll": 0.25}
"""Short timings for tests: a takeover within lease_ttl + standby_poll = 2.25 s."""
BOUND = FAST_HA["lease_ttl"] + FAST_HA["standby_poll"]
"""From the last renewal to the standby holding the lease, with FAST_HA."""
SLACK = 3.0
"""A loaded CI machine's scheduling, on top of the lease's own bound."""


def event_count(url: str) -> int:
    """Events in the log, read directly (not through an instance's proxy)."""
    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute("SELECT COUNT(*) FROM events").fetchone()
    assert row is not None
    return int(row[0])


class TwoKeyAlpaca(FakeAlpacaTrading):
    """The Alpaca fake for both instances, noting which one made each request."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(key_id=KEYS["a"], secret_key=SECRET, **kwargs)
        self.calls: list[tuple[str, str, str, float]] = []
        """(instance, method, path, monotonic time) of every authenticated request."""

    def authenticate(self, request: Any) -> bool:
        key = request.headers.get("APCA-API-KEY-ID")
        who = next((name for name, k in KEYS.items() if k == key), None)
        if who is None or request.headers.get("APCA-API-SECRET-KEY") != SECRET:
            return False
        self.calls.append((who, request.method, request.path, time.monotonic()))
        return True

    def calls_by(self, who: str, after: float, before: float = float("inf")) -> list[str]:
        return [f"{m} {p}" for w, m, p, t in self.calls if w == who and after <= t <= before]


def free_port() -> int:
    """A free port below the ephemeral range: a dashboard rebinds its port at every role
    change, and meanwhile an outgoing connection must not be given it as its own."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1025, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def config_text(
    url: str, fills: Path, alpaca_url: str, dashboard_port: int, ha: dict[str, Any]
) -> str:
    ha_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in ha.items())
    return f"""
database_url = "{url}"
log_level = "{os.environ.get('ST0X_FAILOVER_LOG_LEVEL', 'warning')}"
[source]
type = "replay"
path = "{fills}"
follow = true
[broker]
type = "alpaca-trading-api"
base_url = "{alpaca_url}"
timeout = 2.0
backoff_initial = 0.05
backoff_max = 0.2
[hedging]
poll_interval = 0.05
poll_jitter = 0.02
failure_backoff = 0.05
failure_backoff_max = 0.2
retry_backoff_max = 0.3
clock_recheck = 1.0
[engine]
batch_size = 8
shutdown_timeout = 2.0
[reconciliation]
interval = 3600
[dashboard]
host = "127.0.0.1"
port = {dashboard_port}
[ha]
{ha_lines}
"""


@attrs.define(eq=False)
class Instance:
    name: str
    dir: Path
    proxy: TcpProxy
    port: int
    proc: asyncio.subprocess.Process | None = None
    stopped: bool = False
    """SIGSTOPped (frozen) right now."""

    @property
    def log(self) -> Path:
        return self.dir / "run.log"

    @property
    def config(self) -> Path:
        return self.dir / "config.toml"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        with self.log.open("a") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "st0x_liquidity",
                "run",
                "--config-file",
                str(self.config),
                cwd=self.dir,
                env={
                    **os.environ,
                    "ST0X_BROKER_API_KEY": KEYS[self.name],
                    "ST0X_BROKER_API_SECRET": SECRET,
                    # A process that hangs is sent SIGABRT (dump_stacks): every
                    # thread's stack goes to its log.
                    "PYTHONFAULTHANDLER": "1",
                },
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
            )
        self.stopped = False

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self.stopped = False

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    async def terminate(self, timeout: float = 60) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc is not None else 0
        if self.stopped:
            self.thaw()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.dump_stacks()
            raise AssertionError(
                f"{self.name} did not stop within {timeout}s of SIGTERM; its stacks:\n"
                + self.log_text()[-12000:]
            ) from None

    async def dump_stacks(self) -> None:
        """A hung process: SIGABRT, which faulthandler turns into every thread's stack
        in its log, then the end of it."""
        if not self.running:
            return
        assert self.proc is not None
        if self.stopped:
            self.thaw()
        self.proc.send_signal(signal.SIGABRT)
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def get(self, path: str) -> tuple[int, str] | None:
        if not self.running or self.stopped:
            return None
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
                http.get(f"http://127.0.0.1:{self.port}{path}") as response,
            ):
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None

    async def health(self) -> dict[str, Any] | None:
        got = await self.get("/health")
        return None if got is None else dict(json.loads(got[1]))

    async def role(self) -> str | None:
        health = await self.health()
        return None if health is None else str(health.get("role"))

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@attrs.define
class Lease:
    epoch: int
    pid: int
    renewed_at: datetime
    live: bool


@attrs.define(eq=False)
class Cluster:
    """Two instances, the fake broker, the fills file and a direct connection for checks."""

    tmp: Path
    url: str
    fake: TwoKeyAlpaca
    ha: dict[str, Any] = attrs.field(factory=lambda: dict(FAST_HA))
    instances: dict[str, Instance] = attrs.field(factory=dict)
    fills: Path = attrs.field(init=False)
    rows: list[dict[str, Any]] = attrs.field(factory=list)
    _rng: random.Random = attrs.field(factory=lambda: random.Random(19))
    _next: int = 0

    async def setup(self) -> Cluster:
        self.fills = self.tmp / "fills.jsonl"
        self.fills.touch()
        self.fake.prices.update({s: Decimal("150") for s in SYMBOLS})
        parts = urlsplit(self.url)
        for name in ("a", "b"):
            proxy = await TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
            directory = self.tmp / name
            directory.mkdir()
            via = self.url.replace(f"@{parts.hostname}:{parts.port}/", f"@127.0.0.1:{proxy.port}/")
            instance = Instance(name, directory, proxy, free_port())
            instance.config.write_text(
                config_text(via, self.fills, self.fake.base_url, instance.port, self.ha)
            )
            self.instances[name] = instance
        return self

    async def teardown(self) -> None:
        for instance in self.instances.values():
            with contextlib.suppress(Exception):
                # Still running: the test failed; its stacks tell where it was.
                await instance.dump_stacks()
            await instance.proxy.stop()

    # -- fills ------------------------------------------------------------------

    def add_fills(self, count: int) -> None:
        rows = random_lines(count, SYMBOLS, seed=self._rng.randrange(1 << 30))
        for row in rows:  # unique transaction hashes across calls
            self._next += 1
            row["tx_hash"] = f"0x{self._next:064x}"
            row["block_number"] = self._next
        self.rows.extend(rows)
        write_lines(self.fills, list(rows))

    async def feed(self, per_second: float, stop: asyncio.Event) -> None:
        """Append fills at about ``per_second`` until ``stop``."""
        while not stop.is_set():
            self.add_fills(max(1, round(per_second / 10)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    async def faults(self, stop: asyncio.Event, every: float = 0.4) -> None:
        """Keep the fake broker misbehaving: errors, rate limits, slow and dropped answers."""
        kinds = [
            ("500", "POST"), ("503", "GET"), ("429", "POST"), ("429", "GET"),
            ("slow", "POST"), ("slow_after", "GET"), ("drop_after", "POST"), ("drop", "GET"),
        ]
        while not stop.is_set():
            kind, method = self._rng.choice(kinds)
            self.fake.inject(
                kind, method=method, path_contains="/v2/orders", delay=0.3, retry_after="1"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    # -- who leads ------------------------------------------------------------------

    def lease(self) -> Lease | None:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as db:
            row = db.execute(
                "SELECT epoch, pid, renewed_at, expires_at > now() FROM lease WHERE name = 'engine'"
            ).fetchone()
        if row is None:
            return None
        return Lease(int(row[0]), int(row[1]), datetime.fromisoformat(row[2]), bool(row[3]))

    def holder(self, lease: Lease | None) -> Instance | None:
        if lease is None:
            return None
        return next((i for i in self.instances.values() if i.pid == lease.pid), None)

    async def wait_for(self, what: str, check: Any, timeout: float = 30.0, every: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.logs_tail()}")
            await asyncio.sleep(every)

    async def wait_role(self, instance: Instance, role: str, timeout: float = 30.0) -> None:
        async def check() -> bool:
            return await instance.role() == role

        await self.wait_for(f"{instance.name} to be {role}", check, timeout)

    async def wait_ready_leader(self, instance: Instance, timeout: float = 30.0) -> None:
        async def check() -> bool:
            health = await instance.health()
            return health is not None and health["role"] == "leader" and health["status"] == "ready"

        await self.wait_for(f"{instance.name} to lead and be ready", check, timeout)

    def logs_tail(self) -> str:
        return "\n".join(
            f"--- {i.name} (pid {i.pid})\n" + "\n".join(i.log_text().splitlines()[-25:])
            for i in self.instances.values()
        )

    # -- the end: drained and checked -------------------------------------------------

    def counts(self) -> tuple[int, int]:
        with psycopg.connect(self.url, autocommit=True) as db:
            fills = db.execute("SELECT COUNT(*) FROM onchain_trades").fetchone()
            open_ = db.execute(
                "SELECT COUNT(*) FROM hedge_orders WHERE state IN "
                "('pending', 'submitted', 'partially_filled')"
            ).fetchone()
        return (int(fills[0]) if fills else -1), (int(open_[0]) if open_ else -1)

    async def wait_drained(self, timeout: float = 120.0) -> None:
        def drained() -> bool:
            fills, open_ = self.counts()
            return fills == len(self.rows) and open_ == 0

        await self.wait_for("every fill recorded and no hedge open", drained, timeout, 0.2)
        await asyncio.sleep(1.0)  # a hedge the last fill triggers
        await self.wait_for("every fill recorded and no hedge open", drained, timeout, 0.2)

    def check_books(self) -> None:
        """Every fill once; no client_order_id POSTed twice; conservation per symbol."""
        with psycopg.connect(self.url, autocommit=True) as db:
            trades = db.execute("SELECT tx_hash, log_index FROM onchain_trades").fetchall()
            expected = {(r["tx_hash"], r["log_index"]) for r in self.rows}
            assert len(trades) == len(set(trades)) == len(expected)
            assert set(trades) == expected
            recorded = db.execute(
                "SELECT COUNT(*) FROM events WHERE event_type = 'FillRecorded'"
            ).fetchone()
            assert recorded is not None and recorded[0] == len(expected)
            flows: dict[str, Decimal] = defaultdict(Decimal)
            for r in self.rows:
                sign = 1 if r["direction"] == "BUY" else -1
                flows[str(r["symbol"])[1:]] += sign * Decimal(str(r["amount"]))
            ours: dict[str, tuple[str, Decimal]] = {}
            for cid, symbol, side, state, filled in db.execute(
                "SELECT client_order_id, symbol, side, state, filled_quantity FROM hedge_orders"
            ):
                flows[symbol] += (1 if side == "BUY" else -1) * Decimal(filled)
                ours[cid] = (state, Decimal(filled))
            nets = {s: Decimal(n) for s, n in db.execute("SELECT symbol, net FROM positions")}
            assert nets == {s: v for s, v in flows.items() if s in nets}
            assert all(v == 0 for s, v in flows.items() if s not in nets)
            closed = db.execute(
                "SELECT payload::jsonb ->> 'client_order_id', COUNT(*) FROM events "
                "WHERE event_type = 'HedgeClosed' GROUP BY 1 HAVING COUNT(*) > 1"
            ).fetchall()
            assert closed == [], "a hedge closed twice"
        posted = Counter(str(b.get("client_order_id")) for b in self.fake.order_bodies)
        doubled = sorted(cid for cid, n in posted.items() if n > 1)
        assert doubled == [], f"client_order_id POSTed twice: {doubled}"
        assert posted, "no hedge reached the broker"
        # The broker's orders and our records agree, order by order.
        for cid, (state, filled) in ours.items():
            order = self.fake.order_by_client_id(cid)
            if order is None:
                assert filled == 0, (cid, state, filled)
                continue
            assert Decimal(order.filled_qty) == filled, (cid, state, filled, order.filled_qty)

    def views(self) -> dict[str, list[tuple[Any, ...]]]:
        from st0x_liquidity.store.schema import VIEW_TABLES

        with psycopg.connect(self.url, autocommit=True) as db:
            return {
                table: sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                for table in VIEW_TABLES
            }

    def rebuild_views_is_identical(self) -> None:
        before = self.views()
        # Straight to the database: the proxies run in this (now blocked) event loop.
        direct = self.tmp / "direct"
        direct.mkdir(exist_ok=True)
        a = self.instances["a"]
        via = f"@127.0.0.1:{a.proxy.port}/"
        parts = urlsplit(self.url)
        text = a.config.read_text().replace(via, f"@{parts.hostname}:{parts.port}/")
        (direct / "config.toml").write_text(text)
        done = subprocess.run(
            [sys.executable, "-m", "st0x_liquidity", "rebuild-views", "--config-file", "config.toml"],
            cwd=direct,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "ST0X_BROKER_API_KEY": KEYS["a"], "ST0X_BROKER_API_SECRET": SECRET},
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert self.views() == before


# -- losing the leader ------------------------------------------------------------------

KILL, FREEZE, CUT, BLACKHOLE = "kill -9", "SIGSTOP", "cut", "partition"


@attrs.define
class Loss:
    kind: str
    victim: str
    epoch: int
    """The new leader's epoch."""
    takeover: float
    """Seconds from the loss to the new leader holding the lease."""
    from_renewal: float
    """Seconds from the lost leader's last renewal to the new leader holding the lease."""
    exposure: float
    """Seconds from the loss until the new leader is ready to hedge (fills wait meanwhile)."""


async def start_pair(cluster: Cluster) -> None:
    a, b = cluster.instances["a"], cluster.instances["b"]
    await a.start()
    await cluster.wait_ready_leader(a, 60)
    await b.start()
    await cluster.wait_role(b, "standby", 60)


async def lose_leader(
    cluster: Cluster,
    kind: str,
    frozen_for: float = 0.5,
    while_out: Callable[[Instance], Awaitable[None]] | None = None,
) -> Loss:
    """Take the leader out by ``kind``; wait for the standby to lead; bring the old one back
    as a standby. A woken (SIGCONT) or reconnected old leader must call no broker.
    ``while_out(victim)`` runs once the other leads, before the victim comes back."""
    lease = cluster.lease()
    victim = cluster.holder(lease)
    assert lease is not None and victim is not None, f"no leader: {lease}"
    other = next(i for i in cluster.instances.values() if i is not victim)
    await cluster.wait_role(other, "standby", 60)
    lease = cluster.lease()
    assert lease is not None and cluster.holder(lease) is victim
    started = time.monotonic()
    if kind == KILL:
        await victim.kill()
    elif kind == FREEZE:
        victim.freeze()
    elif kind == BLACKHOLE:
        victim.proxy.blackhole()
    else:
        victim.proxy.cut()
    last = lease.renewed_at
    while True:
        now = cluster.lease()
        assert now is not None
        if now.epoch != lease.epoch:
            break
        last = now.renewed_at
        await asyncio.sleep(0.02)
    taken = time.monotonic()
    from_renewal = time.time() - last.timestamp()
    assert cluster.holder(now) is other, f"epoch {now.epoch} went to pid {now.pid}"
    await cluster.wait_ready_leader(other, 60)
    exposure = time.monotonic() - started
    if while_out is not None:
        await while_out(victim)
    if kind == KILL:
        await victim.start()
    elif kind == FREEZE:
        await asyncio.sleep(frozen_for)
        victim.thaw()
    else:
        await asyncio.sleep(frozen_for)
        victim.proxy.heal()
    await cluster.wait_role(victim, "standby", 60)
    late = [c for c in cluster.fake.calls_by(victim.name, taken) if c.startswith("POST")]
    assert late == [], f"{victim.name} placed orders after losing its lease ({kind}): {late}"
    return Loss(kind, victim.name, now.epoch, taken - started, from_renewal, exposure)


async def campaign(
    cluster: Cluster,
    losses: int,
    *,
    fills_per_second: float = 40,
    seed: int = 6,
    records: list[Loss] | None = None,
    kinds: tuple[str, ...] = (KILL, FREEZE, CUT),
) -> list[Loss]:
    """``losses`` leader losses (kill -9, SIGSTOP/SIGCONT, cut in turn) with fills flowing
    and the broker misbehaving; then drained, stopped and checked. ``records`` receives
    each loss as it happens (kept if a check fails)."""
    rng = random.Random(seed)
    await start_pair(cluster)
    stop = asyncio.Event()
    feeder = asyncio.create_task(cluster.feed(fills_per_second, stop))
    faults = asyncio.create_task(cluster.faults(stop))
    records = [] if records is None else records
    try:
        for n in range(losses):
            await asyncio.sleep(rng.uniform(0.2, 1.0))  # fills flow, hedges in flight
            records.append(
                await lose_leader(cluster, kinds[n % len(kinds)], rng.uniform(0.2, 1.5))
            )
    finally:
        stop.set()
        await asyncio.gather(feeder, faults)
        cluster.fake.faults.clear()
    await cluster.wait_drained()
    for instance in cluster.instances.values():
        code = await instance.terminate()
        assert code == 0, f"{instance.name} exited {code}\n{cluster.logs_tail()}"
        assert "Traceback" not in instance.log_text(), instance.log_text()[-4000:]
    cluster.check_books()
    cluster.rebuild_views_is_identical()
    return records
