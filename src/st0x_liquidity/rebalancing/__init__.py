"""Inventory across venues and equity rebalancing (mint/redeem), as a built-in plugin.

See docs/rebalancing.md. Domain modules (``inventory``, ``triggers``,
``events``) are pure; ``log``, ``keeper`` and ``service`` do the I/O.
"""
