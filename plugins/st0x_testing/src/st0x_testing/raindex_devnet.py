"""A local Raindex devnet on anvil: deploy the project's test contracts, place orders, take them.

Used by the tests and by ``scripts/demo.sh``. The contracts are the project's own
Solidity (``tools/contracts``), compiled with solc-js by ``tools/build-contracts.js``
into ``data/raindex_devnet_contracts.json``; the test orderbooks emit the real
IOrderBookV5 events (which IRaindexV6 declares unchanged): ``TestOrderBook`` has V5's
``deposit3``/``withdraw3``, ``TestRaindexV6`` V6's ``deposit4``/``withdraw4`` and vaultless
orders (vault id 0: the owner's wallet). Transactions are sent from anvil's unlocked dev
accounts.

Command line (``python -m st0x_testing.raindex_devnet --help``):

* ``anvil``  – start anvil (from ``tools/node_modules``) and print its URL;
* ``setup``  – deploy, fund, place two-sided orders, write ``devnet.json`` and a config;
* ``taker``  – fill those orders at random sizes (fractional included) until stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from st0x_liquidity.raindex.abi import VAULT_FUNCTIONS, canonical_type
from st0x_liquidity.raindex.floats import decimal_to_float
from st0x_liquidity.raindex.node import Node, NodeUnavailable

# anvil's well-known dev accounts (mnemonic "test test ... junk"); never hold real funds.
MAKER = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
TAKER = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
OTHER_MAKER = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
ZERO_VAULT = b"\x00" * 31 + b"\x01"
"""The vault id of the devnet's orders (vault 1; the name is historical)."""
NO_VAULT = b"\x00" * 32
"""Vault id 0: on IRaindexV6 a *vaultless* IO (tokens move to and from the owner's wallet)."""
ORDERBOOK_CONTRACTS = {"v5": "TestOrderBook", "v6": "TestRaindexV6"}
"""The test orderbook of each ``[evm] orderbook_interface``."""

DEFAULT_SYMBOLS = {"AAPL": Decimal("190.25"), "TSLA": Decimal("242.10"), "NVDA": Decimal("131.40")}
SPREAD = Decimal("0.002")


# -- anvil ----------------------------------------------------------------------------


