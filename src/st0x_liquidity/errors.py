"""Errors that cross the boundary between the engine and its adapters.

A broker call ends in one of three ways besides success, and the engine treats
each differently (the NautilusTrader distinction between definitive and
ambiguous outcomes):

* :class:`RetryableBrokerError` – the request definitely did not take effect
  (rate limited, refused before processing); the same call may be retried.
* :class:`AmbiguousBrokerError` – the outcome is unknown (timeout, connection
  reset, 5xx after sending an order). The engine asks the broker by
  ``client_order_id`` before it places anything again.
* :class:`FinalBrokerError` – the broker rejected the request; retrying the same
  request would fail the same way. The hedge fails with this reason.
"""

from __future__ import annotations


class St0xError(Exception):
    """Base class of this package's errors."""


class ConfigError(St0xError):
    """A configuration problem, reported as one line naming the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


class BrokerError(St0xError):
    """A broker call did not succeed; subclasses say whether it may be retried."""

    retryable: bool = False


class RetryableBrokerError(BrokerError):
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AmbiguousBrokerError(BrokerError):
    """The request may or may not have taken effect at the broker."""

    retryable = True


class FinalBrokerError(BrokerError):
    retryable = False


class AuthenticationRequiredError(FinalBrokerError):
    """Credentials are missing, expired or revoked; an operator must act.

    The engine pauses hedging (fills keep accumulating) instead of failing
    orders, and resumes once the executor reports it is authorised again.
    """


class NotSupportedError(St0xError):
    """An optional executor capability (inventory, say) that this one lacks."""


class StoreError(St0xError):
    """The store cannot be opened or written; the process must stop."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached just now (restarting, network cut): wait and ask
    again. No broker call is made meanwhile."""
