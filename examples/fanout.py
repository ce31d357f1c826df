"""Fan-out: two subscribers outside any group each receive every message.

One subscriber starts at "$" (only what is published from now on), the other
at "0" (the whole history first).

Run: python examples/fanout.py [--redis-url redis://host:port]
"""

from __future__ import annotations

import asyncio

from _server import fresh_topic, run

from aioredismq.client import Client, Subscriber

BEFORE = [b"history-1", b"history-2"]
AFTER = [b"news-1", b"news-2", b"news-3"]


async def collect(name: str, subscriber: Subscriber, expected: int) -> list[bytes]:
    """Read until `expected` messages arrived (a subscriber never ends)."""
    got: list[bytes] = []
    async for message in subscriber:
        got.append(message.payload)
        print(f"  {name:<6} got {message.text():<9} (partition {message.partition})")
        if len(got) == expected:
            break
    return got


async def main(url: str) -> None:
    async with await Client.connect(url) as client:
        topic = await fresh_topic(client, "examples.fanout", partitions=2)
        producer = client.producer(topic)
        for payload in BEFORE:
            await producer.send(payload)
        print(f"published {len(BEFORE)} messages before anyone subscribed")

        # Subscribers keep their own position; nothing is acked and nothing
        # is shared, so any number of them each see the full stream.
        live = client.subscriber(topic, start="$", block_ms=50)
        replay = client.subscriber(topic, start="0", block_ms=50)
        # "$" becomes "the end of each partition" at the first read, not
        # when the subscriber object is made. Reading once now pins it, so
        # the messages published below count as new for `live`. (It returns
        # nothing here: nothing was published since it was pinned.)
        await live.read()

        readers = asyncio.gather(
            collect("live", live, len(AFTER)),
            collect("replay", replay, len(BEFORE) + len(AFTER)),
        )
        print(f"publishing {len(AFTER)} more messages")
        for payload in AFTER:
            await producer.send(payload)
        # Without a timeout a lost message would hang the example forever.
        async with asyncio.timeout(10):
            live_got, replay_got = await readers
        await live.stop()
        await replay.stop()

        # Across partitions there is no order, so compare as sets.
        print(f"live   (start $) received {len(live_got)}: only the new ones")
        print(f"replay (start 0) received {len(replay_got)}: history and new")
        assert set(live_got) == set(AFTER)
        assert set(replay_got) == set(BEFORE + AFTER)
        print("both subscribers received every new message")
        await client.delete_topic(topic)


if __name__ == "__main__":
    run(main, __doc__)
