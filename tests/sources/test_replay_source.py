"""The replay fill source: bad lines are skipped with a reason, never fatal; cursors resume.

Two levels: the source alone (what it yields for what bytes), and the source
inside the real app over a real SQLite file (what is recorded, what a restart
reads again). The line format is documented in ``docs/replay-format.md``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fills import line, tx, write_lines
from support.harness import make_config

from st0x_liquidity.app import run_app
from st0x_liquidity.builtin.replay import ReplayConfig, ReplaySource
from st0x_liquidity.domain.fills import Direction, TradeId
from st0x_liquidity.errors import ConfigError
from st0x_liquidity.plugins import load_registry
from st0x_liquidity.protocols import FillItem, SkippedItem, SourceItem

FIELDS = ("tx_hash", "log_index", "symbol", "direction", "amount", "price", "block_number",
          "block_timestamp")


def source(path: Path, **options: Any) -> ReplaySource:
    return ReplaySource(ReplayConfig(path=path, **options), path)


def collect(src: ReplaySource, cursor: dict[str, Any] | None = None) -> list[SourceItem]:
    async def go() -> list[SourceItem]:
        return [item async for item in src.stream(cursor)]

    return asyncio.run(go())


def fills_of(items: list[SourceItem]) -> list[FillItem]:
    return [i for i in items if isinstance(i, FillItem)]


def skips_of(items: list[SourceItem]) -> list[SkippedItem]:
    return [i for i in items if isinstance(i, SkippedItem)]


def raw_line(**changes: Any) -> str:
    row = line(1, "tAAPL", "BUY", "1.5", "187.5")
    for key, value in changes.items():
        if value is _DROP:
            del row[key]
        else:
            row[key] = value
    return json.dumps(row)


_DROP = object()


# -- one bad line among good ones -------------------------------------------------------


BAD_LINES: list[tuple[str, str]] = [
    ("{not json", "not valid JSON"),
    ('{"tx_hash": "0x', "not valid JSON"),
    ("[1, 2, 3]", "not a JSON object"),
    ('"just text"', "not a JSON object"),
    ("null", "not a JSON object"),
    *[(raw_line(**{f: _DROP}), f"missing field {f!r}") for f in FIELDS],
    (raw_line(tx_hash="0x12"), "tx_hash must be 0x followed by 64 hex digits"),
    (raw_line(tx_hash="0x" + "g" * 64), "tx_hash must be 0x followed by 64 hex digits"),
    (raw_line(tx_hash=12), "tx_hash must be text"),
    (raw_line(amount="-1"), "amount must be a positive decimal"),
    (raw_line(amount="0"), "amount must be a positive decimal"),
    (raw_line(amount="-0.000001"), "amount must be a positive decimal"),
    (raw_line(price="0"), "price must be a positive decimal"),
    (raw_line(price="-187.5"), "price must be a positive decimal"),
    (raw_line(amount="lots"), "amount is not a decimal number"),
    # Beyond exact 80-digit arithmetic: these used to stop the engine on every start.
    (raw_line(amount="1e999999"), "amount must be below 1e18, got 1E+999999"),
    (raw_line(price="1000000000000000000"), "price must be below 1e18"),
    (raw_line(amount="0.1234567890123456789"), "amount has more than 18 decimal places"),
    (raw_line(price="1E-19"), "price has more than 18 decimal places"),
    (raw_line(amount="NaN"), "amount must be finite"),
    (raw_line(amount="Infinity"), "amount must be finite"),
    (raw_line(amount=True), "amount must be a decimal number, got a boolean"),
    (raw_line(amount=None), "amount must be a decimal number"),
    (raw_line(symbol="aapl"), "not an equity symbol: 'aapl'"),
    (raw_line(symbol=""), "not an equity symbol"),
    (raw_line(symbol="USD C"), "not an equity symbol"),
    (raw_line(symbol=7), "symbol must be text"),
    (raw_line(direction="HOLD"), "direction must be BUY or SELL"),
    (raw_line(direction=1), "direction must be BUY or SELL"),
    (raw_line(log_index="3"), "log_index must be an integer"),
    (raw_line(log_index=-1), "log_index must be a non-negative integer"),
    (raw_line(log_index=1.5), "log_index must be an integer"),
    (raw_line(block_number=True), "block_number must be an integer"),
    (raw_line(block_timestamp="yesterday"), "block_timestamp is not ISO 8601"),
    (raw_line(block_timestamp=10**30), "block_timestamp out of range"),
    (raw_line(block_timestamp=[1]), "block_timestamp must be ISO 8601 text or unix seconds"),
    # An integer too long for Python's int parser must not escape as a ValueError.
    ('{"log_index": ' + "9" * 5000 + "}", "not valid JSON"),
    ("[" * 100_000, "not valid JSON"),
    ('{"amount": NaN}', "missing field"),
    (raw_line().replace('"1.5"', "NaN"), "amount must be given as a string or integer, not a float"),
    (raw_line().replace('"187.5"', "-Infinity"), "price must be given as a string or integer"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_a_bad_line_is_skipped_with_its_reason_and_the_rest_is_read(
    tmp_path: Path, bad: str, reason: str
) -> None:
    path = tmp_path / "fills.jsonl"
    write_lines(path, [line(1, "tAAPL", "BUY", "1"), bad, line(2, "tTSLA", "SELL", "2")])
    items = collect(source(path))
    assert [str(i.fill.trade_id) for i in fills_of(items)] == [f"{tx(1)}:0", f"{tx(2)}:0"]
    [skipped] = skips_of(items)
    assert reason in skipped.reason
    assert skipped.reason.startswith("line 2: ")
    assert skipped.raw == bad.strip()[:500]
    assert skipped.cursor["line"] == 2
    # The cursor moves past the bad line, so a restart never meets it again.
    assert skipped.cursor["offset"] == len(path.read_bytes().split(b"\n", 2)[0]) + len(bad) + 2


def test_float_looking_amounts_parse_exactly_as_decimal(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    numbers = ["0.1", "0.3", "187.53", "1.000000000000000001", "1e-7", "2.50", "12"]
    rows = []
    for n, text in enumerate(numbers, start=1):
        # Unquoted JSON numbers: the source must not go through float.
        rows.append(raw_line(tx_hash=tx(n)).replace('"1.5"', text).replace('"187.5"', text))
    write_lines(path, rows)
    items = fills_of(collect(source(path)))
    assert [i.fill.amount for i in items] == [Decimal(t) for t in numbers]
    assert [i.fill.price for i in items] == [Decimal(t) for t in numbers]
    assert str(items[0].fill.amount) == "0.1"
    assert items[0].fill.amount + items[0].fill.amount + items[0].fill.amount == Decimal("0.3")


def test_accepted_spellings(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    write_lines(
        path,
        [
            raw_line(tx_hash="0x" + "AB" * 32, direction="sell", symbol="AAPL"),
            raw_line(tx_hash=tx(2), symbol="tTSLA", block_timestamp=1767368000),
            raw_line(tx_hash=tx(3), symbol="NVDA0x", block_timestamp="2026-01-02T10:00:00-05:00"),
            raw_line(tx_hash=tx(4), block_timestamp="2026-01-02T15:00:00"),
            "  " + raw_line(tx_hash=tx(5), extra_field="ignored") + "  \r",
        ],
    )
    fills = [i.fill for i in fills_of(collect(source(path)))]
    assert len(fills) == 5
    assert fills[0].trade_id == TradeId("0x" + "ab" * 32, 0)
    assert fills[0].direction is Direction.SELL
    assert [f.symbol.ticker for f in fills] == ["AAPL", "TSLA", "NVDA", "AAPL", "AAPL"]
    assert fills[2].block_timestamp == fills[3].block_timestamp  # both 15:00 UTC
    assert all(f.block_timestamp.tzinfo is not None for f in fills)


def test_blank_and_comment_lines_yield_nothing(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    write_lines(path, ["", "# a comment", "   ", line(1, "tAAPL", "BUY", "1"), "\t# indented", ""])
    items = collect(source(path))
    assert len(items) == 1
    assert isinstance(items[0], FillItem)
    assert items[0].cursor == {"offset": len(b"\n# a comment\n   \n") + len(json.dumps(line(1, "tAAPL", "BUY", "1"))) + 1, "line": 4}


def test_invalid_utf8_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    good = json.dumps(line(1, "tAAPL", "BUY", "1")).encode()
    path.write_bytes(b"\xff\xfe\x00bad\n" + good + b"\n" + b'{"symbol": "\xc3("}\n')
    items = collect(source(path))
    assert len(fills_of(items)) == 1
    reasons = [s.reason for s in skips_of(items)]
    assert reasons == ["line 1: not UTF-8 text", "line 3: not UTF-8 text"]
    assert "\\xff" in skips_of(items)[0].raw


def test_symbol_allow_list(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    write_lines(path, [line(1, "tAAPL", "BUY", "1"), line(2, "tGME", "BUY", "1")])
    items = collect(source(path, symbols=["tAAPL", "TSLA"]))
    assert [i.fill.symbol.ticker for i in fills_of(items)] == ["AAPL"]
    [skipped] = skips_of(items)
    assert skipped.reason == "line 2: unknown symbol 'GME'"


def test_last_line_without_newline_is_read_when_not_following(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    path.write_text(json.dumps(line(1, "tAAPL", "BUY", "1")))
    items = collect(source(path))
    assert len(fills_of(items)) == 1
    assert items[0].cursor["offset"] == path.stat().st_size


def test_missing_file_is_an_error_unless_following(tmp_path: Path) -> None:
    # A config error naming the key (one line, exit status 2), not a traceback.
    with pytest.raises(ConfigError, match=r"^source.path: replay file not found: .*nope.jsonl$"):
        collect(source(tmp_path / "nope.jsonl"))


# -- cursors -----------------------------------------------------------------------------


def test_stream_from_a_cursor_yields_only_later_lines(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    write_lines(path, [line(n, "tAAPL", "BUY", "1") for n in range(1, 6)])
    items = collect(source(path))
    for k, item in enumerate(items):
        rest = collect(source(path), dict(item.cursor))
        assert [i.fill.trade_id for i in fills_of(rest)] == [
            i.fill.trade_id for i in fills_of(items[k + 1 :])
        ]
        assert [i.cursor for i in rest] == [i.cursor for i in items[k + 1 :]]


def test_cursor_past_the_end_rereads_from_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fills.jsonl"
    write_lines(path, [line(1, "tAAPL", "BUY", "1")])
    with caplog.at_level(logging.WARNING):
        items = collect(source(path), {"offset": 10_000, "line": 99})
    assert len(fills_of(items)) == 1
    assert items[0].cursor["line"] == 1
    assert "shorter than the saved cursor" in caplog.text


# -- through the real app and store -------------------------------------------------------


def run(tmp: Path, **source_options: Any) -> None:
    config = make_config(
        tmp, source={"path": str(tmp / "fills.jsonl"), **source_options},
        broker={"type": "dry-run", "profile": "whole"},
    )
    asyncio.run(asyncio.wait_for(run_app(config, load_registry()), 60))


def db_rows(tmp: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp / "st0x.db") as db:
        return [tuple(r) for r in db.execute(sql)]


def trades(tmp: Path) -> list[tuple[Any, ...]]:
    return db_rows(tmp, "SELECT tx_hash, log_index, amount FROM onchain_trades ORDER BY tx_hash, log_index")


def saved_cursor(tmp: Path) -> dict[str, Any]:
    [(text,)] = db_rows(tmp, "SELECT cursor FROM source_cursors WHERE source = 'replay'")
    value: dict[str, Any] = json.loads(text)
    return value


def test_bad_lines_are_recorded_and_logged_while_the_rest_is_processed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fills.jsonl"
    write_lines(
        path,
        [
            line(1, "tAAPL", "BUY", "0.6"),
            "{not json",
            raw_line(tx_hash=tx(2), amount="-1"),
            "# comment",
            line(3, "tAAPL", "BUY", "0.6"),
            raw_line(tx_hash=tx(4), symbol="aapl"),
            line(5, "tTSLA", "SELL", "2"),
        ],
    )
    with path.open("ab") as fh:
        fh.write(b"\xff\n")
    with caplog.at_level(logging.INFO):
        run(tmp_path)
    assert [t[0] for t in trades(tmp_path)] == [tx(1), tx(3), tx(5)]
    skipped = db_rows(tmp_path, "SELECT reason, raw FROM skipped_inputs ORDER BY sequence")
    assert [r[0] for r in skipped] == [
        "line 2: not valid JSON",
        "line 3: amount must be a positive decimal, got Decimal('-1')",
        "line 6: not an equity symbol: 'aapl'",
        "line 8: not UTF-8 text",
    ]
    assert skipped[0][1] == "{not json"
    for reason, _raw in skipped:
        assert f"skipped input from replay: {reason}" in caplog.text
    # The bad lines stopped nothing: both symbols were hedged.
    hedged = db_rows(tmp_path, "SELECT symbol, side, quantity, state FROM hedge_orders ORDER BY symbol")
    assert hedged == [("AAPL", "SELL", "1", "filled"), ("TSLA", "BUY", "2", "filled")]
    assert saved_cursor(tmp_path)["offset"] == path.stat().st_size


def test_restart_resumes_at_the_cursor_without_reingesting(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    write_lines(path, [line(n, "tAAPL", "BUY", "0.25") for n in range(1, 4)] + ["{bad"])
    run(tmp_path)
    first = saved_cursor(tmp_path)
    assert first == {"offset": path.stat().st_size, "line": 4}
    write_lines(path, [line(n, "tTSLA", "SELL", "0.5") for n in range(4, 7)] + ["{bad again"])
    run(tmp_path)
    assert [t[0] for t in trades(tmp_path)] == [tx(n) for n in range(1, 7)]
    # Had the source re-read from the start, the first bad line would be recorded twice.
    assert [r[0] for r in db_rows(tmp_path, "SELECT reason FROM skipped_inputs")] == [
        "line 4: not valid JSON",
        "line 8: not valid JSON",
    ]
    assert saved_cursor(tmp_path) == {"offset": path.stat().st_size, "line": 8}
    fills_recorded = db_rows(
        tmp_path, "SELECT COUNT(*) FROM events WHERE event_type = 'FillRecorded'"
    )
    assert fills_recorded == [(6,)]


def test_file_shorter_than_its_cursor_is_reread_without_doubles(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fills.jsonl"
    rows = [line(n, "tAAPL", "BUY", "0.25") for n in range(1, 9)]
    write_lines(path, rows)
    run(tmp_path)
    assert len(trades(tmp_path)) == 8
    # The file is replaced by a shorter one: two old lines and one new.
    path.unlink()
    write_lines(path, [rows[0], rows[1], line(9, "tAAPL", "BUY", "0.25")])
    assert path.stat().st_size < saved_cursor(tmp_path)["offset"]
    with caplog.at_level(logging.WARNING):
        run(tmp_path)
    assert "shorter than the saved cursor" in caplog.text
    assert [t[0] for t in trades(tmp_path)] == [tx(n) for n in range(1, 10)]
    assert saved_cursor(tmp_path) == {"offset": path.stat().st_size, "line": 3}
    [(net,)] = db_rows(tmp_path, "SELECT net FROM positions WHERE symbol = 'AAPL'")
    [(hedged,)] = db_rows(
        tmp_path, "SELECT SUM(CAST(filled_quantity AS INTEGER)) FROM hedge_orders"
    )
    assert Decimal(net) + hedged == Decimal("2.25")


# -- following a growing file ------------------------------------------------------------


async def _next(it: AsyncIterator[SourceItem], timeout: float = 5.0) -> SourceItem:
    return await asyncio.wait_for(anext(it), timeout)


async def test_follow_picks_up_appended_lines_and_waits_for_a_whole_last_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fills.jsonl"
    src = source(path, follow=True, poll_interval=0.01)
    it = aiter(src.stream(None))
    pending = asyncio.ensure_future(_next(it))
    await asyncio.sleep(0.05)
    assert not pending.done()  # no file yet: following waits for it
    write_lines(path, [line(1, "tAAPL", "BUY", "1")])
    first = await pending
    assert isinstance(first, FillItem) and first.fill.trade_id.tx_hash == tx(1)

    text = json.dumps(line(2, "tTSLA", "SELL", "2.5")) + "\n"
    cut = len(text) // 2
    with path.open("a") as fh:
        fh.write(text[:cut])
    pending = asyncio.ensure_future(_next(it))
    await asyncio.sleep(0.1)
    assert not pending.done()  # half a line is not read (nor skipped as bad JSON)
    with path.open("a") as fh:
        fh.write(text[cut:])
    second = await pending
    assert isinstance(second, FillItem)
    assert second.fill.amount == Decimal("2.5")
    assert second.cursor == {"offset": path.stat().st_size, "line": 2}

    write_lines(path, ["{bad", line(3, "tAAPL", "SELL", "1")])
    third, fourth = await _next(it), await _next(it)
    assert isinstance(third, SkippedItem) and third.reason == "line 3: not valid JSON"
    assert isinstance(fourth, FillItem) and fourth.cursor["line"] == 4
    await it.aclose()  # type: ignore[attr-defined]


async def test_follow_resumes_from_a_cursor(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    write_lines(path, [line(n, "tAAPL", "BUY", "1") for n in (1, 2)])
    first = await _next(aiter(source(path).stream(None)))
    src = source(path, follow=True, poll_interval=0.01)
    it = aiter(src.stream(dict(first.cursor)))
    item = await _next(it)
    assert isinstance(item, FillItem) and item.fill.trade_id.tx_hash == tx(2)
    write_lines(path, [line(3, "tAAPL", "BUY", "1")])
    item = await _next(it)
    assert isinstance(item, FillItem) and item.fill.trade_id.tx_hash == tx(3)
    await it.aclose()  # type: ignore[attr-defined]


async def test_caught_up_only_at_end_of_file(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    write_lines(path, [line(n, "tAAPL", "BUY", "1") for n in (1, 2)])
    src = source(path, follow=True, poll_interval=0.01)
    assert src.caught_up is False
    it = aiter(src.stream(None))
    await _next(it)
    assert src.caught_up is False  # line 2 is still unread
    await _next(it)
    pending = asyncio.ensure_future(_next(it))
    await asyncio.sleep(0.05)
    assert src.caught_up is True  # every line handed over; following waits for more
    write_lines(path, [line(3, "tAAPL", "BUY", "1")])
    item = await pending
    assert isinstance(item, FillItem) and item.fill.trade_id.tx_hash == tx(3)
    await it.aclose()  # type: ignore[attr-defined]
    once = source(path)
    assert len([item async for item in once.stream(None)]) == 3 and once.caught_up is True


# -- nothing raises out of the source -----------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_fieldish = st.dictionaries(
    st.sampled_from([*FIELDS, "x"]),
    _json_values | st.sampled_from(["tAAPL", "BUY", "SELL", "1.5", tx(1), "2026-01-02T15:00:00Z"]),
    max_size=9,
)
_lines = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    _fieldish.map(lambda d: json.dumps(d, allow_nan=True).encode()),
    st.builds(
        lambda base, key, value: json.dumps({**base, key: value}).encode(),
        st.just(line(1, "tAAPL", "BUY", "1")),
        st.sampled_from(FIELDS),
        _json_values,
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(_lines, max_size=12), newline_at_end=st.booleans())
def test_random_input_never_raises_out_of_the_source(
    tmp_path: Path, chunks: list[bytes], newline_at_end: bool
) -> None:
    path = tmp_path / "random.jsonl"
    data = b"\n".join(chunks) + (b"\n" if newline_at_end else b"")
    path.write_bytes(data)
    items = collect(source(path))
    offsets = [i.cursor["offset"] for i in items]
    assert offsets == sorted(offsets)
    assert all(0 < o <= len(data) for o in offsets)
    for item in items:
        assert isinstance(item, FillItem | SkippedItem)
        if isinstance(item, SkippedItem):
            assert item.reason and len(item.raw) <= 500 + 10
            item.reason.encode("utf-8")  # storable as SQLite text
    # Resuming from any cursor yields exactly the rest.
    if items:
        rest = collect(source(path), dict(items[len(items) // 2].cursor))
        assert [i.cursor for i in rest] == [i.cursor for i in items[len(items) // 2 + 1 :]]


async def test_follow_rereads_a_file_that_shrinks_while_followed(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    write_lines(path, [line(n, "tAAPL", "BUY", "1") for n in (1, 2, 3)])
    src = source(path, follow=True, poll_interval=0.01)
    it = aiter(src.stream(None))
    for n in (1, 2, 3):
        item = await _next(it)
        assert isinstance(item, FillItem) and item.fill.trade_id.tx_hash == tx(n)
    path.write_text(json.dumps(line(4, "tAAPL", "BUY", "1")) + "\n")  # rotated: shorter now
    item = await _next(it)
    assert isinstance(item, FillItem) and item.fill.trade_id.tx_hash == tx(4)
    assert item.cursor == {"offset": path.stat().st_size, "line": 1}
    await it.aclose()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_cli_follows_a_growing_file_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        """
