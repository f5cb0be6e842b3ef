"""Failover campaign, long: N leader losses; takeover time and exposure time, p50/p99.

    PYTHONPATH=src:plugins/st0x_alpaca/src:plugins/st0x_testing/src:tests \
        python benchmarks/failover.py --losses 200 --timings fast

The campaign of ``tests/cli/test_failover.py`` (two ``run`` processes on one
PostgreSQL database started here, the Alpaca fake over HTTP with its faults
on, fills flowing from a followed replay file; kill -9, SIGSTOP then SIGCONT
and a cut database connection in turn), run longer, with the same checks at
the end (every fill once, no client_order_id POSTed twice, conservation per
symbol, the broker agreeing, ``rebuild-views`` identical). Per loss:

* ``takeover``: from the loss to the standby holding the lease;
* ``from_renewal``: from the lost leader's last renewal to the standby holding
  the lease (what ``[ha] lease_ttl + standby_poll`` bounds);
* ``exposure``: from the loss until the new leader is ready to hedge
  (``/health`` ready): the time fills wait unhedged because of the loss.

``--partition`` adds a fourth kind of loss: the proxy keeps the leader's
connections open and forwards nothing (a network partition: nothing errors).

``--timings default`` uses the ``[ha]`` defaults (lease_ttl 6 s, renew 2 s,
fence margin 2 s, standby poll 1 s); ``fast`` the tests' (2, 0.5, 0.8, 0.25).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "tests"))

from support.failover import (  # noqa: E402
    BLACKHOLE,
    CUT,
    FAST_HA,
    FREEZE,
    KILL,
    Cluster,
    Loss,
    TwoKeyAlpaca,
    campaign,
)
from support.postgres import PostgresServer, find_bindir  # noqa: E402

DEFAULT_HA = {"lease_ttl": 6.0, "renew_interval": 2.0, "fence_margin": 2.0, "standby_poll": 1.0}


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    return {
        "p50": round(statistics.median(ordered), 3),
        "p99": round(at(0.99), 3),
        "max": round(ordered[-1], 3),
    }


def summary(losses: list[Loss]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "losses": len(losses),
        "takeover_s": quantiles([x.takeover for x in losses]),
        "from_last_renewal_s": quantiles([x.from_renewal for x in losses]),
        "exposure_s": quantiles([x.exposure for x in losses]),
        "exposure_total_s": round(sum(x.exposure for x in losses), 1),
        "by_kind": {},
    }
    for kind in sorted({x.kind for x in losses}):
        some = [x for x in losses if x.kind == kind]
        out["by_kind"][kind] = {
            "losses": len(some),
            "takeover_s": quantiles([x.takeover for x in some]),
            "from_last_renewal_s": quantiles([x.from_renewal for x in some]),
            "exposure_s": quantiles([x.exposure for x in some]),
        }
    return out


async def main(losses: int, timings: str, partition: bool = False) -> dict[str, Any]:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found (scripts/install-peers.sh)")
    server = PostgresServer(bindir)
    server.start()
    try:
        url = server.new_database()
        with tempfile.TemporaryDirectory(prefix="st0x-failover-") as tmp:
            async with TwoKeyAlpaca(rate_limit=100_000) as fake:
                ha = dict(FAST_HA if timings == "fast" else DEFAULT_HA)
                cluster = await Cluster(Path(tmp), url, fake, ha=ha).setup()
                started = time.monotonic()
                records: list[Loss] = []
                checks = "passed"
                try:
                    kinds = (KILL, FREEZE, CUT, BLACKHOLE) if partition else (KILL, FREEZE, CUT)
                    await campaign(cluster, losses, records=records, kinds=kinds)
                except AssertionError as exc:
                    checks = f"FAILED: {str(exc)[:2000]}"
                finally:
                    await cluster.teardown()
                elapsed = time.monotonic() - started
                result = summary(records) if records else {"losses": 0}
                result.update(
                    timings=timings,
                    ha=ha,
                    fills=len(cluster.rows),
                    orders_posted=len(fake.order_bodies),
                    wall_s=round(elapsed, 1),
                    checks=checks,
                )
                return result
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--losses", type=int, default=200)
    parser.add_argument("--timings", choices=("default", "fast"), default="fast")
    parser.add_argument(
        "--partition",
        action="store_true",
        help="a fourth kind of loss: the leader's connections kept open, nothing forwarded",
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.losses, args.timings, args.partition)), indent=2))
