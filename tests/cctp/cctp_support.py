"""Shared steps of the CCTP chain tests: burn on one side, attest, sign crafted messages."""

from __future__ import annotations

from typing import Any

import attrs
from eth_account import Account
from eth_utils.crypto import keccak
from st0x_testing import cctp_devnet as devnet
from st0x_testing.cctp_devnet import CctpPair, CctpSide
from st0x_testing.raindex_devnet import MAKER, TAKER

from st0x_liquidity.cctp.iris import IrisClient, IrisMessage, wait_for_attestation
from st0x_liquidity.cctp.message import CctpMessage, decode_message, encode_message

AMOUNT = 100_000_000  # 100 USDC
FAST_FEE = 10_000  # 1 bp of 100 USDC


async def burn(
    side: CctpSide,
    *,
    amount: int = AMOUNT,
    max_fee: int = FAST_FEE,
    to: str = TAKER,
    destination: int | None = None,
    sender: str = MAKER,
    **options: Any,
) -> dict[str, Any]:
    dst = destination if destination is not None else (6 if side.domain == 0 else 0)
    return await devnet.burn(
        side.chain,
        side.deployment,
        sender,
        amount,
        destination_domain=dst,
        mint_recipient=to,
        max_fee_units=max_fee,
        **options,
    )


async def attested(iris_url: str, side: CctpSide, receipt: dict[str, Any]) -> IrisMessage:
    client = IrisClient(iris_url)
    try:
        return await wait_for_attestation(
            client, side.domain, receipt["transactionHash"], interval=0.05, deadline=30.0
        )
    finally:
        await client.close()


def sign(key: str, message: bytes) -> bytes:
    """One raw-digest attester signature (r||s||v, v 27/28)."""
    return bytes(Account.unsafe_sign_hash(keccak(message), key).signature)


def resign(pair: CctpPair, message: CctpMessage) -> tuple[bytes, bytes]:
    """A crafted message and the test attester's valid signature over it."""
    data = encode_message(message)
    return data, sign(pair.attester_key, data)


def evolve_burn(data: bytes, **changes: Any) -> CctpMessage:
    message = decode_message(data)
    return attrs.evolve(message, burn=attrs.evolve(message.burn, **changes))


async def reason(side: CctpSide, sender: str, to: str, data: str) -> str | None:
    return await devnet.revert_reason(side.chain, sender, to, data)
