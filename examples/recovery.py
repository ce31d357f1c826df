"""Recovery: a crashed member's messages are claimed; poison is dead-lettered.

worker-a takes every message and "crashes" before acking any. worker-b, set
to claim messages idle for a while, takes them over and handles them, all
but one "poison" message its handler always fails on. After `max_deliveries`
that one is moved to the partition's dead-letter stream, with its origin.

Run: python examples/recovery.py [--redis-url redis://host:port]
"""

from __future__ import annotations

import asyncio

from _server import fresh_topic, run

from aioredismq.client import Client
from aioredismq.consumer import AckMode
from aioredismq.keys import dead_letter_key
from aioredismq.message import Message
from aioredismq.topic import Topic

ORDERS = [b"order-1", b"order-2", b"order-3", b"order-4", b"order-5"]
POISON = b"poison"
GROUP = "shipping"
# What a dead letter carries besides the message: where it was, and why.
SHOWN = [
    "payload",
    "origin-partition",
    "origin-id",
    "origin-group",
    "deliveries",
    "last-error",
]


async def pending_by_consumer(client: Client, topic: Topic) -> dict[str, int]:
    """Pending messages per group member, summed over partitions."""
    owners: dict[str, int] = {}
    for partition in await client.consumers(topic, GROUP):
        for info in partition:
            name = info["name"].decode()
            owners[name] = owners.get(name, 0) + int(info["pending"])
    return owners


async def dead_letters(client: Client, topic: Topic) -> list[dict[bytes, bytes]]:
    """Every dead letter of the topic, as field -> value."""
    found: list[dict[bytes, bytes]] = []
    for partition in range(topic.partitions):
        key = dead_letter_key(topic.name, partition)
        # A plain stream: read it with XRANGE like any other.
        for _, flat in await client.connection.execute("XRANGE", key, "-", "+"):
            found.append(dict(zip(flat[::2], flat[1::2], strict=True)))
    return found


async def main(url: str) -> None:
    async with await Client.connect(url) as client:
        topic = await fresh_topic(client, "examples.recovery", partitions=2)
        producer = client.producer(topic)
        for payload in [*ORDERS, POISON]:
            await producer.send(payload)
        print(f"sent {len(ORDERS)} orders and 1 poison message")

        # 1. worker-a takes everything and acks nothing (manual mode, no
        #    `ack` calls), then goes away: the messages stay pending, owned
        #    by a member that will never come back.
        worker_a = client.consumer(topic, GROUP, "worker-a", ack_mode=AckMode.MANUAL)
        taken = 0
        async with asyncio.timeout(5):
            async for _ in worker_a:
                taken += 1
                if taken == len(ORDERS) + 1:
                    break
        await worker_a.stop()
        print(f"worker-a took {taken} messages and crashed without acking")
        print(f"pending per member: {await pending_by_consumer(client, topic)}")

        # 2. worker-b sweeps every 100 ms for messages idle >= 300 ms, from
        #    any member. The idle time must exceed how long a healthy handler
        #    takes, or slow messages would be taken from live members too.
        handled: list[tuple[bytes, int]] = []
        orders_done = asyncio.Event()

        async def handle(message: Message) -> None:
            if message.payload == POISON:
                # Raising leaves the message pending; the next sweep claims
                # it again, counting one more delivery.
                raise ValueError("cannot parse order")
            handled.append((message.payload, message.deliveries))
            if len(handled) == len(ORDERS):
                orders_done.set()

        worker_b = client.consumer(
            topic,
            GROUP,
            "worker-b",
            claim_idle_ms=300,
            claim_interval_ms=100,
            max_deliveries=3,  # the 4th delivery becomes a dead letter
        )
        runner = asyncio.create_task(worker_b.run(handle))
        async with asyncio.timeout(10):
            await orders_done.wait()
            while not await dead_letters(client, topic):
                await asyncio.sleep(0.05)
        await worker_b.stop()
        await runner

        for payload, deliveries in sorted(handled):
            print(f"worker-b handled {payload.decode()} (delivery #{deliveries})")
        print(f"worker-b stats: {worker_b.stats.as_dict()}")
        print(f"pending per member: {await pending_by_consumer(client, topic)}")
        print(f"pending in total: {sum(await client.pending(topic, GROUP))}")

        # 3. The dead letter keeps the original fields (payload, ts_us, ...)
        #    plus where it came from and why it was given up.
        letters = await dead_letters(client, topic)
        print(f"dead letters: {len(letters)}")
        for fields in letters:
            for name in SHOWN:
                print(f"  {name:<17} {fields[name.encode()].decode()}")
        await client.delete_topic(topic)


if __name__ == "__main__":
    run(main, __doc__)
