"""SIGINT/SIGTERM handling across roles: one handler for the whole run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

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


def test_a_stop_that_hangs_ends_with_every_stack_on_stderr(tmp_path: Path) -> None:
    """Past ``grace`` after the first signal, a process whose stop hangs (here a thread
    that never returns, as a driver stuck on a dead socket would) dumps every thread's
    stack and exits 1 instead of waiting for systemd's SIGKILL."""
    script = tmp_path / "hang.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, os, signal, threading
            from st0x_liquidity.stop_signals import Stopper

            def stuck_in_a_driver():
                threading.Event().wait()

            async def main():
                stopper = Stopper(asyncio.Event(), grace=0.5)
                with stopper.installed():
                    os.kill(os.getpid(), signal.SIGTERM)
                    await stopper.stop.wait()
                await asyncio.to_thread(stuck_in_a_driver)  # the stop never ends

            asyncio.run(main())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "Timeout (0:00:00.500000)!" in done.stderr
    assert "stuck_in_a_driver" in done.stderr
