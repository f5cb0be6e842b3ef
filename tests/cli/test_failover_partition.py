"""A leader partitioned from the database: its connections stay open and nothing answers.

A reset connection fails at once (``test_failover.py``'s cut); a partition
fails nothing: every read, write and renewal just waits. The proxy between
the leader and PostgreSQL keeps its TCP connections (keepalives are
answered, so no socket option helps) and forwards nothing. The leader must
still stop placing orders by its own clock, the standby take over by time,
and the old leader, once the network heals, come back as a standby that
wrote and placed nothing after losing the lease.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from support.failover import (
    BLACKHOLE,
    BOUND,
    SLACK,
    Cluster,
    Instance,
    TwoKeyAlpaca,
    event_count,
    lose_leader,
    start_pair,
)


@pytest.mark.slow
async def test_a_leader_partitioned_from_the_database_is_replaced(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ST0X_FAILOVER_LOG_LEVEL", "info")  # the wind-down's "at exit" line
    async with TwoKeyAlpaca(rate_limit=100_000) as fake:
        cluster = await Cluster(tmp_path, postgres_url, fake).setup()
        try:
            a, b = cluster.instances["a"], cluster.instances["b"]
            await start_pair(cluster)
            stop = asyncio.Event()
            feeder = asyncio.create_task(cluster.feed(40, stop))
            await cluster.wait_for("hedges in flight", lambda: len(fake.order_bodies) >= 3)

            async def steps_down_while_partitioned(victim: Instance) -> None:
                # Nothing it waits on ever answers: it must step down by itself, and
                # wind its engine down without waiting on the dead connections
                # (psycopg's own query cancellation would take about 10 s).
                await cluster.wait_for(
                    f"{victim.name} to step down while partitioned",
                    lambda: re.search(r"role: standby \(epoch 1\): stepped down: ", victim.log_text()),
                    timeout=30,
                )
                await cluster.wait_for(
                    f"{victim.name}'s engine to wind down while partitioned",
                    lambda: "at exit: " in victim.log_text(),
                    timeout=8,
                )
                assert "lost the lease" in victim.log_text()

            loss = await lose_leader(
                cluster, BLACKHOLE, frozen_for=0.5, while_out=steps_down_while_partitioned
            )
            assert loss.victim == "a"
            assert loss.from_renewal < BOUND + SLACK, loss
            stop.set()
            await feeder
            await cluster.wait_drained()
            health = await a.health()
            assert health is not None and health["role"] == "standby"
            assert health["epoch"] == 2
            events = event_count(postgres_url)
            for instance in (a, b):
                assert await instance.terminate() == 0, cluster.logs_tail()
                assert "Traceback" not in instance.log_text(), instance.log_text()[-4000:]
            assert event_count(postgres_url) == events
            cluster.check_books()
        finally:
            await cluster.teardown()
