"""Test support for st0x-liquidity and its plugins (the ``st0x-liquidity-testing`` distribution).

Nothing here is runtime code, and no runtime module imports it (a test checks):

* ``raindex_devnet`` – anvil, the project's test orderbook contracts, a taker;
* ``cctp_devnet`` and ``fake_iris`` – two local CCTP chains and an Iris stand-in;
* ``fake_alpaca``, ``fake_alpaca_broker`` (with ``fake_alpaca_wallet``) and
  ``fake_schwab`` – HTTP fakes of the brokers' documented APIs;
* ``alpaca_e2e`` – helpers for running the real engine against those fakes;
* ``pytest_plugin`` – fixtures for plugin authors (a ``pytest11`` entry point);
* ``data/*_devnet_contracts.json`` – the test contracts, compiled by
  ``tools/build-contracts.js``.
"""