def anvil_binary() -> str:
    """anvil from ``$ST0X_TOOLS/node_modules/.bin``, the checkout's ``tools/``, or PATH."""
    candidates = []
    if os.environ.get("ST0X_TOOLS"):
        candidates.append(Path(os.environ["ST0X_TOOLS"]) / "node_modules" / ".bin" / "anvil")
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidates.append(parent / "tools" / "node_modules" / ".bin" / "anvil")
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("anvil")
    if found:
        return found
    raise FileNotFoundError(
        "anvil not found: run `npm install` in tools/ (scripts/install-peers.sh does it)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define
class Anvil:
    """A running anvil on 127.0.0.1 (stop it with :meth:`stop`)."""

    port: int
    process: subprocess.Popen[bytes]
    args: list[str]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_anvil(
    port: int | None = None,
    *,
    block_time: float | None = None,
    state_path: Path | None = None,
    extra: Sequence[str] = (),
    timeout: float = 30.0,
) -> Anvil:
    """Start anvil and wait until it answers; ``state_path`` dumps/loads its state on stop/start."""
    port = port or free_port()
    args = [anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--silent"]
    if block_time is not None:
        args += ["--block-time", str(block_time)]
    if state_path is not None:
        args += ["--state", str(state_path)]
    args += list(extra)
    process = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"anvil exited with {process.returncode}: {err[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return Anvil(port, process, args)
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"anvil did not open port {port} within {timeout}s")


# -- contracts ------------------------------------------------------------------------


def load_artifacts(filename: str) -> dict[str, Any]:
    """A ``data/`` file of contracts compiled by ``tools/build-contracts.js``: each
    contract's ``abi`` and ``bytecode`` by name (the raindex and the CCTP devnets)."""
    text = resources.files("st0x_testing").joinpath(f"data/{filename}").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def abi_function(
    artifacts: dict[str, Any], contract: str, name: str, arity: int | None = None
) -> tuple[bytes, list[str], list[str]]:
    """The selector, input and output types of ``contract``'s function ``name`` (with
    ``arity`` inputs, to pick an overload; None: the first of that name)."""
    for entry in artifacts[contract]["abi"]:
        if entry.get("type") != "function" or entry["name"] != name:
            continue
        if arity is not None and len(entry["inputs"]) != arity:
            continue
        inputs = [canonical_type(p) for p in entry["inputs"]]
        outputs = [canonical_type(p) for p in entry.get("outputs", [])]
        return keccak(text=f"{name}({','.join(inputs)})")[:4], inputs, outputs
    raise KeyError(f"{contract} has no function {name}")


def abi_constructor(artifacts: dict[str, Any], contract: str, *args: Any) -> str:
    """Deployment data: ``contract``'s bytecode followed by its encoded constructor args."""
    art = artifacts[contract]
    types = next(
        (
            [canonical_type(p) for p in e["inputs"]]
            for e in art["abi"]
            if e.get("type") == "constructor"
        ),
        [],
    )
    return str(art["bytecode"]) + (encode(types, list(args)).hex() if types else "")


@cache
def artifacts() -> dict[str, Any]:
    return load_artifacts("raindex_devnet_contracts.json")


def _function(contract: str, name: str) -> tuple[bytes, list[str], list[str]]:
    return abi_function(artifacts(), contract, name)


def calldata(contract: str, name: str, *args: Any) -> str:
    selector, inputs, _ = _function(contract, name)
    return "0x" + (selector + encode(inputs, list(args))).hex()


def constructor_data(contract: str, *args: Any) -> str:
    return abi_constructor(artifacts(), contract, *args)


class TransactionFailed(RuntimeError):
    pass


class Chain:
    """Sends transactions from anvil's unlocked accounts and waits for their receipts."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @classmethod
    async def connect(cls, url: str) -> Chain:
        node = Node(url, 30.0)
        await node.connect(None)
        return cls(node)

    async def close(self) -> None:
        await self.node.close()

    async def rpc(self, method: str, params: list[Any]) -> Any:
        return await self.node.request(method, params)

    async def send(
        self, sender: str, to: str | None, data: str, *, wait: bool = True
    ) -> dict[str, Any]:
        tx: dict[str, Any] = {"from": sender, "data": data, "gas": hex(15_000_000)}
        if to is not None:
            tx["to"] = to
        tx_hash = str(await self.rpc("eth_sendTransaction", [tx]))
        if not wait:
            return {"transactionHash": tx_hash}
        return await self.receipt(tx_hash)

    async def receipt(self, tx_hash: str, wait_seconds: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + wait_seconds
        while True:
            receipt = await self.rpc("eth_getTransactionReceipt", [tx_hash])
            if isinstance(receipt, dict):
                if receipt.get("status") != "0x1":
                    raise TransactionFailed(f"transaction {tx_hash} reverted")
                return receipt
            if time.monotonic() > deadline:
                raise TimeoutError(f"no receipt for {tx_hash}")
            await asyncio.sleep(0.05)

    async def deploy(self, contract: str, *args: Any) -> str:
        receipt = await self.send(MAKER, None, constructor_data(contract, *args))
        return str(receipt["contractAddress"]).lower()

    async def call(self, contract: str, address: str, name: str, *args: Any) -> Any:
        from eth_abi.abi import decode

        result = await self.rpc(
            "eth_call", [{"to": address, "data": calldata(contract, name, *args)}, "latest"]
        )
        _, _, outputs = _function(contract, name)
        return decode(outputs, bytes.fromhex(result[2:]))

    async def block_number(self) -> int:
        return int(await self.rpc("eth_blockNumber", []), 16)

    async def timestamp(self) -> int:
        block = await self.rpc("eth_getBlockByNumber", ["latest", False])
        return int(block["timestamp"], 16)


# -- the devnet -----------------------------------------------------------------------


def feed_id(symbol: str) -> bytes:
    return keccak(text=f"st0x-devnet-feed:{symbol}")


def _order(  # noqa: PLR0917
    owner: str,
    pyth: str,
    usdc: str,
    equity: str,
    symbol: str,
    nonce: int,
    vault: bytes = ZERO_VAULT,
) -> tuple[Any, ...]:
    """A two-sided order: inputs and outputs [USDC, equity], in ``vault`` (1, or 0: vaultless
    on V6); reads the symbol's feed."""
    ios = [(usdc, vault), (equity, vault)]
    evaluable = (pyth, "0x" + "00" * 20, feed_id(symbol))
    return (owner, evaluable, ios, ios, nonce.to_bytes(32, "big"))


@attrs.define
class Devnet:
    """Addresses and orders of a deployed devnet (JSON round-trip for the demo's processes)."""

    orderbook: str
    usdc: str
    pyth: str
    equities: dict[str, str]
    deployment_block: int
    prices: dict[str, str]
    orders: dict[str, Any] = attrs.field(factory=dict)
    other_orders: dict[str, Any] = attrs.field(factory=dict)
    interface: str = "v5"
    """``v5`` (``TestOrderBook``) or ``v6`` (``TestRaindexV6``)."""
    vaultless: bool = False
    """The maker's orders use vault id 0 (V6 only): its tokens stay in its wallet."""

    @property
    def contract(self) -> str:
        """The test orderbook's contract name (for :func:`calldata`)."""
        return ORDERBOOK_CONTRACTS[self.interface]

    def to_json(self) -> dict[str, Any]:
        def enc(order: Any) -> Any:
            if isinstance(order, bytes):
                return "0x" + order.hex()
            if isinstance(order, list | tuple):
                return [enc(x) for x in order]
            return order

        data = attrs.asdict(self)
        data["orders"] = {k: enc(v) for k, v in self.orders.items()}
        data["other_orders"] = {k: enc(v) for k, v in self.other_orders.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Devnet:
        devnet = cls(**{k: v for k, v in data.items() if k not in ("orders", "other_orders")})
        devnet.orders = {k: _order_from_json(v) for k, v in data.get("orders", {}).items()}
        devnet.other_orders = {
            k: _order_from_json(v) for k, v in data.get("other_orders", {}).items()
        }
        return devnet

    def price(self, symbol: str) -> Decimal:
        return Decimal(self.prices[symbol])


def _order_from_json(value: list[Any]) -> tuple[Any, ...]:
    owner, evaluable, inputs, outputs, nonce = value
    interp, store, bytecode = evaluable
    return (
        owner,
        (interp, store, bytes.fromhex(bytecode[2:])),
        [(t, bytes.fromhex(v[2:])) for t, v in inputs],
        [(t, bytes.fromhex(v[2:])) for t, v in outputs],
        bytes.fromhex(nonce[2:]),
    )


def _pyth_units(price: Decimal) -> int:
    return int((price * Decimal(10**8)).to_integral_value())


async def deploy(
    chain: Chain,
    symbols: dict[str, Decimal] | None = None,
    *,
    equity_prefix: str = "t",
    interface: str = "v5",
    vaultless: bool = False,
) -> Devnet:
    """Deploy USDC (6 decimals), one 18-decimal token per symbol, a Pyth-like oracle and the
    orderbook (``interface`` v5 or v6); fund the maker's vaults and place one two-sided order
    per symbol for the maker (``MAKER``, the configured owner) and one for ``OTHER_MAKER``
    (for clears). With ``vaultless`` (V6 only) the maker's orders use vault id 0 and its
    tokens stay in its wallet (approved to the orderbook); the other maker keeps vaults."""
    if interface not in ORDERBOOK_CONTRACTS:
        raise ValueError(f"unknown orderbook interface {interface!r} (v5 or v6)")
    if vaultless and interface != "v6":
        raise ValueError("vaultless orders need the V6 orderbook")
    symbols = symbols or dict(DEFAULT_SYMBOLS)
    usdc = await chain.deploy("TestERC20", "USD Coin", "USDC", 6)
    deployment_block = await chain.block_number()
    pyth = await chain.deploy("TestPyth")
    contract = ORDERBOOK_CONTRACTS[interface]
    orderbook = await chain.deploy(contract)
    equities: dict[str, str] = {}
    for symbol in symbols:
        equities[symbol] = await chain.deploy(
            "TestERC20", f"Tokenized {symbol}", f"{equity_prefix}{symbol}", 18
        )
    devnet = Devnet(
        orderbook=orderbook,
        usdc=usdc,
        pyth=pyth,
        equities=equities,
        deployment_block=deployment_block,
        prices={k: str(v) for k, v in symbols.items()},
        interface=interface,
        vaultless=vaultless,
    )
    deposit = VAULT_FUNCTIONS[interface][0]
    now = await chain.timestamp()
    big = 10**12
    for account in (MAKER, TAKER, OTHER_MAKER):
        await chain.send(account, usdc, calldata("TestERC20", "mint", account, big * 10**6))
        await chain.send(account, usdc, calldata("TestERC20", "approve", orderbook, 2**256 - 1))
        for token in equities.values():
            await chain.send(account, token, calldata("TestERC20", "mint", account, big * 10**18))
            await chain.send(
                account, token, calldata("TestERC20", "approve", orderbook, 2**256 - 1)
            )
    for index, (symbol, price) in enumerate(symbols.items()):
        await set_price(chain, devnet, symbol, price, now)
        for owner, book in ((MAKER, devnet.orders), (OTHER_MAKER, devnet.other_orders)):
            in_wallet = vaultless and owner == MAKER
            vault = NO_VAULT if in_wallet else ZERO_VAULT
            order = _order(owner, pyth, usdc, equities[symbol], symbol, index + 1, vault)
            await chain.send(owner, orderbook, calldata(contract, "addOrder", order))
            book[symbol] = order
            if in_wallet:
                continue  # minted and approved above: the wallet is the order's inventory
            for token, amount in ((usdc, Decimal(10**9)), (equities[symbol], Decimal(10**7))):
                data = calldata(contract, deposit, token, vault, decimal_to_float(amount), [])
                await chain.send(owner, orderbook, data)
    return devnet


async def set_price(
    chain: Chain, devnet: Devnet, symbol: str, price: Decimal, when: int | None = None
) -> None:
    when = when if when is not None else await chain.timestamp()
    data = calldata("TestPyth", "setPrice", feed_id(symbol), _pyth_units(price), 5000, -8, when)
    await chain.send(MAKER, devnet.pyth, data)
    devnet.prices[symbol] = str(price)


def _usdc(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.000001"), rounding=ROUND_DOWN)


async def take(
    chain: Chain,
    devnet: Devnet,
    symbol: str,
    maker_buys: bool,
    shares: Decimal,
    *,
    wait: bool = True,
) -> dict[str, Any]:
    """The taker fills the maker's ``symbol`` order: the maker buys or sells ``shares``."""
    order = devnet.orders[symbol]
    price = devnet.price(symbol)
    if maker_buys:  # order receives equity (input 1) and gives USDC (output 0)
        usdc = _usdc(shares * price * (1 - SPREAD))
        config: tuple[Any, ...] = (order, 1, 0, [])
        taker_input, taker_output = usdc, shares
    else:  # order receives USDC (input 0) and gives equity (output 1)
        usdc = _usdc(shares * price * (1 + SPREAD))
        config = (order, 0, 1, [])
        taker_input, taker_output = shares, usdc
    data = calldata(
        devnet.contract,
        "takeOrders",
        [config],
        [decimal_to_float(taker_input)],
        [decimal_to_float(taker_output)],
    )
    return await chain.send(TAKER, devnet.orderbook, data, wait=wait)


async def clear(
    chain: Chain,
    devnet: Devnet,
    symbol: str,
    maker_buys: bool,
    shares: Decimal,
    *,
    maker_is_alice: bool = True,
) -> dict[str, Any]:
    """Clear the maker's ``symbol`` order against OTHER_MAKER's; the maker buys or sells ``shares``."""
    ours, theirs = devnet.orders[symbol], devnet.other_orders[symbol]
    usdc = _usdc(shares * devnet.price(symbol))
    # our (input, output) indices: buying = receive equity (1), give USDC (0)
    our_in, our_out = (1, 0) if maker_buys else (0, 1)
    our_gives, their_gives = (usdc, shares) if maker_buys else (shares, usdc)
    if maker_is_alice:
        alice, bob = ours, theirs
        cfg = (our_in, our_out, our_out, our_in, b"\x00" * 32, b"\x00" * 32)
        alice_output, bob_output = our_gives, their_gives
    else:
        alice, bob = theirs, ours
        cfg = (our_out, our_in, our_in, our_out, b"\x00" * 32, b"\x00" * 32)
        alice_output, bob_output = their_gives, our_gives
    data = calldata(
        devnet.contract,
        "clear3",
        alice,
        bob,
        cfg,
        decimal_to_float(alice_output),
        decimal_to_float(bob_output),
    )
    return await chain.send(TAKER, devnet.orderbook, data)


def config_toml(
    devnet: Devnet,
    ws_url: str,
    database: str,
    *,
    broker_lines: str = "",
    dashboard_port: int | None = None,
) -> str:
    """The bot's config for a devnet; ``dashboard_port`` adds a loopback ``[dashboard]``
    (0: a free port, whose address the bot logs as ``dashboard at http://…``)."""
    feeds = ", ".join(f'{s} = "0x{feed_id(s).hex()}"' for s in devnet.equities)
    interface = f'orderbook_interface = "{devnet.interface}"\n' if devnet.interface != "v5" else ""
    dashboard = (
        ""
        if dashboard_port is None
        else f'\n[dashboard]\nhost = "127.0.0.1"\nport = {dashboard_port}\n'
    )
    return f"""# Generated by `python -m st0x_testing.raindex_devnet setup` for the local devnet.
database_url = "{database}"
log_level = "info"

[evm]
ws_rpc_url = "{ws_url}"
orderbook = "{devnet.orderbook}"
order_owner = "{MAKER}"
deployment_block = {devnet.deployment_block}
{interface}
[source]
type = "raindex"
cutoff = "latest"
poll_interval = 1.0
stall_timeout = 30.0
usdc_address = "{devnet.usdc}"
pyth_address = "{devnet.pyth}"
pyth_feeds = {{ {feeds} }}

[broker]
type = "dry-run"
{broker_lines}{dashboard}"""


# -- command line ---------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def _setup(args: argparse.Namespace) -> int:
    chain = await Chain.connect(args.rpc_url)
    try:
        devnet = await deploy(chain, interface=args.orderbook_interface, vaultless=args.vaultless)
    finally:
        await chain.close()
    out = Path(args.out)
    _write(out / "devnet.json", json.dumps(devnet.to_json(), indent=1))
    dashboard = None if args.dashboard_port < 0 else args.dashboard_port
    _write(
        out / "config.toml",
        config_toml(devnet, args.rpc_url, args.database, dashboard_port=dashboard),
    )
    print(
        f"deployed orderbook {devnet.orderbook} (block {devnet.deployment_block}); config in {out / 'config.toml'}"
    )
    return 0


def _read_devnet(path: str) -> Devnet:
    return Devnet.from_json(json.loads(Path(path).read_text()))


async def _taker(args: argparse.Namespace) -> int:
    devnet = _read_devnet(args.devnet_file)
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.duration if args.duration else None
    chain = await Chain.connect(args.rpc_url)
    count = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            if args.count and count >= args.count:
                break
            symbol = rng.choice(sorted(devnet.equities))
            maker_buys = rng.random() < 0.5
            shares = Decimal(rng.randint(1, 500_000)) / Decimal(100_000)  # 0.00001 .. 5 shares
            if rng.random() < 0.2:  # the oracle moves
                drift = Decimal(rng.randint(-50, 50)) / Decimal(10_000)
                price = (devnet.price(symbol) * (1 + drift)).quantize(Decimal("0.01"))
                await set_price(chain, devnet, symbol, price)
            try:
                if rng.random() < 0.25:
                    receipt = await clear(
                        chain, devnet, symbol, maker_buys, shares, maker_is_alice=rng.random() < 0.5
                    )
                    kind = "clear"
                else:
                    receipt = await take(chain, devnet, symbol, maker_buys, shares)
                    kind = "take"
            except (TransactionFailed, NodeUnavailable) as exc:
                print(f"taker: {exc}", file=sys.stderr)
                await asyncio.sleep(args.interval)
                continue
            count += 1
            side = "BUY" if maker_buys else "SELL"
            print(
                f"taker: {kind:5} maker {side:4} {shares} {symbol} @ ~{devnet.price(symbol)} "
                f"(block {int(receipt['blockNumber'], 16)}, tx {receipt['transactionHash'][:10]}…)",
                flush=True,
            )
            await asyncio.sleep(rng.uniform(args.interval / 2, args.interval * 1.5))
    finally:
        await chain.close()
    return 0


def _anvil(args: argparse.Namespace) -> int:
    anvil = start_anvil(args.port, block_time=args.block_time)
    print(anvil.ws_url, flush=True)
    try:
        anvil.process.wait()
    except KeyboardInterrupt:
        anvil.stop()
    return 0


def add_interface_arguments(parser: argparse.ArgumentParser) -> None:
    """``--orderbook-interface v5|v6`` and ``--vaultless`` (for ``setup`` and ``demo``)."""
    parser.add_argument(
        "--orderbook-interface",
        choices=sorted(ORDERBOOK_CONTRACTS),
        default="v5",
        help="deploy the IOrderBookV5 (default) or the IRaindexV6 test orderbook",
    )
    parser.add_argument(
        "--vaultless",
        action="store_true",
        help="V6 only: the maker's orders use vault id 0 (its tokens stay in its wallet)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m st0x_testing.raindex_devnet")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("anvil", help="run anvil in the foreground")
    p.add_argument("--port", type=int, default=8545)
    p.add_argument("--block-time", type=float)
    p.set_defaults(run=_anvil)
    p = sub.add_parser("setup", help="deploy the test contracts and place orders")
    p.add_argument("--rpc-url", required=True)
    p.add_argument("--out", required=True, help="folder for devnet.json and config.toml")
    p.add_argument("--database", default="demo.sqlite")
    add_interface_arguments(p)
    p.add_argument(
        "--dashboard-port",
        type=int,
        default=0,
        help="port of the bot's dashboard on 127.0.0.1 (0: a free one, logged; -1: none)",
    )
    p.set_defaults(run=lambda a: asyncio.run(_setup(a)))
    p = sub.add_parser("taker", help="fill the maker's orders at random sizes")
    p.add_argument("--rpc-url", required=True)
    p.add_argument("--devnet-file", required=True)
    p.add_argument("--duration", type=float, default=0.0, help="seconds (0: until stopped)")
    p.add_argument("--count", type=int, default=0, help="stop after this many fills (0: no limit)")
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--seed", type=int)
    p.set_defaults(run=lambda a: asyncio.run(_taker(a)))
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
