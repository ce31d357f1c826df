"""The queue on a real three-primary cluster: partitions over slots."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from aioredismq.client import Client
from aioredismq.cluster import key_slot
from aioredismq.connection import ConnectionSettings
from aioredismq.keys import dead_letter_key
from aioredismq.message import Message


@pytest.fixture
async def cluster_client(
    cluster_seeds: list[ConnectionSettings],
) -> AsyncIterator[Client]:
    urls = [f"redis://{s.host}:{s.port}" for s in cluster_seeds]
    client = await Client.connect_cluster(urls)
    for node in await client._cluster.primaries():  # type: ignore[union-attr]
        await node.execute("FLUSHALL")  # the cluster is shared by the session
    yield client
    for name in await client.list_topics():
        await client.delete_topic(await client.topic(name))
    await client.close()


async def test_partitions_spread_over_nodes_and_all_arrive(
    cluster_client: Client,
) -> None:
    topic = await cluster_client.create_topic("orders", 6)
    slots = {key_slot(key) for key in topic.stream_keys}
    assert len(slots) == 6
    owners = {
        (s.host, s.port)
        for s in (
            cluster_client._cluster.settings_for_key(k)  # type: ignore[union-attr]
            for k in topic.stream_keys
        )
    }
    assert len(owners) >= 2  # the partitions really live on several nodes

    producer = cluster_client.producer(topic)
    # Entry ids are unique per stream only; payloads identify messages here.
    for i in range(120):
        await producer.send(b"%d" % i, key=f"k{i % 17}")
    await producer.send_many([b"bulk-%d" % i for i in range(30)])
    sent = sorted([b"%d" % i for i in range(120)] + [b"bulk-%d" % i for i in range(30)])
    assert sum(await cluster_client.stream_lengths(topic)) == 150

    consumer = cluster_client.consumer(topic, "g", "c1", block_ms=50)
    got: list[bytes] = []
    async with asyncio.timeout(10):
        async for message in consumer:
            got.append(message.payload)
            if len(got) == 150:
                break
    await consumer.stop()
    assert sorted(got) == sent
    assert sum(await cluster_client.pending(topic, "g")) <= 1


async def test_dead_letters_on_a_cluster(cluster_client: Client) -> None:
    topic = await cluster_client.create_topic("poison", 3)
    producer = cluster_client.producer(topic)
    await producer.send(b"bad", key="x")

    async def fail(message: Message) -> None:
        raise RuntimeError("always fails")

    consumer = cluster_client.consumer(
        topic, "g", "c1", claim_idle_ms=50, claim_interval_ms=50, max_deliveries=1
    )
    runner = asyncio.create_task(consumer.run(fail))
    async with asyncio.timeout(10):
        while consumer.stats.dead_lettered == 0:
            await asyncio.sleep(0.05)
    await consumer.stop()
    await runner
    assert sum(await cluster_client.pending(topic, "g")) == 0
    lengths = []
    cluster = cluster_client._cluster
    assert cluster is not None
    for partition in range(3):
        key = dead_letter_key("poison", partition)
        lengths.append(await cluster.connection_for_key(key).execute("XLEN", key))
    assert sum(lengths) == 1


async def test_subscriber_reads_across_slots(cluster_client: Client) -> None:
    topic = await cluster_client.create_topic("feed", 4)
    subscriber = cluster_client.subscriber(topic, start="$", block_ms=20)
    assert await subscriber.read() == []
    producer = cluster_client.producer(topic)
    for i in range(20):
        await producer.send(b"%d" % i)
    got: list[bytes] = []
    async with asyncio.timeout(5):
        while len(got) < 20:
            got += [m.payload for m in await subscriber.read()]
    await subscriber.stop()
    assert sorted(got) == sorted(b"%d" % i for i in range(20))
