"""The collector is tuned while engines run and restored when the last one stops."""

from __future__ import annotations

import gc

from st0x_liquidity.collector import FIRST_GENERATION_THRESHOLD, tuned_collector


def test_tuned_inside_and_restored_after_the_last_user() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    keep = [[n] for n in range(1000)]  # objects that exist when an engine starts
    with tuned_collector():
        assert gc.get_threshold()[0] == FIRST_GENERATION_THRESHOLD
        assert gc.get_freeze_count() >= frozen_before + len(keep)
        with tuned_collector():  # a second engine in the same process
            assert gc.get_threshold()[0] == FIRST_GENERATION_THRESHOLD
        assert gc.get_threshold()[0] == FIRST_GENERATION_THRESHOLD  # the first still runs
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    del keep


def test_restored_when_the_engine_fails() -> None:
    before = gc.get_threshold()
    try:
        with tuned_collector():
            raise RuntimeError("engine failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
