"""A consumer group: three consumers share the work, each message once.

Each consumer runs a handler with `run`, several messages at a time. The
group hands every message to exactly one member, so the counts per consumer
add up to what was sent.

Run: python examples/group.py [--redis-url redis://host:port]
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from _server import fresh_topic, run

from aioredismq.client import Client, Consumer
from aioredismq.message import Message

SENT = 60
CONSUMERS = ["worker-1", "worker-2", "worker-3"]


async def main(url: str) -> None:
    async with await Client.connect(url) as client:
        topic = await fresh_topic(client, "examples.group", partitions=3)
        handled: Counter[str] = Counter()
        all_done = asyncio.Event()

        def handler_for(name: str) -> Callable[[Message], Awaitable[None]]:
            async def handle(message: Message) -> None:
                # Pretend to work: while one handler waits here, the others
                # in the same consumer (and the other consumers) keep going.
                await asyncio.sleep(0.01)
                handled[name] += 1
                if handled.total() == SENT:
                    all_done.set()
                # Returning normally acks the message; raising would leave it
                # pending for a retry (see recovery.py).

            return handle

        # prefetch bounds what one consumer takes from each partition before
        # acking. Kept small, the group spreads the messages over all
        # members; with the default (100) the first member to read could
        # take all 60 at once.
        consumers: list[Consumer] = [
            client.consumer(topic, "billing", name, prefetch=4, concurrency=4)
            for name in CONSUMERS
        ]
        for consumer in consumers:
            # Start first, so every member is waiting when messages arrive.
            await consumer.start()
        runners = [
            asyncio.create_task(c.run(handler_for(name)))
            for c, name in zip(consumers, CONSUMERS, strict=True)
        ]

        producer = client.producer(topic)
        await asyncio.gather(*(producer.send(b"invoice %d" % i) for i in range(SENT)))
        print(f"sent {SENT} messages to 3 partitions")

        async with asyncio.timeout(10):
            await all_done.wait()
        # stop() lets running handlers finish and sends their acks; then
        # run() returns.
        for consumer in consumers:
            await consumer.stop()
        await asyncio.gather(*runners)

        for name in CONSUMERS:
            print(f"{name} handled {handled[name]}")
        print(f"total handled: {handled.total()} of {SENT}")
        delivered = sum(c.stats.delivered for c in consumers)
        print(f"delivered by the group: {delivered} (each message once)")
        print(f"pending: {sum(await client.pending(topic, 'billing'))}")
        await client.delete_topic(topic)


if __name__ == "__main__":
    run(main, __doc__)
