"""Equity symbols and the mapping from tokenized symbols to base tickers."""

from __future__ import annotations

import re

import attrs

_TICKER = re.compile(r"^[A-Z][A-Z0-9.]{0,14}$")


class InvalidSymbolError(ValueError):
    """A ticker or tokenized symbol that cannot name an equity."""


def _check_ticker(_inst: object, _attr: object, value: str) -> None:
    if not _TICKER.match(value):
        raise InvalidSymbolError(
            f"symbol must be a non-empty upper-case ticker (A-Z, 0-9, '.'), got {value!r}"
        )


@attrs.frozen(order=True)
class Symbol:
    """A base equity ticker such as ``AAPL``.

    Positions, hedges and P&L are keyed by the base ticker only, so ``tAAPL``
    onchain and ``AAPL`` at the broker land in one book (the seed system kept
    two books for one stock).
    """

    ticker: str = attrs.field(validator=_check_ticker)

    def __str__(self) -> str:
        return self.ticker

    @classmethod
    def parse(cls, text: str) -> Symbol:
        """Accept a base ticker or a tokenized form and return the base ticker."""
        if not isinstance(text, str):
            raise InvalidSymbolError(f"symbol must be text, got {type(text).__name__}")
        return cls(base_ticker(text.strip()))


def base_ticker(token_symbol: str) -> str:
    """Strip the tokenization marker: ``tAAPL`` / ``AAPL0x`` / ``AAPLs1`` -> ``AAPL``.

    A plain upper-case ticker is returned unchanged. An empty remainder is an error.
    """
    text = token_symbol
    if text.startswith("t") and len(text) > 1 and text[1:2].isupper():
        text = text[1:]
    elif (text.endswith("0x") and len(text) > 2) or (text.endswith("s1") and len(text) > 2):
        text = text[:-2]
    if not text or not _TICKER.match(text):
        raise InvalidSymbolError(f"not an equity symbol: {token_symbol!r}")
    return text


def is_tokenized_equity(token_symbol: str) -> bool:
    """True for ``tAAPL``, ``AAPL0x``, ``AAPLs1``; false for ``USDC`` and plain text."""
    marked = (
        (token_symbol.startswith("t") and token_symbol[1:2].isupper())
        or token_symbol.endswith("0x")
        or token_symbol.endswith("s1")
    )
    if not marked:
        return False
    try:
        base_ticker(token_symbol)
    except InvalidSymbolError:
        return False
    return True
