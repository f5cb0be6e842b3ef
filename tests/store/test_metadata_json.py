"""The store's metadata encoder writes what ``json.dumps`` writes, cached or not."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from st0x_liquidity.store.sqlite import _metadata_json

_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_cursors = st.dictionaries(st.text(max_size=6), _scalars, max_size=4)


def _plain(meta: dict[str, Any]) -> str:
    return json.dumps(meta, separators=(",", ":"), sort_keys=True)


@given(st.text(max_size=12))
def test_source_only_metadata_is_the_plain_encoding_every_time(source: str) -> None:
    meta = {"source": source}
    assert _metadata_json(meta) == _plain(meta)
    assert _metadata_json(dict(meta)) == _plain(meta)  # the cached text


@given(st.text(max_size=12), _cursors)
def test_metadata_with_a_cursor_is_the_plain_encoding(source: str, cursor: dict[str, Any]) -> None:
    meta = {"source": source, "cursor": cursor}
    assert _metadata_json(meta) == _plain(meta)


def test_other_one_key_metadata_is_not_taken_for_a_source() -> None:
    assert _metadata_json({"source": 7}) == '{"source":7}'
    assert _metadata_json({"other": "x"}) == '{"other":"x"}'
