"""Shared helpers of the rebalancing tests."""

from datetime import UTC, datetime

T0 = datetime(2026, 1, 2, 15, tzinfo=UTC)
