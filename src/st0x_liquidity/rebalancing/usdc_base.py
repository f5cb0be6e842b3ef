"""The USDC runner's shared ground: its clients, configuration and common moves.

The USDC operations (broker <-> Base vault over CCTP V2) run on the durable
operation log of operations.py; this base holds what every group of steps uses
(the Ethereum chain, the attestation service, the CCTP configuration, the
route of the bridge, ERC-20 approvals, the completing append). The steps are
mixins on it: usdc_broker.py (conversions and wallet transfers at the broker),
usdc_bridge.py (burn, attestation, relay, re-attestation), usdc_vault.py (the
Base vault), usdc_limbo.py (funds that land after a failed operation), wired
together in usdc_runner.py. Where the funds are after each step is in
usdc_flow.py (the pure part).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from ..domain.numbers import ZERO
from ..protocols import UsdcCustodian
from .chain import ChainClient, erc20_approve
from .config import RebalancingConfig
from .events import CostRecorded, Moved, OperationEnded, RebalancingEvent
from .inventory import USDC
from .log import RebalancingLog
from .operations import OperationRunner, StepFailed
from .state import TO_ONCHAIN, OperationState
from .usdc_config import CctpConfig
from .usdc_flow import costs

log = logging.getLogger(__name__)


class IrisApi(Protocol):
    """What the flows use of Circle's attestation service (st0x_liquidity.cctp.iris)."""

    async def fees(self, source_domain: int, destination_domain: int) -> Sequence[Any]: ...

    async def messages(self, source_domain: int, tx_hash: str) -> Sequence[Any]: ...

    async def reattest(self, nonce_hex: str) -> Any: ...

    async def close(self) -> None: ...


class FundsAtBroker(StepFailed):
    """The USDC bought for this operation cannot leave the broker: sell it back."""


def _now() -> datetime:
    return datetime.now(UTC)


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


class UsdcBase(OperationRunner):
    """The operation runner's USDC ground (clients, config, shared moves); no steps."""

    def __init__(
        self,
        log_: RebalancingLog,
        config: RebalancingConfig,
        chain: ChainClient,
        custodian: Any,
        *,
        eth: ChainClient | None = None,
        iris: IrisApi | None = None,
        retry_delay: float = 1.0,
        orderbook_interface: str = "v5",
    ) -> None:
        super().__init__(
            log_,
            config,
            chain,
            custodian,
            retry_delay=retry_delay,
            orderbook_interface=orderbook_interface,
        )
        self.eth = eth
        self.iris = iris

    @property
    def usdc_ready(self) -> bool:
        return (
            self.config.cctp is not None
            and self.eth is not None
            and self.iris is not None
            and isinstance(self.custodian, UsdcCustodian)
        )

    @property
    def cctp(self) -> CctpConfig:
        if self.config.cctp is None:
            raise StepFailed("[rebalancing.cctp] is not configured")
        return self.config.cctp

    @property
    def usdc_custodian(self) -> UsdcCustodian:
        return cast(UsdcCustodian, self.custodian)

    @property
    def ethereum(self) -> ChainClient:
        if self.eth is None:
            raise StepFailed("no Ethereum chain client ([rebalancing.cctp] ethereum_rpc_url)")
        return self.eth

    @property
    def iris_api(self) -> IrisApi:
        if self.iris is None:
            raise StepFailed("no attestation service client ([rebalancing.cctp] iris_url)")
        return self.iris

    def _forget_nonces(self) -> None:
        super()._forget_nonces()
        if self.eth is not None:
            self.eth._next_nonce = None

    async def close(self) -> None:
        await self.chain.close()
        if self.eth is not None:
            await self.eth.close()
        if self.iris is not None:
            await self.iris.close()

    async def _complete(
        self, state: OperationState, step: str, details: dict[str, str], moves: list[Moved]
    ) -> None:
        """The last step: its result, the moves, the costs and the end in one append."""
        state.done[step] = details
        found = costs(state)
        op = state.operation_id
        extra: list[RebalancingEvent] = [*moves]
        if found:
            extra.append(CostRecorded(op, USDC, found, _now()))
        extra.append(OperationEnded(op, USDC, "completed", None, _now()))
        del state.done[step]
        await self._done(state, step, details, extra)
        total = sum(found.values(), ZERO)
        log.info(
            "operation %s (%s %s USDC) completed, cost %s", op, state.kind, state.quantity, total
        )

    async def _approve(
        self,
        state: OperationState,
        *,
        step: str,
        chain: ChainClient,
        token: str,
        spender: str,
        units: int,
    ) -> None:
        if step not in state.intended:
            allowance = await chain.erc20_allowance(token, self.wallet, spender)
            if allowance >= units:
                await self._done(state, step, {"allowance": str(allowance)})
                return
        receipt = await self._transaction(
            state, step, token, erc20_approve(spender, 2**256 - 1), chain=chain
        )
        await self._done(state, step, {"tx_hash": receipt["transactionHash"]})

    def _route(self, state: OperationState) -> tuple[ChainClient, ChainClient, dict[str, Any]]:
        """(source chain, destination chain, addresses and domains) of the bridge."""
        c = self.cctp
        if state.kind == TO_ONCHAIN:
            return (
                self.ethereum,
                self.chain,
                {
                    "src_domain": c.ethereum_domain,
                    "dst_domain": c.base_domain,
                    "src_usdc": c.ethereum_usdc,
                    "messenger": c.ethereum_token_messenger,
                    "transmitter": c.base_message_transmitter,
                },
            )
        return (
            self.chain,
            self.ethereum,
            {
                "src_domain": c.base_domain,
                "dst_domain": c.ethereum_domain,
                "src_usdc": c.base_usdc,
                "messenger": c.base_token_messenger,
                "transmitter": c.ethereum_message_transmitter,
            },
        )
