"""Raindex (IOrderBookV5) support: pure log decoding and the ``raindex`` fill source.

* :mod:`.floats` – the rain ``Float`` (bytes32) to and from ``Decimal``, exactly.
* :mod:`.abi` – the canonical event ABI, kept as data (``data/raindex_abi.json``).
* :mod:`.decode` – raw logs to typed events, and events to maker-side fills (pure).
* :mod:`.pyth` – Pyth price extraction from ``debug_traceTransaction`` call frames (pure).
* :mod:`.source` – the chain-facing fill source (web3 over WebSocket or HTTP): the follow
  loop, built on :mod:`.config`, :mod:`.walk_state`, :mod:`.log_ranges`, :mod:`.log_items`,
  :mod:`.tokens`, :mod:`.enrichment`, :mod:`.heads` and :mod:`.reachability`.
* :mod:`.plugin` – registers the source through the same hook third parties use.
"""
