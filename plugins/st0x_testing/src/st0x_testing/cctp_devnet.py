"""CCTP V2 on local anvil chains: deploy the stand-in contracts, wire two chains, bridge.

The contracts are the project's own Solidity (``tools/contracts/cctp``), compiled by
``tools/build-contracts.js`` into ``data/cctp_devnet_contracts.json``; they follow
Circle's CCTP V2 (``reference/rebalancing.md`` §10). The setup follows Circle's own
anvil test (§10.5): USDC with the TokenMinter as minter, the MessageTransmitter with the
test attesters, the TokenMessenger with a fee recipient and ``minFee``, burn limits,
token pairs and remote messengers on both sides. Transactions come from anvil's unlocked
dev accounts (keys in :data:`DEV_KEYS`, for code that signs itself).

:func:`start_cctp_pair` starts two anvils (an Ethereum stand-in, domain 0, and a Base
stand-in, domain 6), deploys and links them and funds accounts: the fixture of the CCTP
and USDC-rebalancing tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import attrs
from eth_abi.abi import decode, encode
from eth_account import Account

from st0x_liquidity.cctp import contracts
from st0x_liquidity.cctp.message import to_bytes32
from st0x_liquidity.raindex.node import RpcError

from .fake_iris import ATTESTER_KEY, FakeIris
from .raindex_devnet import (
    MAKER,
    OTHER_MAKER,
    TAKER,
    Anvil,
    Chain,
    abi_constructor,
    abi_function,
    load_artifacts,
    start_anvil,
)

ETHEREUM_DOMAIN = 0
BASE_DOMAIN = 6

# anvil's dev accounts 0..4 (mnemonic "test test ... junk"); never hold real funds.
DEV_KEYS = {
    MAKER: "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    TAKER: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    OTHER_MAKER: "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x90f79bf6eb2c4f870365e785982e1f101e93b906": (
        "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
    ),
    "0x15d34aaf54267db7d7c367839aaf71a00a2c6a65": (
        "0x47e179ec197488593b187f8a8eb2d5d7b8ebb3c63f7db5ae7cd7a7b9e3b8c0f9"
    ),
}
FEE_RECIPIENT = "0x000000000000000000000000000000000000fee0"
DEFAULT_MIN_FEE = 1000
"""``minFee`` in 1/1000 bp: 1000 = 1 bp, the fast-fee floor on Ethereum."""
DEFAULT_BURN_LIMIT = 10**9 * 10**6
"""Per-message burn limit: 1e9 USDC."""


# -- artifacts and calldata -----------------------------------------------------------


@cache
def cctp_artifacts() -> dict[str, Any]:
    return load_artifacts("cctp_devnet_contracts.json")


def _function(contract: str, name: str, arity: int | None) -> tuple[bytes, list[str], list[str]]:
    return abi_function(cctp_artifacts(), contract, name, arity)


def cctp_calldata(contract: str, name: str, *args: Any) -> str:
    """Calldata for any function of the devnet contracts (overloads chosen by arity)."""
    selector, inputs, _ = _function(contract, name, len(args))
    return "0x" + (selector + encode(inputs, list(args))).hex()


def cctp_constructor(contract: str, *args: Any) -> str:
    return abi_constructor(cctp_artifacts(), contract, *args)


async def view(chain: Chain, contract: str, address: str, name: str, *args: Any) -> Any:
    """``eth_call`` a view; one value comes back bare, several as a tuple."""
    _, _, outputs = _function(contract, name, len(args))
    data = cctp_calldata(contract, name, *args)
    result = await chain.rpc("eth_call", [{"to": address, "data": data}, "latest"])
    values = decode(outputs, bytes.fromhex(result[2:]))
    return values[0] if len(values) == 1 else values


async def revert_reason(chain: Chain, sender: str, to: str, data: str) -> str | None:
    """What ``eth_call`` of this transaction reverts with (None: it would succeed)."""
    try:
        await chain.rpc("eth_call", [{"from": sender, "to": to, "data": data}, "latest"])
    except RpcError as exc:
        text = exc.text
        return text.split("execution reverted: ", 1)[-1] if "reverted" in text else text
    return None


# -- deployment -----------------------------------------------------------------------


@attrs.frozen
class CctpDeployment:
    """One chain's CCTP stand-ins (lower-case addresses)."""

    domain: int
    chain_id: int
    usdc: str
    message_transmitter: str
    token_messenger: str
    token_minter: str
    fee_recipient: str
    owner: str
    deployment_block: int

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CctpDeployment:
        return cls(**data)


async def _deploy(chain: Chain, owner: str, contract: str, *args: Any) -> str:
    receipt = await chain.send(owner, None, cctp_constructor(contract, *args))
    return str(receipt["contractAddress"]).lower()


