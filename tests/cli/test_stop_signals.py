"""SIGINT/SIGTERM handling across roles: one handler for the whole run."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from st0x_liquidity import stop_signals
from st0x_liquidity.stop_signals import Stopper


class FakeEngine:
    def __init__(self) -> None:
        self.stops = 0

    def request_stop(self) -> None:
        self.stops += 1


class Exited(Exception):
    pass


def _no_exit(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise Exited

    monkeypatch.setattr(stop_signals.os, "_exit", fake_exit)
    return codes


def test_a_signal_between_roles_stops_the_next_engine_and_is_not_a_second_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codes = _no_exit(monkeypatch)
    stopper = Stopper(asyncio.Event())
    leader = FakeEngine()
    stopper.running(leader)
    stopper.running(None)  # stepped down: between roles
    stopper(signal.SIGTERM)
    assert stopper.stop.is_set() and leader.stops == 0 and codes == []
    taking_over = FakeEngine()
    stopper.running(taking_over)  # a run that starts after the signal stops at once
    assert taking_over.stops == 1
    with pytest.raises(Exited):
        stopper(signal.SIGTERM)
    assert codes == [128 + int(signal.SIGTERM)]


def test_an_engine_stopping_on_its_own_does_not_turn_the_first_signal_into_a_kill(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A leader losing its lease stops its engine; the operator's SIGTERM then still
    means "stop gracefully", not "exit at once"."""
    codes = _no_exit(monkeypatch)
    stopper = Stopper(asyncio.Event())
    engine = FakeEngine()
    stopper.running(engine)
    engine.request_stop()  # the step-down's own stop
    stopper(signal.SIGINT)
    assert codes == [] and stopper.stop.is_set() and engine.stops == 2


async def test_the_handlers_are_installed_for_the_whole_run_and_removed_after() -> None:
    stopper = Stopper(asyncio.Event())
    with stopper.installed():
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stopper.stop.wait(), 10)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
