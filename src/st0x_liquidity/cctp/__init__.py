"""Circle CCTP V2 for USDC rebalancing: messages, calldata, the Iris attestation client.

``message`` and ``contracts`` are pure; ``iris`` is the HTTP client. The local stand-ins
used by tests (``st0x_testing.fake_iris``, ``st0x_testing.cctp_devnet``) ship apart, in
st0x-liquidity-testing. See ``docs/cctp.md``.
"""
