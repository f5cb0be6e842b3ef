"""Registers the ``raindex`` fill source and the ``get-pyth-price`` command (built-in plugin)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..domain.events import FillRecorded, HedgeClosed, HedgeIntended, StoredEvent
from ..domain.numbers import fmt
from ..errors import ConfigError
from ..hookspecs import hookimpl
from ..registry import ExecutorContext, FillSourceType
from .source import RaindexConfig, RaindexSource

if TYPE_CHECKING:
    from ..services import AppServices

activity = logging.getLogger("st0x_liquidity.raindex.activity")


def _factory(config: RaindexConfig, context: ExecutorContext) -> RaindexSource:
    evm = context.app.evm
    if evm is None:
        raise ConfigError("evm", "required section is missing (the raindex source needs it)")
    return RaindexSource(with_evm_cutoff(config, evm.cutoff), evm, context.store)


def with_evm_cutoff(config: RaindexConfig, cutoff: object) -> RaindexConfig:
    """``[evm] cutoff`` (where the issue and the docs put it) or ``[source] cutoff``.

    Both are accepted; set to different values they are a config error rather
    than a silent choice, since the cutoff decides which fills are acted on.
    """
    if cutoff is None:
        return config
    try:
        chosen = attrs.evolve(config, cutoff=cutoff)
    except ValueError as exc:
        raise ConfigError("evm.cutoff", str(exc).removeprefix("cutoff ")) from None
    if config.cutoff != RaindexConfig().cutoff and config.cutoff != chosen.cutoff:
        raise ConfigError(
            "evm.cutoff",
            f"{chosen.cutoff!r} disagrees with [source] cutoff = {config.cutoff!r}; set one",
        )
    return chosen


@hookimpl
def st0x_register_fill_sources(register: Callable[[FillSourceType], None]) -> None:
    register(
        FillSourceType(
            name="raindex",
            config_class=RaindexConfig,
            factory=_factory,
            description="fills of the owner's Raindex (IOrderBookV5 or IRaindexV6) orders from an EVM node",
        )
    )


def _cmd_get_pyth_price(args: argparse.Namespace) -> int:
    from ..cli import load

    config = load(args)
    if config.source_type != "raindex" or config.evm is None:
        raise ConfigError(
            "source.type", 'get-pyth-price needs type = "raindex" and an [evm] section'
        )
    source = RaindexSource(config.source, config.evm, None)
    try:
        result = asyncio.run(source.trace_pyth(args.tx_hash.lower(), args.symbol))
    except ValueError as exc:
        raise ConfigError("source.pyth_address", str(exc)) from None
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0 if result.get("price") else 1


DEMO_NEEDS = (
    "demo needs the test devnet: pip install st0x-liquidity-testing "
    "(or pip install -e plugins/st0x_testing in a checkout) and anvil "
    "(npm install @foundry-rs/anvil, or tools/: npm install)"
)


def _cmd_demo(args: argparse.Namespace) -> int:
    """Local devnet demo in one process: anvil, contracts, taker, and the real engine."""
    from ..cli import main as cli_main

    try:  # test support, not runtime code: installed apart (or editable from the checkout)
        from st0x_testing import raindex_devnet as dn
    except ImportError:
        print(DEMO_NEEDS, file=sys.stderr)
        return 2
    try:
        dn.anvil_binary()
    except FileNotFoundError:
        print(DEMO_NEEDS, file=sys.stderr)
        return 2
    folder = Path(args.dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("demo.sqlite*"):
        stale.unlink()
    anvil = dn.start_anvil()
    print(f"anvil: {anvil.ws_url} (stopped at the end)", flush=True)
    try:
        asyncio.run(_demo(args, dn, anvil, folder))
    except KeyboardInterrupt:
        pass
    finally:
        anvil.stop()
    config = str(folder / "config.toml")
    print("\n== positions", flush=True)
    cli_main(["positions", "--config-file", config])
    print(f"\n(audit: python -m st0x_liquidity audit --config-file {config})")
    return 0


async def _demo(args: argparse.Namespace, dn: Any, anvil: Any, folder: Path) -> None:
    """The demo's engine run; ``dn`` is ``st0x_testing.raindex_devnet``."""
    import os
    import signal

    from ..app import run_app
    from ..config import load_config
    from ..logs import secrets_in, setup_logging

    chain = await dn.Chain.connect(anvil.ws_url)
    taker: asyncio.Task[int] | None = None
    try:
        devnet = await dn.deploy(
            chain,
            interface=getattr(args, "orderbook_interface", "v5"),
            vaultless=getattr(args, "vaultless", False),
        )
        (folder / "devnet.json").write_text(json.dumps(devnet.to_json(), indent=1))
        dashboard = None if args.dashboard_port < 0 else args.dashboard_port
        (folder / "config.toml").write_text(
            dn.config_toml(devnet, anvil.ws_url, "demo.sqlite", dashboard_port=dashboard)
        )
        print(f"deployed the devnet: orderbook {devnet.orderbook}; config {folder / 'config.toml'}")
        config = load_config(folder / "config.toml", args.registry)
        setup_logging(config.log_level, "text", secrets_in(config))
        taker_args = argparse.Namespace(
            rpc_url=anvil.ws_url,
            devnet_file=str(folder / "devnet.json"),
            duration=0.0,
            count=0,
            interval=args.interval,
            seed=args.seed,
        )
        taker = asyncio.create_task(dn._taker(taker_args))
        if args.duration:
            # The engine stops on SIGINT like on Ctrl-C: the same clean path.
            asyncio.get_running_loop().call_later(
                args.duration, os.kill, os.getpid(), signal.SIGINT
            )
        await run_app(config, args.registry)
    finally:
        if taker is not None:
            taker.cancel()
            await asyncio.gather(taker, return_exceptions=True)
        await chain.close()