database_url = "st0x.db"
log_level = "info"
[source]
type = "replay"
path = "fills.jsonl"
follow = true
poll_interval = 0.05
[broker]
type = "dry-run"
profile = "whole"
[hedging]
poll_interval = 0.02
poll_jitter = 0.0
"""
    )
    path = tmp_path / "fills.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "st0x_liquidity", "run", "--config-file", str(config)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        def fills_in_db() -> int:
            try:
                return len(trades(tmp_path))
            except sqlite3.Error:
                return 0

        def wait_for(count: int) -> None:
            deadline = time.monotonic() + 30
            while fills_in_db() < count:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, f"only {fills_in_db()} of {count} fills"
                time.sleep(0.05)

        time.sleep(0.5)  # the file does not exist yet: following waits for it
        write_lines(path, [line(1, "tAAPL", "BUY", "0.5"), line(2, "tAAPL", "BUY", "0.7")])
        wait_for(2)
        text = json.dumps(line(3, "tTSLA", "SELL", "3")) + "\n"
        with path.open("a") as fh:
            fh.write(text[:40])
        time.sleep(0.5)  # the half line must not be read, nor skipped as bad JSON
        assert fills_in_db() == 2
        with path.open("a") as fh:
            fh.write(text[40:])
        write_lines(path, ["{bad", line(4, "tAAPL", "SELL", "0.2")])
        wait_for(4)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert [t[0] for t in trades(tmp_path)] == [tx(n) for n in (1, 2, 3, 4)]
    assert [r[0] for r in db_rows(tmp_path, "SELECT reason FROM skipped_inputs")] == [
        "line 4: not valid JSON"
    ]
    hedges = db_rows(tmp_path, "SELECT symbol, side, quantity, state FROM hedge_orders ORDER BY symbol")
    assert hedges == [("AAPL", "SELL", "1", "filled"), ("TSLA", "BUY", "3", "filled")]
    assert saved_cursor(tmp_path) == {"offset": path.stat().st_size, "line": 5}


def test_deeply_nested_json_is_skipped_not_a_crash_with_the_raised_recursion_limit(
    tmp_path: Path,
) -> None:
    """The running bot imports web3, whose py_ecc raises the recursion limit to 100000;
    json's C parser then overflows the C stack on ``[[[…`` (a segfault) before it
    raises. Run where a regression can only fail this test, not kill the session."""
    path = tmp_path / "fills.jsonl"
    good = json.dumps(line(1, "tAAPL", "BUY", "1"))
    nested_in_text = json.dumps({**line(2, "tAAPL", "BUY", "1"), "note": "[" * 1000})
    path.write_text("\n".join(["[" * 200_000, '{"a": ' * 100_000, good, nested_in_text]) + "\n")
    code = (
        "import asyncio, sys\n"
        "sys.setrecursionlimit(100_000)\n"
        "from pathlib import Path\n"
        "from st0x_liquidity.builtin.replay import ReplayConfig, ReplaySource\n"
        f"p = Path({str(path)!r})\n"
        "async def main():\n"
        "    async for item in ReplaySource(ReplayConfig(path=p), p).stream(None):\n"
        "        print(type(item).__name__, getattr(item, 'reason', ''))\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "SkippedItem line 1: not valid JSON (nested deeper than 32)",
        "SkippedItem line 2: not valid JSON (nested deeper than 32)",
        "FillItem ",
        "FillItem ",
    ]


# -- configuration of the source ------------------------------------------------------------


def _parse(source_table: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    from st0x_liquidity.config import parse_config

    raw = {"database_url": "x.db", "source": source_table, "broker": {"type": "dry-run"}}
    return parse_config(raw, load_registry(), env=env or {})


def test_a_bad_symbol_in_the_allow_list_is_a_config_error_naming_the_key() -> None:
    from st0x_liquidity.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        _parse({"type": "replay", "path": "f.jsonl", "symbols": ["AAPL", "aapl"]})
    assert str(info.value) == "source.symbols: must be tickers like AAPL or tAAPL, got 'aapl'"


def test_list_keys_from_the_environment_are_comma_separated() -> None:
    config = _parse(
        {"type": "replay", "path": "f.jsonl"},
        {"ST0X_SOURCE_SYMBOLS": "AAPL, tTSLA,,", "ST0X_SOURCE_FOLLOW": "true"},
    )
    assert config.source.symbols == ["AAPL", "tTSLA"]
    assert config.source.follow is True


def test_garbage_through_the_app_is_recorded_and_never_stops_it(tmp_path: Path) -> None:
    import random

    rng = random.Random(5)
    path = tmp_path / "fills.jsonl"
    good: list[str] = []
    expected_skips = 0
    with path.open("wb") as fh:
        for n in range(1, 301):
            kind = rng.randrange(6)
            if kind == 0:
                row = line(n, rng.choice(["tAAPL", "TSLA", "NVDA0x"]), rng.choice(["BUY", "SELL"]),
                           str(Decimal(rng.randint(1, 999)) / 100))
                good.append(tx(n))
                fh.write(json.dumps(row).encode() + b"\n")
                continue
            if kind == 1:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
                data = data.replace(b"\n", b"")
            elif kind == 2:
                data = json.dumps({**line(n, "tAAPL", "BUY", "1"), "amount": rng.choice(
                    [None, -1, "0", [], {}, "1e999999", "x", True]
                )}).encode()
            elif kind == 3:
                data = b'{"symbol": "\\ud800", "tx_hash": "\\u0000"}' + b"\x00"
            elif kind == 4:
                data = ("[" * rng.randrange(30, 3000)).encode()
            else:
                data = json.dumps(line(n, "tAAPL", "BUY", "1"))[: rng.randrange(1, 60)].encode()
            stripped = data.strip()
            try:
                text = stripped.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is None or (text.strip() and not text.strip().startswith("#")):
                expected_skips += 1
            fh.write(data + b"\n")
    run(tmp_path)
    assert sorted(t[0] for t in trades(tmp_path)) == sorted(good)
    [(skipped,)] = db_rows(tmp_path, "SELECT COUNT(*) FROM skipped_inputs")
    assert skipped == expected_skips
    assert saved_cursor(tmp_path)["offset"] == path.stat().st_size
    # Nothing in the store is unreadable: the views rebuild from the events.
    from st0x_liquidity.store.sqlite import SqliteStore

    async def rebuild() -> int:
        store = SqliteStore(tmp_path / "st0x.db")
        await store.open()
        try:
            return await store.rebuild_views()
        finally:
            await store.close()

    assert asyncio.run(rebuild()) > 0
    assert sorted(t[0] for t in trades(tmp_path)) == sorted(good)


def test_the_largest_and_finest_accepted_values_run_through_the_engine(tmp_path: Path) -> None:
    big = "999999999999999999.999999999999999999"
    fine = "0.000000000000000001"
    write_lines(
        tmp_path / "fills.jsonl",
        [
            line(1, "tAAPL", "BUY", big, big),
            line(2, "tAAPL", "BUY", big, fine),
            line(3, "tAAPL", "SELL", fine, big),
            line(4, "tTSLA", "SELL", fine, fine),
            line(5, "tAAPL", "BUY", big, "187.123456789012345678"),
        ],
    )
    run(tmp_path)
    assert len(trades(tmp_path)) == 5
    assert db_rows(tmp_path, "SELECT COUNT(*) FROM skipped_inputs") == [(0,)]
    # Exact to the last of 36 digits: the books hold every share.
    [(net,)] = db_rows(tmp_path, "SELECT net FROM positions WHERE symbol = 'AAPL'")
    assert net == "2999999999999999999.999999999999999996"  # 3 x big - fine, not rounded
    # A hedge of ~3e18 shares is beyond every risk limit ([risk] defaults): it is
    # blocked, not placed, and nothing half-placed is left behind.
    assert db_rows(tmp_path, "SELECT state FROM hedge_orders WHERE symbol = 'AAPL'") == []
