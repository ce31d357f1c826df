"""Send a few messages with keys and headers, read them back in a group.

Run: python examples/basic.py [--redis-url redis://host:port]
"""

from __future__ import annotations

from _server import fresh_topic, run

from aioredismq.client import Client
from aioredismq.keys import partition_for_key

MESSAGES = [
    ("user-1", b"signed up"),
    ("user-2", b"signed up"),
    ("user-1", b"added a card"),
    ("user-1", b"paid 20 EUR"),
    ("user-2", b"cancelled"),
]


async def main(url: str) -> None:
    async with await Client.connect(url) as client:
        # Three partitions: three streams. A key picks the partition, so all
        # events of one user stay in one stream, in the order they were sent.
        topic = await fresh_topic(client, "examples.basic", partitions=3)
        producer = client.producer(topic)
        for key, payload in MESSAGES:
            # `send` returns once the server has stored the message. The
            # entry id it returns is unique within one partition only, so the
            # partition (the key's hash) is printed next to it.
            entry_id = await producer.send(
                payload, key=key, headers={"source": "basic.py"}
            )
            partition = partition_for_key(key.encode(), topic.partitions)
            print(
                f"sent     {key}: {payload.decode():<14} partition {partition}"
                f", id {entry_id.decode()}"
            )

        # A consumer is a member of a group ("audit") with a name of its own.
        # The group is created on first use, from the start of each stream,
        # so the messages sent above are all delivered.
        consumer = client.consumer(topic, "audit", "audit-1")
        received = 0
        async for message in consumer:
            received += 1
            key = (message.key or b"").decode()
            source = message.headers[b"source"].decode()
            print(
                f"received {key}: {message.text():<14} partition {message.partition}"
                f", header source={source}, delivery #{message.deliveries}"
            )
            if received == len(MESSAGES):
                # The loop acks a message when it asks for the next one.
                # Leaving with `break` means it never asks again, so the
                # last message is acked by hand, or it would stay pending.
                await consumer.ack(message)
                break
        # Stopping sends acks that are still buffered, then disconnects.
        await consumer.stop()

        # Pending = delivered to the group and not acked. 0 means every
        # message counts as handled: nobody will get it again.
        pending = sum(await client.pending(topic, "audit"))
        print(f"received {received} of {len(MESSAGES)} messages")
        print(f"pending after the loop: {pending}")
        print(f"consumer stats: {consumer.stats.as_dict()}")
        await client.delete_topic(topic)


if __name__ == "__main__":
    run(main, __doc__)
