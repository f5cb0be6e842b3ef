"""The intake → ingest channel: FIFO, bounded, read in batches."""

from __future__ import annotations

import asyncio

import pytest

from st0x_liquidity.channel import Channel


async def test_items_come_out_in_order_in_batches_of_at_most_the_limit() -> None:
    channel: Channel[int] = Channel(100)
    for i in range(7):
        await channel.put(i)
    assert await channel.get_batch(3) == [0, 1, 2]
    assert await channel.get_batch(10) == [3, 4, 5, 6]
    assert len(channel) == 0


async def test_a_reader_waits_for_the_first_item() -> None:
    channel: Channel[str] = Channel(4)
    reader = asyncio.create_task(channel.get_batch(10))
    await asyncio.sleep(0.01)
    assert not reader.done()
    await channel.put("a")
    assert await asyncio.wait_for(reader, 1) == ["a"]


async def test_a_full_channel_holds_the_writer_until_read() -> None:
    channel: Channel[int] = Channel(2)
    await channel.put(1)
    await channel.put(2)
    writer = asyncio.create_task(channel.put(3))
    await asyncio.sleep(0.01)
    assert not writer.done()
    assert len(channel) == 2
    assert await channel.get_batch(1) == [1]
    await asyncio.wait_for(writer, 1)
    assert await channel.get_batch(10) == [2, 3]


async def test_producer_and_consumer_lose_and_repeat_nothing() -> None:
    channel: Channel[int] = Channel(5)
    got: list[int] = []

    async def produce() -> None:
        for i in range(1000):
            await channel.put(i)
            if i % 37 == 0:
                await asyncio.sleep(0)

    async def consume() -> None:
        while len(got) < 1000:
            got.extend(await channel.get_batch(7))

    await asyncio.wait_for(asyncio.gather(produce(), consume()), 10)
    assert got == list(range(1000))


def test_a_channel_holds_at_least_one_item() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Channel(0)


async def test_offer_appends_until_full_then_refuses_and_wakes_a_reader() -> None:
    channel: Channel[int] = Channel(2)
    reader = asyncio.create_task(channel.get_batch(10))
    await asyncio.sleep(0.01)
    assert channel.offer(1)
    assert await asyncio.wait_for(reader, 1) == [1]
    assert channel.offer(2) and channel.offer(3)
    assert not channel.offer(4)  # full: refused, nothing changed
    assert await channel.get_batch(10) == [2, 3]
