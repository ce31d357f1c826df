"""Several producers at once: a key always lands on the same partition.

Three producers, each on its own connection as separate processes would be,
send concurrently for the same five keys. Reading the topic back shows each
key in exactly one partition, and each producer's messages for a key in the
order it sent them.

Run: python examples/producers.py [--redis-url redis://host:port]
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from _server import fresh_topic, run

from aioredismq.client import Client
from aioredismq.keys import partition_for_key
from aioredismq.topic import Topic

PRODUCERS = ["web", "mobile", "batch"]
KEYS = [f"account-{n}" for n in range(1, 6)]
ROUNDS = 8  # each producer sends ROUNDS messages per key


async def produce(url: str, topic: Topic, name: str) -> int:
    # One client per producer: partitioning must not depend on sharing a
    # connection or a process, only on the key.
    async with await Client.connect(url) as client:
        producer = client.producer(topic)
        sent = 0
        for seq in range(ROUNDS):
            # One round, a message per key, goes out as one pipelined write.
            # The next round starts once the server stored this one, so for
            # each key this producer's messages are stored in `seq` order.
            await asyncio.gather(
                *(producer.send(f"{name}:{seq}".encode(), key=k) for k in KEYS)
            )
            sent += len(KEYS)
            await asyncio.sleep(0)  # let the other producers interleave
        return sent


async def main(url: str) -> None:
    async with await Client.connect(url) as client:
        topic = await fresh_topic(client, "examples.producers", partitions=4)
        counts = await asyncio.gather(*(produce(url, topic, n) for n in PRODUCERS))
        total = sum(counts)
        print(f"{len(PRODUCERS)} producers sent {total} messages concurrently")

        # Read everything back from the start. Within a partition a
        # subscriber sees entries in stream order, which is the order the
        # server stored them in.
        reader = client.subscriber(topic, start="0", block_ms=50)
        partitions_of: dict[str, set[int]] = defaultdict(set)
        sequences: dict[tuple[str, str], list[int]] = defaultdict(list)
        writers: dict[int, list[str]] = defaultdict(list)
        async with asyncio.timeout(10):
            async for message in reader:
                key = (message.key or b"").decode()
                producer_name, seq = message.text().split(":")
                partitions_of[key].add(message.partition)
                sequences[(key, producer_name)].append(int(seq))
                writers[message.partition].append(producer_name)
                if sum(len(s) for s in sequences.values()) == total:
                    break
        await reader.stop()

        print("key        partition  expected  messages  in order per producer")
        for key in KEYS:
            # `partition_for_key` is the producer's own rule (CRC-32 of the
            # key, modulo the partition count), usable by anyone.
            expected = partition_for_key(key.encode(), topic.partitions)
            in_order = all(
                sequences[(key, p)] == list(range(ROUNDS)) for p in PRODUCERS
            )
            found = sorted(partitions_of[key])
            n = sum(len(sequences[(key, p)]) for p in PRODUCERS)
            print(f"{key:<10} {found!s:<10} {expected:<9} {n:<9} {in_order}")
            assert found == [expected] and in_order
        print(f"partition sizes: {await client.stream_lengths(topic)}")
        # The producers really did interleave: one partition's first writers.
        print(f"partition 0 was written by: {', '.join(writers[0][:8])}, ...")
        print("every key stayed on one partition, in order")
        await client.delete_topic(topic)


if __name__ == "__main__":
    run(main, __doc__)