async def deploy_cctp(
    chain: Chain,
    *,
    domain: int,
    attesters: Sequence[str],
    signature_threshold: int = 1,
    owner: str = MAKER,
    fee_recipient: str = FEE_RECIPIENT,
    min_fee: int = DEFAULT_MIN_FEE,
    burn_limit: int = DEFAULT_BURN_LIMIT,
    usdc: str | None = None,
) -> CctpDeployment:
    """Deploy USDC (unless given: it must be a TestUSDC owned by ``owner``), the
    MessageTransmitterV2, TokenMinterV2 and TokenMessengerV2 on one chain, with the
    local wiring (minter role, local messenger, burn limit); :func:`link` does the rest."""
    chain_id = int(await chain.rpc("eth_chainId", []), 16)
    block = await chain.block_number()
    usdc = usdc or await _deploy(chain, owner, "TestUSDC", "USD Coin", "USDC")
    mt = await _deploy(
        chain, owner, "MessageTransmitterV2", domain, 1, list(attesters), signature_threshold, 8192
    )
    minter = await _deploy(chain, owner, "TokenMinterV2", owner)
    tm = await _deploy(chain, owner, "TokenMessengerV2", mt, 1, minter, fee_recipient, min_fee)
    await chain.send(owner, minter, cctp_calldata("TokenMinterV2", "addLocalTokenMessenger", tm))
    await chain.send(
        owner,
        minter,
        cctp_calldata("TokenMinterV2", "setMaxBurnAmountPerMessage", usdc, burn_limit),
    )
    await chain.send(owner, usdc, cctp_calldata("TestUSDC", "configureMinter", minter, True))
    return CctpDeployment(
        domain=domain,
        chain_id=chain_id,
        usdc=usdc,
        message_transmitter=mt,
        token_messenger=tm,
        token_minter=minter,
        fee_recipient=fee_recipient.lower(),
        owner=owner.lower(),
        deployment_block=block,
    )


async def link(*sides: tuple[Chain, CctpDeployment]) -> None:
    """Wire every pair of deployments both ways: remote TokenMessengers and token pairs."""
    for chain, local in sides:
        for _, remote in sides:
            if remote.domain == local.domain:
                continue
            await chain.send(
                local.owner,
                local.token_messenger,
                cctp_calldata(
                    "TokenMessengerV2",
                    "addRemoteTokenMessenger",
                    remote.domain,
                    bytes.fromhex(to_bytes32(remote.token_messenger)[2:]),
                ),
            )
            await chain.send(
                local.owner,
                local.token_minter,
                cctp_calldata(
                    "TokenMinterV2",
                    "linkTokenPair",
                    local.usdc,
                    remote.domain,
                    bytes.fromhex(to_bytes32(remote.usdc)[2:]),
                ),
            )


# -- convenience for tests ------------------------------------------------------------


async def mint_usdc(chain: Chain, deployment: CctpDeployment, to: str, units: int) -> None:
    """Seed a balance (the USDC owner mints)."""
    await chain.send(
        deployment.owner, deployment.usdc, cctp_calldata("TestUSDC", "mint", to, units)
    )


async def usdc_balance(chain: Chain, deployment: CctpDeployment, owner: str) -> int:
    result = await chain.rpc(
        "eth_call", [{"to": deployment.usdc, "data": contracts.balance_of(owner)}, "latest"]
    )
    return contracts.decode_uint(result)


async def used_nonce(chain: Chain, deployment: CctpDeployment, nonce_hex: str) -> int:
    result = await chain.rpc(
        "eth_call",
        [
            {"to": deployment.message_transmitter, "data": contracts.used_nonces(nonce_hex)},
            "latest",
        ],
    )
    return contracts.decode_uint(result)


async def burn(
    chain: Chain,
    deployment: CctpDeployment,
    sender: str,
    amount_units: int,
    *,
    destination_domain: int,
    mint_recipient: str,
    max_fee_units: int,
    min_finality_threshold: int = 1000,
    destination_caller: str = contracts.ZERO,
) -> dict[str, Any]:
    """Approve the TokenMessenger and ``depositForBurn``; the burn's receipt."""
    await chain.send(
        sender, deployment.usdc, contracts.approve(deployment.token_messenger, amount_units)
    )
    data = contracts.deposit_for_burn(
        amount_units,
        destination_domain,
        mint_recipient,
        deployment.usdc,
        max_fee_units,
        min_finality_threshold,
        destination_caller,
    )
    return await chain.send(sender, deployment.token_messenger, data)


async def relay(
    chain: Chain, deployment: CctpDeployment, sender: str, message: bytes, attestation: bytes
) -> dict[str, Any]:
    """``receiveMessage`` on the destination; the receipt (TransactionFailed on revert)."""
    return await chain.send(
        sender, deployment.message_transmitter, contracts.receive_message(message, attestation)
    )


