"""Decoding of IOrderBookV5 logs into maker-side fills (reference vectors, §9.3–9.5)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from raindex_vectors import (
    AAPL,
    ORDERBOOK,
    OWNER,
    TX,
    USDC,
    after_clear_log,
    clear_log,
    take_log,
    word,
)

from st0x_liquidity.domain.fills import Direction, Fill, TradeId
from st0x_liquidity.raindex.decode import (
    AfterClear,
    Clear,
    LogDecodeError,
    OrderSide,
    RawLog,
    Skip,
    TakeOrder,
    TokenInfo,
    decode_event,
    equity_base,
    owned_sides,
    side_to_fill,
)
from st0x_liquidity.raindex.floats import pack_float

NOW = datetime(2026, 1, 2, 15, 4, 5, tzinfo=UTC)
TOKENS = {USDC: TokenInfo("USDC", 6), AAPL: TokenInfo("AAPL0x", 18)}
OTHER = "0x" + "ff" * 20


def fills(logs: list[RawLog], tokens: dict[str, TokenInfo] = TOKENS) -> list[Fill | str]:
    events = [decode_event(log, ORDERBOOK) for log in logs]
    out: list[Fill | str] = []
    for item in owned_sides(events, OWNER):
        if isinstance(item, Skip):
            out.append(item.reason)
        else:
            out.append(side_to_fill(item, tokens, NOW))
    return out


def test_t1_take_order_sell() -> None:
    log = take_log(0, 1, word(9), word(100))
    assert len(log.data) == 1120  # the reference's encoding, byte for byte in size
    event = decode_event(log, ORDERBOOK)
    assert isinstance(event, TakeOrder)
    assert event.order.owner == OWNER
    [fill] = fills([log])
    assert isinstance(fill, Fill)
    assert fill.trade_id == TradeId(TX, 293)
    assert (fill.symbol.ticker, fill.direction, fill.amount) == ("AAPL", Direction.SELL, 9)
    assert fill.price == Decimal("11.111111111111111111")
    assert fill.block_number == 12345


def test_take_order_buy_and_other_vectors() -> None:
    [buy] = fills([take_log(1, 0, word(50), word(5))])
    assert isinstance(buy, Fill)
    assert (buy.direction, buy.amount, buy.price) == (Direction.BUY, 5, 10)
    [sell] = fills([take_log(0, 1, word(15), word(200))])
    assert isinstance(sell, Fill)
    assert (sell.direction, sell.amount) == (Direction.SELL, 15)
    assert sell.price == Decimal("13.333333333333333333")
    [zero] = fills([take_log(0, 1, word(0), word(0))])
    assert isinstance(zero, str) and "zero amounts" in zero
    big = pack_float(100000000, 0)
    nine = pack_float(9000000000000000000, -18)
    [bad_index] = fills([take_log(99, 1, big, nine)])
    assert isinstance(bad_index, str) and "index 99 out of range" in bad_index
    [not_ours] = fills([take_log(0, 1, word(9), word(100), owner=OTHER)])
    assert isinstance(not_ours, str) and "another owner" in not_ours


def test_production_vector_exact() -> None:
    two = bytes.fromhex("ffffffee00000000000000000000000000000000000000001bc16d674ec80000")
    usdc = bytes.fromhex("ffffffe500000000000000000000000000000002057d2cd516a29b6174400000")
    tokens = {USDC: TokenInfo("USDC", 6), AAPL: TokenInfo("tSPLG", 18)}
    [fill] = fills([take_log(0, 1, two, usdc)], tokens)
    assert isinstance(fill, Fill)
    assert (fill.symbol.ticker, fill.direction, fill.amount) == ("SPLG", Direction.SELL, 2)
    assert fill.price == Decimal("80.07753876")


def test_c1_alice_ours_and_c2_bob_ours() -> None:
    after = after_clear_log(9, 100, 100, 9, log_index=2, block=1)
    [c1] = fills([clear_log(OWNER, OTHER, log_index=1, block=1), after])
    assert isinstance(c1, Fill)
    assert (c1.direction, c1.amount, c1.trade_id.log_index) == (Direction.SELL, 9, 1)
    assert c1.price == Decimal("11.111111111111111111")
    [c2] = fills([clear_log(OTHER, OWNER, log_index=1, block=1), after])
    assert isinstance(c2, Fill)
    assert (c2.direction, c2.amount, c2.trade_id.log_index) == (Direction.BUY, 9, 1)
    [neither] = fills([clear_log(OTHER, OTHER, log_index=1, block=1), after])
    assert isinstance(neither, str) and "other owners" in neither


def test_both_sides_ours_give_two_distinct_fills() -> None:
    after = after_clear_log(9, 100, 100, 9, log_index=2, block=1)
    alice, bob = fills([clear_log(OWNER, OWNER, log_index=1, block=1), after])
    assert isinstance(alice, Fill) and isinstance(bob, Fill)
    assert (alice.direction, bob.direction) == (Direction.SELL, Direction.BUY)
    assert alice.trade_id.log_index == 1 and bob.trade_id.log_index == 2


def test_after_clear_pairing_minimum_later_index() -> None:
    clear = clear_log(OWNER, OTHER, log_index=5)
    first = after_clear_log(9, 100, 100, 9, log_index=6)
    second = after_clear_log(5, 50, 50, 5, log_index=7)
    # the node returning them out of order does not change the partner
    [fill, orphan] = fills([clear, second, first])
    assert isinstance(fill, Fill) and fill.amount == 9
    assert isinstance(orphan, str) and "without a ClearV3" in orphan
    other_tx = after_clear_log(1, 10, 10, 1, log_index=4, tx="0x" + "01" * 32)
    same_tx = after_clear_log(9, 100, 100, 9, log_index=5)
    got = fills([clear_log(OWNER, OTHER, log_index=3), other_tx, same_tx])
    assert [f.amount for f in got if isinstance(f, Fill)] == [9]
    [missing] = fills(
        [clear_log(OWNER, OTHER, log_index=5), after_clear_log(9, 100, 100, 9, log_index=5)]
    )[:1]
    assert isinstance(missing, str) and "without an AfterClearV2" in missing


@pytest.mark.parametrize(
    ("symbol", "base"),
    [
        ("tAAPL", "AAPL"),
        ("tGME", "GME"),
        ("AAPL0x", "AAPL"),
        ("TSLA0x", "TSLA"),
        ("NVDAs1", "NVDA"),
        ("BRKs1", "BRK"),
        ("wtCOIN", "COIN"),
        ("t", None),
        ("0x", None),
        ("s1", None),
        ("USDC", None),
        ("AAPL", None),
        ("", None),
        ("tether", None),
    ],
)
def test_symbol_rules(symbol: str, base: str | None) -> None:
    assert equity_base(symbol) == base


@pytest.mark.parametrize(
    ("input_symbol", "output_symbol", "expected"),
    [
        ("USDC", "AAPL0x", (Direction.SELL, "AAPL")),
        ("AAPL0x", "USDC", (Direction.BUY, "AAPL")),
        ("USDC", "tGME", (Direction.SELL, "GME")),
        ("tGME", "USDC", (Direction.BUY, "GME")),
        ("BTC", "ETH", None),
        ("USDC", "USDC", None),
        ("AAPL0x", "TSLA0x", None),
        ("", "", None),
    ],
)
def test_pair_rules(
    input_symbol: str, output_symbol: str, expected: tuple[Direction, str] | None
) -> None:
    a, b = "0x" + "01" * 20, "0x" + "02" * 20
    side = OrderSide(
        TradeId(TX, 1), take_log(0, 1, word(1), word(1)), "take", a, b, Decimal(2), Decimal(3)
    )
    result = side_to_fill(
        side, {a: TokenInfo(input_symbol, 6), b: TokenInfo(output_symbol, 18)}, NOW
    )
    if expected is None:
        assert isinstance(result, str) and "not one tokenized equity and USDC" in result
    else:
        assert isinstance(result, Fill)
        assert (result.direction, result.symbol.ticker) == expected


def test_amount_is_the_equity_side() -> None:
    a, b = "0x" + "01" * 20, "0x" + "02" * 20
    side = OrderSide(
        TradeId(TX, 1),
        take_log(0, 1, word(1), word(1)),
        "take",
        a,
        b,
        Decimal("64.169234"),
        Decimal("0.374"),
    )
    fill = side_to_fill(side, {a: TokenInfo("USDC", 6), b: TokenInfo("NVDAs1", 18)}, NOW)
    assert isinstance(fill, Fill)
    assert (fill.direction, fill.amount) == (Direction.SELL, Decimal("0.374"))


def test_usdc_address_pinned() -> None:
    side = OrderSide(
        TradeId(TX, 1),
        take_log(0, 1, word(1), word(1)),
        "take",
        USDC,
        AAPL,
        Decimal(10),
        Decimal(1),
    )
    assert isinstance(side_to_fill(side, TOKENS, NOW, usdc_address=USDC), Fill)
    refused = side_to_fill(side, TOKENS, NOW, usdc_address="0x" + "99" * 20)
    assert isinstance(refused, str)


def test_zero_price_is_skipped_not_silent() -> None:
    [zero_usdc] = fills([take_log(0, 1, word(9), word(0))])
    assert isinstance(zero_usdc, str) and "USDC amount 0" in zero_usdc


def test_wrong_address_topic_and_extra_topics() -> None:
    log = take_log(0, 1, word(9), word(100))
    with pytest.raises(LogDecodeError, match="not of the orderbook"):
        decode_event(log, "0x" + "00" * 20)
    with pytest.raises(LogDecodeError, match="not a fill event"):
        decode_event(
            RawLog(log.address, (b"\x01" * 32,), log.data, 1, log.block_hash, TX, 0), ORDERBOOK
        )
    with pytest.raises(LogDecodeError, match="no indexed"):
        decode_event(
            RawLog(log.address, (*log.topics, b"\x00" * 32), log.data, 1, log.block_hash, TX, 0),
            ORDERBOOK,
        )
    with pytest.raises(LogDecodeError, match="does not decode"):
        decode_event(
            RawLog(log.address, log.topics, log.data[:100], 1, log.block_hash, TX, 0), ORDERBOOK
        )


def test_decoded_types() -> None:
    clear = decode_event(clear_log(OWNER, OTHER, log_index=1), ORDERBOOK)
    assert isinstance(clear, Clear)
    assert (clear.alice_input_index, clear.alice_output_index) == (0, 1)
    after = decode_event(after_clear_log(9, 100, 100, 9, log_index=2), ORDERBOOK)
    assert isinstance(after, AfterClear)
    assert (after.alice_output, after.bob_output, after.alice_input, after.bob_input) == (
        9,
        100,
        100,
        9,
    )


def test_raw_log_from_rpc() -> None:
    log = take_log(0, 1, word(9), word(100))
    obj = {
        "address": log.address.upper().replace("0X", "0x"),
        "topics": ["0x" + t.hex() for t in log.topics],
        "data": "0x" + log.data.hex(),
        "blockNumber": hex(log.block_number),
        "blockHash": log.block_hash,
        "transactionHash": log.tx_hash,
        "logIndex": hex(log.log_index),
        "removed": False,
        "blockTimestamp": "0x6553f100",
    }
    parsed = RawLog.from_rpc(obj)
    assert parsed.address == log.address and parsed.data == log.data
    assert parsed.block_timestamp == 1700000000
    for key in ("address", "data", "blockNumber"):
        broken = dict(obj)
        del broken[key]
        with pytest.raises(LogDecodeError):
            RawLog.from_rpc(broken)
    with pytest.raises(LogDecodeError):
        RawLog.from_rpc({**obj, "data": "0xzz"})


def test_pairing_looks_only_at_the_clears_own_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfill range can hold thousands of clears: each one's AfterClearV2 is searched
    among its own transaction's logs, not the whole batch (which was quadratic: 8,000
    clears in one range took 47 s). Counted, not timed."""
    from st0x_liquidity.raindex import decode

    looked_at = 0
    original = decode.pair_after_clear

    def counting(clear: Clear, candidates: Any) -> AfterClear | None:
        nonlocal looked_at
        candidates = list(candidates)
        looked_at += len(candidates)
        return original(clear, candidates)

    monkeypatch.setattr(decode, "pair_after_clear", counting)
    logs = []
    for i in range(300):
        tx = f"0x{i + 1:064x}"
        logs.append(
            clear_log(OWNER if i % 2 else OTHER, OTHER if i % 2 else OWNER, log_index=1, tx=tx)
        )
        logs.append(after_clear_log(9, 100, 100, 9, log_index=4, tx=tx))
    got = fills(logs)
    assert len(got) == 300 and all(isinstance(f, Fill) for f in got)
    assert {f.trade_id.tx_hash for f in got if isinstance(f, Fill)} == {
        f"0x{i + 1:064x}" for i in range(300)
    }
    assert looked_at == 300  # one candidate per clear
