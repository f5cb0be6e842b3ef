"""A test-only kill switch: SIGKILL this process at a named step of the order lifecycle.

The kill tests (tests/cli/test_extended_kill.py) set ``ST0X_TEST_KILL_AT`` to a
step name to prove that a crash exactly there loses nothing and doubles
nothing. Unset (always, outside those tests) it does nothing. Steps:
``cancel_requested`` (the durable cancel request is written, the broker not yet
asked), ``cancel_confirmed`` (the broker confirmed the end, not yet booked),
``cancel_booked`` (booked, the next order not yet decided), ``partial_booked``
(a partial fill booked) and ``regular_open`` (the cancel at the regular open
is requested).
"""

from __future__ import annotations

import os
import signal

ENV = "ST0X_TEST_KILL_AT"


def checkpoint(step: str) -> None:
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
