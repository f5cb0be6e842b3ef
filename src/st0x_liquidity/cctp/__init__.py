"""Circle CCTP V2 for USDC rebalancing: messages, calldata, the Iris attestation client.

``message`` and ``contracts`` are pure; ``iris`` is the HTTP client; ``fake_iris`` and
``devnet`` are the local stand-ins used by tests (and the demo). See ``docs/cctp.md``.
"""
