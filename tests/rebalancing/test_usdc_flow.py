"""The pure part of the USDC flows: amounts, fee caps, matching, where funds are on failure."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rebalancing_support import T0

from st0x_liquidity.config import structure
from st0x_liquidity.errors import ConfigError
from st0x_liquidity.protocols import CashConversion, WalletTransfer
from st0x_liquidity.rebalancing.config import RebalancingConfig
from st0x_liquidity.rebalancing.events import (
    Moved,
    OperationRequested,
    RebalancingEvent,
    StepDone,
    StepIntended,
)
from st0x_liquidity.rebalancing.inventory import Balance, MoveKind
from st0x_liquidity.rebalancing.state import (
    TO_OFFCHAIN,
    TO_ONCHAIN,
    USDC_STEPS,
    OperationState,
    fold_operation,
)
from st0x_liquidity.rebalancing.usdc_flow import (
    AmountError,
    check_fee_cap,
    claimed_transfers,
    conversion_filled,
    costs,
    fee_cap_units,
    find_deposit,
    find_withdrawal,
    from_units,
    received,
    spent,
    transfer_regression,
    usdc_failure_moves,
    usdc_units,
    where,
)

WALLET = "0x00000000000000000000000000000000000000aa"


def state(kind: str, quantity: str = "100", **done: dict[str, str]) -> OperationState:
    s = OperationState("op1", kind, "USDC", Decimal(quantity), "trigger", T0)
    s.done.update(done)
    return s


def moves(s: OperationState) -> list[tuple[str, str, Decimal]]:
    return [(m.venue, m.kind, m.quantity) for m in usdc_failure_moves(s)]


# -- amounts ----------------------------------------------------------------------------


def test_units_are_exact_or_refused() -> None:
    assert usdc_units(Decimal("1.000001")) == 1_000_001
    assert from_units(1_000_001) == Decimal("1.000001")
    for bad in ("0", "-1", "0.0000001"):
        with pytest.raises(AmountError):
            usdc_units(Decimal(bad))


@given(st.integers(1, 10**15), st.decimals(0, 100, places=1))
def test_fee_cap_is_the_ceiling_of_the_bps_share(units: int, bps: Decimal) -> None:
    cap = fee_cap_units(units, bps)
    assert cap * 10000 >= units * bps
    assert (cap - 1) * 10000 < units * bps


def test_an_amount_the_fee_cap_reaches_is_refused() -> None:
    assert check_fee_cap(1_000_000, Decimal(5)) == 500
    with pytest.raises(AmountError, match="too small"):
        check_fee_cap(1, Decimal("1.3"))  # ceil(0.00013) = 1 unit: nothing would land


def test_conversion_dollars_include_price_and_fees() -> None:
    buy = CashConversion(
        "o", "c", "buy", "filled", Decimal(100), Decimal(100), Decimal("1.0002"), Decimal("0.05")
    )
    assert spent(buy) == Decimal("100.07")
    sell = CashConversion(
        "o", "c", "sell", "filled", Decimal(100), Decimal(100), Decimal("0.9999"), Decimal("0.05")
    )
    assert received(sell) == Decimal("99.94")


# -- matching at the broker -----------------------------------------------------------


def transfer(
    tid: str,
    *,
    created: str,
    amount: str = "100",
    direction: str = "OUTGOING",
    to: str = WALLET,
    tx: str | None = None,
) -> WalletTransfer:
    return WalletTransfer(
        tid, direction, "COMPLETE", "USDC", Decimal(amount), tx, None, to, created_at=created
    )


def test_an_interrupted_withdrawal_is_found_only_if_it_is_ours() -> None:
    after = T0

    def t(seconds: int) -> str:
        return (T0 + timedelta(seconds=seconds)).isoformat()

    listed = [
        transfer("before", created=t(-60)),  # older than the intent: someone else's
        transfer("other-amount", created=t(1), amount="99"),
        transfer("other-address", created=t(1), to="0x00000000000000000000000000000000000000bb"),
        transfer("incoming", created=t(1), direction="INCOMING"),
        transfer("claimed", created=t(1)),
        transfer("ours", created=t(2)),
        transfer("later", created=t(3)),
    ]
    found = find_withdrawal(
        listed, WALLET.upper().replace("0X", "0x"), Decimal(100), after, {"claimed"}
    )
    assert found is not None and found.transfer_id == "ours"
    assert find_withdrawal(listed[:5], WALLET, Decimal(100), after, {"claimed"}) is None


def test_claimed_transfers_are_other_operations_withdrawals() -> None:
    a = state(TO_ONCHAIN, broker_withdraw={"transfer_id": "t1"})
    b = attrs_evolve_id(state(TO_ONCHAIN, broker_withdraw={"transfer_id": "t2"}), "op2")
    assert claimed_transfers([a, b], but="op1") == {"t2"}


def attrs_evolve_id(s: OperationState, operation_id: str) -> OperationState:
    s.operation_id = operation_id
    return s


def test_the_deposit_is_found_by_the_mint_transaction() -> None:
    listed = [
        transfer("out", created="", direction="OUTGOING", tx="0xabc"),
        transfer("in", created="", direction="INCOMING", tx="0xABC"),
    ]
    found = find_deposit(listed, "0xabc")
    assert found is not None and found.transfer_id == "in"
    assert find_deposit(listed, "0xdef") is None


# -- where the funds are when an operation fails --------------------------------------

CONVERTED = {"filled": "100", "spent": "100.05", "cost_conversion": "0.05"}
WITHDRAWN = {"received": "99.9", "cost_broker": "0.1"}
BURNED = {"tx_hash": "0xb", "units": "99900000", "at": T0.isoformat()}
RELAYED = {"tx_hash": "0xm", "received": "99.89", "fee": "0.01", "cost_cctp": "0.01"}


def test_to_onchain_failure_moves_follow_the_money() -> None:
    off, on, release, settle, credit = "offchain", "onchain", "release", "settle", "credit"
    assert moves(state(TO_ONCHAIN)) == [(off, release, Decimal(100))]
    assert moves(state(TO_ONCHAIN, convert=CONVERTED)) == [(off, release, Decimal(100))]
    unwound = state(TO_ONCHAIN, convert=CONVERTED, unwind={"received": "99.9"})
    assert moves(unwound) == [(off, settle, Decimal(100)), (off, credit, Decimal("99.9"))]
    in_eth = state(TO_ONCHAIN, convert=CONVERTED, withdraw_poll=WITHDRAWN)
    assert moves(in_eth) == [(on, release, Decimal("99.9"))]
    assert "wallet on Ethereum" in where(in_eth)
    limbo = state(TO_ONCHAIN, convert=CONVERTED, withdraw_poll=WITHDRAWN, burn=BURNED)
    assert moves(limbo) == []  # burned, not minted: stays in flight
    assert "limbo" in where(limbo) and "0xb" in where(limbo)
    on_base = state(
        TO_ONCHAIN, convert=CONVERTED, withdraw_poll=WITHDRAWN, burn=BURNED, relay=RELAYED
    )
    assert moves(on_base) == [(on, release, Decimal("99.89"))]
    assert costs(on_base) == {
        "conversion": Decimal("0.05"),
        "broker": Decimal("0.1"),
        "cctp": Decimal("0.01"),
    }


def test_to_offchain_failure_moves_follow_the_money() -> None:
    off, on, release = "offchain", "onchain", "release"
    out = {"quantity": "100", "units": "100000000", "tx_hash": "0xw"}
    assert moves(state(TO_OFFCHAIN)) == [(on, release, Decimal(100))]
    assert moves(state(TO_OFFCHAIN, vault_withdraw=out)) == [(on, release, Decimal(100))]
    assert moves(state(TO_OFFCHAIN, vault_withdraw=out, burn=BURNED)) == []
    minted = state(TO_OFFCHAIN, vault_withdraw=out, burn=BURNED, relay=RELAYED)
    assert moves(minted) == []  # at the broker's deposit address, not credited yet
    assert "ask the broker" in where(minted)
    credited = state(
        TO_OFFCHAIN,
        vault_withdraw=out,
        burn=BURNED,
        relay=RELAYED,
        detect_deposit={"credited": "99.89"},
    )
    assert moves(credited) == [(off, release, Decimal("99.89"))]


@given(st.decimals(1, 10**6, places=6), st.decimals(0, 1, places=6), st.decimals(0, 1, places=6))
def test_a_completed_move_to_onchain_nets_to_its_costs(
    q: Decimal, slip: Decimal, fee: Decimal
) -> None:
    """Replaying the moves of a completed operation: the broker lost what it spent, the chain
    gained what was minted, nothing is left in flight."""
    dollars, minted = q + slip, q - fee
    steps = [
        Moved("o", "USDC", "offchain", MoveKind.RESERVE.value, q),
        Moved("o", "USDC", "offchain", MoveKind.SETTLE.value, q),
        Moved("o", "USDC", "offchain", MoveKind.DEBIT.value, dollars - q),
        Moved("o", "USDC", "offchain", MoveKind.ARRIVE.value, q),
        Moved("o", "USDC", "offchain", MoveKind.SETTLE.value, q),
        Moved("o", "USDC", "onchain", MoveKind.ARRIVE.value, q),
        Moved("o", "USDC", "onchain", MoveKind.SETTLE.value, fee),
        Moved("o", "USDC", "onchain", MoveKind.RELEASE.value, minted),
    ]
    books = {"offchain": Balance(Decimal(10**7)), "onchain": Balance()}
    for m in steps:
        books[m.venue] = books[m.venue].moved(MoveKind(m.kind), m.quantity)
    assert books["offchain"] == Balance(Decimal(10**7) - dollars, Decimal(0))
    assert books["onchain"] == Balance(minted, Decimal(0))


# -- config -----------------------------------------------------------------------------


def test_cctp_config_defaults_are_mainnet_and_optional() -> None:
    assert structure({}, RebalancingConfig, "rebalancing").cctp is None
    c = structure(
        {"cctp": {"ethereum_rpc_url": "https://eth.example", "usdc_vault_id": "0x1"}},
        RebalancingConfig,
        "rebalancing",
    ).cctp
    assert c.ethereum_domain == 0 and c.base_domain == 6 and c.ethereum_chain_id == 1
    assert c.base_usdc == "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
    assert c.ethereum_usdc == "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
    assert c.base_message_transmitter == "0x81D40F21F12A8F0E3252Bccb954D722d4c464B64"
    assert c.ethereum_token_messenger == "0x28b5a0e9C621a5BadaA536219b3a228C8168cf5d"
    assert c.iris_url == "https://iris-api.circle.com" and c.finality_threshold == 1000


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"usdc_vault_id": "0x1"}, "ethereum_rpc_url"),
        ({"ethereum_rpc_url": "ws://x", "usdc_vault_id": "0x1"}, "ethereum_rpc_url"),
        ({"ethereum_rpc_url": "http://x"}, "usdc_vault_id"),
        ({"ethereum_rpc_url": "http://x", "usdc_vault_id": "vault"}, "usdc_vault_id"),
        (
            {"ethereum_rpc_url": "http://x", "usdc_vault_id": "0x1", "base_usdc": "0x12"},
            "base_usdc",
        ),
        ({"ethereum_rpc_url": "http://x", "usdc_vault_id": "0x1", "base_domain": 0}, "base_domain"),
        (
            {"ethereum_rpc_url": "http://x", "usdc_vault_id": "0x1", "max_fee_bps": "-1"},
            "max_fee_bps",
        ),
        (
            {"ethereum_rpc_url": "http://x", "usdc_vault_id": "0x1", "min_withdrawal": "1.0000001"},
            "min_withdrawal",
        ),
        (
            {"ethereum_rpc_url": "http://x", "usdc_vault_id": "0x1", "finality_threshold": 500},
            "finality_threshold",
        ),
        (
            {"ethereum_rpc_url": "http://x", "usdc_vault_id": "0x1", "attestation_deadline": 0},
            "attestation_deadline",
        ),
        (
            {"ethereum_rpc_url": "http://x", "usdc_vault_id": "0x1", "ethereum_confirmations": 0},
            "ethereum_confirmations",
        ),
        ({"ethereum_rpc_url": "http://x", "usdc_vault_id": "0x1", "iris": "x"}, "iris"),
    ],
)
def test_each_bad_cctp_key_is_one_clear_error(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        structure({"cctp": table}, RebalancingConfig, "rebalancing")
    assert "rebalancing.cctp" in str(caught.value)


@given(st.sampled_from([TO_ONCHAIN, TO_OFFCHAIN]), st.integers(0, 10))
def test_the_fold_resumes_at_the_first_step_not_done(kind: str, k: int) -> None:
    steps = USDC_STEPS[kind]
    k = min(k, len(steps))
    events: list[RebalancingEvent] = [
        OperationRequested("op1", kind, "USDC", Decimal(100), "trigger", T0, "0xusdc", "0xc0c")
    ]
    for step in steps[:k]:
        events.append(StepIntended("op1", step, {"n": "1"}, T0))
        events.append(StepDone("op1", step, {"n": "1"}, T0))
    if k < len(steps):
        events.append(StepIntended("op1", steps[k], {"n": "1"}, T0))
    folded = fold_operation(events)
    assert folded is not None and folded.steps == steps
    if k < len(steps):
        assert folded.next_step == steps[k]
        assert folded.status == f"{steps[k]}:intended"
    else:
        assert folded.next_step is None and folded.status == "finishing"


def test_a_re_attestation_replaces_the_attestation_in_the_fold() -> None:
    events: list[RebalancingEvent] = [
        OperationRequested("op1", TO_ONCHAIN, "USDC", Decimal(100), "trigger", T0),
        StepDone("op1", "attest", {"attestation": "0x01"}, T0),
        StepDone("op1", "attest", {"attestation": "0x02", "reattested": "1"}, T0),
    ]
    folded = fold_operation(events)
    assert folded is not None and folded.done["attest"]["attestation"] == "0x02"


# -- conversion outcomes, transfer status regressions ------------------------------------


def conversion(status: str, filled: str | None) -> CashConversion:
    return CashConversion(
        "o", "c", "buy", status, Decimal(100), Decimal(filled) if filled else None
    )


def test_only_an_ended_conversion_with_a_fill_converted_anything() -> None:
    assert conversion_filled(conversion("filled", "100")) == Decimal(100)
    assert conversion_filled(conversion("cancelled", "40")) == Decimal(40)  # partial, cancelled
    assert conversion_filled(conversion("failed", "1")) == Decimal(1)
    for status, filled in (("cancelled", None), ("failed", None), ("cancelled", "0")):
        assert conversion_filled(conversion(status, filled)) is None
    for live in ("submitted", "partially_filled", "pending"):
        assert conversion_filled(conversion(live, "40")) is None  # may still fill


STATUSES = ["PENDING", "PROCESSING", "COMPLETE", "FAILED"]


def test_transfer_status_regressions() -> None:
    assert transfer_regression(None, "PENDING") is None
    assert transfer_regression("PENDING", "PROCESSING") is None
    assert transfer_regression("processing", "COMPLETE") is None  # any case
    assert transfer_regression("PROCESSING", "PENDING") == (
        "status went back from PROCESSING to PENDING"
    )
    assert transfer_regression("COMPLETE", "PROCESSING") == (
        "status changed after COMPLETE (now PROCESSING)"
    )
    assert transfer_regression("FAILED", "COMPLETE") is not None
    assert transfer_regression("PENDING", "SOMETHING_NEW") is None  # unknown: not ranked


@given(st.sampled_from(STATUSES), st.sampled_from(STATUSES))
def test_a_regression_is_going_back_or_moving_after_the_end(before: str, after: str) -> None:
    rank = {"PENDING": 0, "PROCESSING": 1, "COMPLETE": 2, "FAILED": 2}
    went_back = rank[after] < rank[before]
    after_end = rank[before] == 2 and after != before
    assert (transfer_regression(before, after) is not None) == (went_back or after_end)


def test_a_sale_back_cancelled_part_filled_leaves_the_rest_counted_at_the_broker() -> None:
    off, settle, credit = "offchain", "settle", "credit"
    unwound = state(TO_ONCHAIN, convert=CONVERTED, unwind={"received": "59.9", "unsold": "40"})
    assert moves(unwound) == [
        (off, settle, Decimal(100)),
        (off, credit, Decimal("59.9")),
        (off, credit, Decimal(40)),
    ]
    assert "except 40 USDC" in where(unwound)
    whole = state(TO_ONCHAIN, convert=CONVERTED, unwind={"received": "99.9", "unsold": ""})
    assert moves(whole) == [(off, settle, Decimal(100)), (off, credit, Decimal("99.9"))]
