"""The ``replay`` fill source: fills from a JSON-lines file, one fill per line.

Line format (see ``docs/replay-format.md``)::

    {"tx_hash": "0x…64 hex…", "log_index": 3, "symbol": "tAAPL", "direction": "BUY",
     "amount": "1.25", "price": "187.50", "block_number": 123,
     "block_timestamp": "2026-01-02T15:04:05Z"}

The cursor is the byte offset just past the last line handed out, so a restart
resumes exactly there. A line that cannot be a fill is skipped with its reason;
it never stops the lines after it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from ..config import resolve_path
from ..domain.fills import Direction, Fill, InvalidFillError, TradeId
from ..domain.numbers import WIDE, NotADecimalError, to_decimal
from ..domain.symbols import InvalidSymbolError, Symbol
from ..errors import ConfigError
from ..hookspecs import hookimpl
from ..protocols import Cursor, FillItem, SkippedItem, SourceItem
from ..registry import ExecutorContext, FillSourceType
from ..validators import at_most, non_negative

log = logging.getLogger(__name__)

MAX_RAW = 500


def _tickers(_i: object, _attr: object, value: list[str] | None) -> None:
    for text in value or ():
        try:
            Symbol.parse(text)
        except InvalidSymbolError:
            raise ValueError(f"symbols must be tickers like AAPL or tAAPL, got {text!r}") from None


@attrs.frozen
class ReplayConfig:
    path: Path
    follow: bool = False
    poll_interval: float = attrs.field(default=0.5, validator=[non_negative, at_most(3600)])
    symbols: list[str] | None = attrs.field(default=None, validator=_tickers)


class ReplayLineError(ValueError):
    pass


MAX_DEPTH = 32
"""Deepest JSON nesting parsed. json's C parser recurses on the C stack, and with
the raised recursion limit some dependencies set (py_ecc: 100000), a line of
``[[[[…`` crashes the process with a segmentation fault instead of raising."""


def _too_deep(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # every sane line: no scan
        return False
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_line(text: str, allowed: frozenset[str] | None = None) -> Fill:
    """Parse one JSON line into a Fill, or raise ReplayLineError with the reason."""
    if _too_deep(text):
        raise ReplayLineError(f"not valid JSON (nested deeper than {MAX_DEPTH})")
    try:
        data = json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError):
        # ValueError also covers integers longer than Python's int parsing limit.
        raise ReplayLineError("not valid JSON") from None
    if not isinstance(data, dict):
        raise ReplayLineError("line is not a JSON object")
    try:
        symbol = Symbol.parse(_field(data, "symbol"))
        if allowed is not None and symbol.ticker not in allowed:
            raise ReplayLineError(f"unknown symbol {symbol.ticker!r}")
        direction_text = _field(data, "direction")
        if not isinstance(direction_text, str) or direction_text.upper() not in ("BUY", "SELL"):
            raise ReplayLineError(f"direction must be BUY or SELL, got {direction_text!r}")
        return Fill(
            trade_id=TradeId(_field(data, "tx_hash"), _int(data, "log_index")),
            symbol=symbol,
            direction=Direction(direction_text.upper()),
            amount=_quantity(data, "amount"),
            price=_quantity(data, "price"),
            block_number=_int(data, "block_number"),
            block_timestamp=_timestamp(_field(data, "block_timestamp")),
        )
    except (InvalidFillError, InvalidSymbolError, NotADecimalError) as exc:
        raise ReplayLineError(str(exc)) from None


def _field(data: dict[str, Any], name: str) -> Any:
    if name not in data:
        raise ReplayLineError(f"missing field {name!r}")
    return data[name]


MAX_PLACES = 18
"""Most decimal places of an amount or price (a token's precision)."""
MAX_DIGITS = 18
"""Amounts and prices are below 10**18: with MAX_PLACES, sums and products stay
exact in the engine's 80-digit arithmetic, which raises rather than round (a line
of 1e999999 shares used to stop the engine, and again on every restart)."""


def _quantity(data: dict[str, Any], name: str) -> Decimal:
    value = to_decimal(_field(data, name), what=name)
    if value > 0:  # zero and negatives are refused by Fill with their own reason
        if value.adjusted() >= MAX_DIGITS:
            raise ReplayLineError(f"{name} must be below 1e{MAX_DIGITS}, got {value}")
        value = value.normalize(WIDE)
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -MAX_PLACES:
            raise ReplayLineError(f"{name} has more than {MAX_PLACES} decimal places: {value}")
    return value


def _int(data: dict[str, Any], name: str) -> int:
    value = _field(data, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReplayLineError(f"{name} must be an integer, got {value!r}")
    return value


def _timestamp(value: Any) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ReplayLineError(f"block_timestamp out of range: {value}") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ReplayLineError(f"block_timestamp is not ISO 8601: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ReplayLineError(f"block_timestamp must be ISO 8601 text or unix seconds, got {value!r}")


class ReplaySource:
    """Reads the file from the cursor's byte offset; optionally follows it as it grows."""

    name = "replay"

    def __init__(self, config: ReplayConfig, path: Path) -> None:
        self.config = config
        self.path = path
        self._allowed = (
            frozenset(Symbol.parse(s).ticker for s in config.symbols) if config.symbols else None
        )
        self._sleep: Callable[[float], Any] = asyncio.sleep
        self.caught_up = False
        """True once the stream has handed over every complete line up to end of file."""

    async def close(self) -> None:
        return None

    async def stream(self, cursor: Cursor | None) -> AsyncIterator[SourceItem]:
        offset = int(cursor.get("offset", 0)) if cursor else 0
        line_no = int(cursor.get("line", 0)) if cursor else 0
        self.caught_up = False
        while True:
            try:
                handle = self.path.open("rb")
            except FileNotFoundError:
                if not self.config.follow:  # removed since start: one line, not a traceback
                    raise ConfigError("source.path", f"replay file not found: {self.path}") from None
                await self._sleep(self.config.poll_interval)
                continue
            with handle:
                # Checked on every pass: a followed file may be truncated or replaced.
                size = os.fstat(handle.fileno()).st_size
                if offset > size:
                    log.warning(
                        "replay file %s is shorter than the saved cursor (%d > %d bytes); "
                        "reading it again from the start (duplicates are dropped by trade id)",
                        self.path,
                        offset,
                        size,
                    )
                    offset, line_no = 0, 0
                handle.seek(offset)
                count = 0
                while True:
                    raw = handle.readline()
                    if not raw:
                        break
                    if not raw.endswith(b"\n") and self.config.follow:
                        break  # a line still being written; read it whole next time
                    offset += len(raw)
                    line_no += 1
                    count += 1
                    if count % 256 == 0:
                        await asyncio.sleep(0)
                    item = self._item(raw, {"offset": offset, "line": line_no})
                    if item is not None:
                        yield item
                self.caught_up = True  # at end of file (a followed file may grow later)
            if not self.config.follow:
                return
            await self._sleep(self.config.poll_interval)

    def _item(self, raw: bytes, cursor: dict[str, int]) -> SourceItem | None:
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return SkippedItem(
                f"line {cursor['line']}: not UTF-8 text", repr(raw[:MAX_RAW]), cursor
            )
        if not text or text.startswith("#"):
            return None
        try:
            return FillItem(parse_line(text, self._allowed), cursor)
        except ReplayLineError as exc:
            return SkippedItem(f"line {cursor['line']}: {exc}", text[:MAX_RAW], cursor)


def _factory(config: ReplayConfig, context: ExecutorContext) -> ReplaySource:
    path = resolve_path(context.app, config.path)
    # Without follow there is nothing to wait for: say so before the engine starts
    # (exit status 2, like any config error), instead of a FileNotFoundError traceback.
    if path.is_dir():
        raise ConfigError("source.path", f"is a directory, not a file: {path}")
    if not config.follow and not path.exists():
        raise ConfigError("source.path", f"replay file not found: {path}")
    return ReplaySource(config, path)


@hookimpl
def st0x_register_fill_sources(register: Callable[[FillSourceType], None]) -> None:
    register(
        FillSourceType(
            name="replay",
            config_class=ReplayConfig,
            factory=_factory,
            description="fills from a JSON-lines file (demos, tests, backtests)",
        )
    )
