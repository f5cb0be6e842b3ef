"""Stopping the source must work even when Python 3.11's ``asyncio.wait_for`` loses the
cancellation (it returns the answer if it landed in the same loop turn as the cancel).

That race hung the demo's shutdown about once in ten runs: the engine cancels its intake
task, the cancel vanished inside a node request, and the stream went on walking while the
engine waited for it forever.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from st0x_liquidity.raindex.node import Node


class AnswerOnCue:
    """A provider whose answer the test releases at the moment it cancels the caller."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[dict[str, Any]] | None = None
        self.asked = asyncio.Event()

    async def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.answer = asyncio.get_running_loop().create_future()
        self.asked.set()
        return await self.answer


async def test_cancel_arriving_with_the_answer_is_not_lost() -> None:
    provider = AnswerOnCue()
    node = Node("ws://127.0.0.1:9", 5.0)
    node._w3 = SimpleNamespace(provider=provider)  # type: ignore[assignment]
    task = asyncio.create_task(node.request("eth_blockNumber", []))
    await provider.asked.wait()
    assert provider.answer is not None
    # the answer and the cancel in the same loop turn
    provider.answer.set_result({"jsonrpc": "2.0", "id": 1, "result": "0x10"})
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class FailOnCancel:
    """A provider whose request, when cancelled, ends with the socket's error instead:
    what web3's websocket request does when the node goes away at the same moment."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()

    async def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.asked.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise ConnectionResetError("Connection reset by peer") from None
        raise AssertionError("not reached")


async def test_a_request_failing_as_it_is_cancelled_is_not_reported_unretrieved() -> None:
    import gc

    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        provider = FailOnCancel()
        node = Node("ws://127.0.0.1:9", 5.0)
        node._w3 = SimpleNamespace(provider=provider)  # type: ignore[assignment]
        task = asyncio.create_task(node.request("eth_getTransactionReceipt", ["0x1"]))
        await provider.asked.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        gc.collect()  # an unretrieved exception is reported when its task is collected
    finally:
        loop.set_exception_handler(previous)
    assert not [c for c in reported if "never retrieved" in str(c.get("message"))], reported