async def find_relay(
    chain: Chain, deployment: CctpDeployment, nonce_hex: str, from_block: int = 0
) -> tuple[str, contracts.MintResult | None] | None:
    """The relay of ``nonce`` on this (destination) chain, whoever sent it: its tx hash
    and its ``MintAndWithdraw``; None when the message was not received yet."""
    logs = await chain.rpc(
        "eth_getLogs",
        [contracts.message_received_filter(deployment.message_transmitter, nonce_hex, from_block)],
    )
    if not logs:
        return None
    tx_hash = str(logs[0]["transactionHash"])
    receipt = await chain.rpc("eth_getTransactionReceipt", [tx_hash])
    return tx_hash, contracts.mint_and_withdraw(receipt, deployment.token_messenger)


# -- two chains -----------------------------------------------------------------------


@attrs.define
class CctpSide:
    """One running chain of a pair."""

    name: str
    anvil: Anvil
    chain: Chain
    deployment: CctpDeployment

    @property
    def domain(self) -> int:
        return self.deployment.domain

    @property
    def rpc_url(self) -> str:
        return self.anvil.http_url

    @property
    def ws_url(self) -> str:
        return self.anvil.ws_url


@attrs.define
class CctpPair:
    """An Ethereum stand-in (domain 0) and a Base stand-in (domain 6), linked over CCTP.

    ``accounts`` (anvil dev accounts, keys in :data:`DEV_KEYS`) hold ETH and
    ``funded_units`` USDC on both chains; the attester is ``attester_key``.
    """

    ethereum: CctpSide
    base: CctpSide
    attester_key: str
    accounts: list[str]
    funded_units: int
    fee_recipient: str = FEE_RECIPIENT

    @property
    def attester(self) -> str:
        return str(Account.from_key(self.attester_key).address).lower()

    @property
    def sides(self) -> list[CctpSide]:
        return [self.ethereum, self.base]

    def side(self, domain: int) -> CctpSide:
        for side in self.sides:
            if side.domain == domain:
                return side
        raise KeyError(f"no chain with domain {domain}")

    def to_json(self) -> dict[str, Any]:
        """Addresses and URLs (e.g. for a subprocess under test); no secrets beyond test keys."""
        return {
            "attester": self.attester,
            "accounts": self.accounts,
            "chains": {
                s.name: {"rpc_url": s.rpc_url, "ws_url": s.ws_url, **s.deployment.to_json()}
                for s in self.sides
            },
        }

    async def start_iris(self, port: int = 0, **options: Any) -> FakeIris:
        """A :class:`FakeIris` watching both chains and signing with the pair's attester
        (``options`` go to its constructor: ``pending_seconds``, ``expiration_window``, ...);
        stop it with ``await iris.stop()``."""
        iris = FakeIris(attester_keys=[self.attester_key], **options)
        for side in self.sides:
            iris.add_chain(side.domain, side.rpc_url, side.deployment.message_transmitter)
        return await iris.start(port)

    async def stop(self) -> None:
        for side in self.sides:
            await side.chain.close()
            side.anvil.stop()


async def start_cctp_pair(
    tmp_path: Path | None = None,
    *,
    chain_ids: tuple[int, int] = (1, 8453),
    attester_key: str = ATTESTER_KEY,
    min_fee: int = DEFAULT_MIN_FEE,
    funded_units: int = 1_000_000 * 10**6,
    accounts: Sequence[str] = (MAKER, TAKER, OTHER_MAKER),
) -> CctpPair:
    """Start two anvils, deploy and link CCTP on both, fund ``accounts`` with USDC.

    With ``tmp_path``, the addresses are also written to ``tmp_path/cctp-pair.json``.
    Call :meth:`CctpPair.stop` when done (the pytest fixture does).
    """
    attester = str(Account.from_key(attester_key).address)
    anvils: list[Anvil] = []
    chains: list[Chain] = []
    try:
        sides = []
        for index, (name, chain_id, domain) in enumerate(
            (("ethereum", chain_ids[0], ETHEREUM_DOMAIN), ("base", chain_ids[1], BASE_DOMAIN))
        ):
            anvil = start_anvil(extra=["--chain-id", str(chain_id)])
            anvils.append(anvil)
            chain = await Chain.connect(anvil.http_url)
            chains.append(chain)
            for _ in range(index * 3):  # distinct addresses on each chain catch mix-ups
                await chain.send(MAKER, MAKER, "0x")
            deployment = await deploy_cctp(
                chain, domain=domain, attesters=[attester], min_fee=min_fee
            )
            for account in accounts:
                await mint_usdc(chain, deployment, account, funded_units)
            sides.append(CctpSide(name, anvil, chain, deployment))
        await link(*[(s.chain, s.deployment) for s in sides])
    except BaseException:
        for chain in chains:
            await chain.close()
        for anvil in anvils:
            anvil.stop()
        raise
    pair = CctpPair(
        ethereum=sides[0],
        base=sides[1],
        attester_key=attester_key,
        accounts=[a.lower() for a in accounts],
        funded_units=funded_units,
    )
    if tmp_path is not None:
        (tmp_path / "cctp-pair.json").write_text(json.dumps(pair.to_json(), indent=1))
    return pair