@hookimpl
def st0x_add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ..cli import config_parent

    demo = subparsers.add_parser(
        "demo",
        help="run the whole loop on a local anvil devnet (needs st0x-liquidity-testing and anvil)",
    )
    demo.add_argument("--duration", type=float, default=0.0, help="seconds (0: until Ctrl-C)")
    demo.add_argument("--interval", type=float, default=2.0, help="mean seconds between fills")
    demo.add_argument("--seed", type=int, help="taker's random seed")
    demo.add_argument("--dir", default=".demo", help="folder for the config and database")
    demo.add_argument(
        "--dashboard-port",
        type=int,
        default=0,
        help="dashboard port on 127.0.0.1 (0: a free one, printed at start; -1: no dashboard)",
    )
    demo.add_argument(
        "--orderbook-interface",
        choices=("v5", "v6"),
        default="v5",
        help="deploy the IOrderBookV5 (default) or the IRaindexV6 test orderbook",
    )
    demo.add_argument(
        "--vaultless",
        action="store_true",
        help="V6 only: the maker's orders use vault id 0 (its tokens stay in its wallet)",
    )
    demo.set_defaults(handler=_cmd_demo)

    parser = subparsers.add_parser(
        "get-pyth-price",
        parents=[config_parent()],
        help="print the Pyth price(s) a transaction read (needs debug_traceTransaction)",
    )
    parser.add_argument("tx_hash", help="0x-prefixed transaction hash")
    parser.add_argument("--symbol", help="base ticker whose configured feed to pick (e.g. AAPL)")
    parser.set_defaults(handler=_cmd_get_pyth_price)


def _activity_logger(events: Sequence[StoredEvent]) -> None:
    """One INFO line per fill recorded and per hedge placed or closed (the demo shows these)."""
    for stored in events:
        event = stored.event
        if isinstance(event, FillRecorded):
            fill = event.fill
            activity.info(
                "fill   %s %s %s @ %s (block %d, %s)",
                fill.direction.value,
                fmt(fill.amount),
                fill.symbol,
                fmt(fill.price.quantize(Decimal("0.000001"))),
                fill.block_number,
                fill.trade_id,
            )
        elif isinstance(event, HedgeIntended):
            activity.info(
                "hedge  %s %s %s (ref %s) -> %s",
                event.side.value,
                fmt(event.quantity),
                stored.aggregate_id,
                fmt(event.reference_price.quantize(Decimal("0.000001"))),
                event.client_order_id,
            )
        elif isinstance(event, HedgeClosed):
            price = fmt(event.average_price) if event.average_price is not None else "-"
            activity.info(
                "hedge  %s %s: %s %s @ %s%s",
                event.client_order_id,
                event.state.value,
                event.side.value,
                fmt(event.filled_quantity),
                price,
                f" ({event.reason})" if event.reason else "",
            )


@hookimpl
def st0x_app_services(app: AppServices) -> Sequence[Callable[[], Awaitable[None]]] | None:
    """With the raindex source, log fills and hedges as they happen (one line each)."""
    if app.config.source_type != "raindex":
        return None
    app.engine.add_listener(_activity_logger)
    return None
