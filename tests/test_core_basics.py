"""The first slice of the core against a real server."""

from __future__ import annotations

import asyncio
import itertools
import os

import pytest

from aioredismq import keys
from aioredismq.connection import Connection, ConnectionSettings, is_reply_error
from aioredismq.consumer import Entry, GroupConsumer, entry_payload_ts
from aioredismq.errors import ConfigError
from aioredismq.producer import Producer
from aioredismq.topic import create_topic, delete_topic, open_topic


async def test_topic_roundtrip(conn: Connection) -> None:
    topic = await create_topic(conn, "orders", 3)
    assert topic.stream_keys == ("{orders:0}", "{orders:1}", "{orders:2}")
    assert (await open_topic(conn, "orders")).partitions == 3
    with pytest.raises(ConfigError, match="topic exists with 3 partitions"):
        await create_topic(conn, "orders", 4)


async def test_send_lands_on_key_partition(conn: Connection) -> None:
    topic = await create_topic(conn, "t", 4)
    producer = Producer(conn, topic)
    ids = [await producer.send(b"x", key="user-7") for _ in range(5)]
    assert len(set(ids)) == 5
    expected = keys.partition_for_key(b"user-7", 4)
    lengths = [await conn.execute("XLEN", key) for key in topic.stream_keys]
    assert lengths[expected] == 5
    assert sum(lengths) == 5


async def test_send_without_key_is_round_robin(conn: Connection) -> None:
    topic = await create_topic(conn, "rr", 4)
    producer = Producer(conn, topic)
    await asyncio.gather(*(producer.send(b"%d" % i) for i in range(10)))
    lengths = [await conn.execute("XLEN", key) for key in topic.stream_keys]
    assert lengths == [3, 3, 2, 2]


async def test_concurrent_sends_go_out_in_batches_of_batch_max(
    conn: Connection,
) -> None:
    # 25 sends queued in one tick with batch_max=10: two full batches are
    # written as they fill, the last 5 at the end of the tick. A batch's
    # messages share one ts_us, so the stored timestamps show the cuts.
    topic = await create_topic(conn, "cuts", 1)
    producer = Producer(conn, topic, batch_max=10)
    ids = await asyncio.gather(
        *(producer.send(b"%d" % i, key=b"k" if i % 3 else None) for i in range(25))
    )
    entries = await conn.execute("XRANGE", topic.stream_keys[0], "-", "+")
    assert [entry[0] for entry in entries] == ids
    assert [entry_payload_ts(entry[1])[0] for entry in entries] == [
        b"%d" % i for i in range(25)
    ]
    stamps = [entry_payload_ts(entry[1])[1] for entry in entries]
    runs = [len(list(group)) for _, group in itertools.groupby(stamps)]
    assert runs == [10, 10, 5]
    with pytest.raises(ConfigError, match="batch_max"):
        Producer(conn, topic, batch_max=0)


async def test_send_many_and_consume_bytes_exactly(
    conn: Connection, settings: ConnectionSettings
) -> None:
    topic = await create_topic(conn, "bin", 3)
    payloads = [bytes(range(256)), b"\xc3\x28", b"", b"a\r\nb", os.urandom(1 << 20)]
    producer = Producer(conn, topic)
    replies = await producer.send_many(payloads)
    assert not any(map(is_reply_error, replies))

    got: list[bytes] = []
    done = asyncio.Event()

    def handle(
        partition: int, entries: list[Entry], deliveries: list[int] | None
    ) -> None:
        for _, fields in entries:
            payload, ts_us = entry_payload_ts(fields)
            assert ts_us > 1_600_000_000_000_000
            got.append(payload)
        if len(got) == len(payloads):
            done.set()

    consumer = GroupConsumer(settings, topic, "g", "c1", handle, block_ms=50)
    await consumer.start()
    await asyncio.wait_for(done.wait(), 5)
    await consumer.stop()
    assert sorted(got) == sorted(payloads)
    assert consumer.stats.acked == len(payloads)
    for key in topic.stream_keys:
        summary = await conn.execute("XPENDING", key, "g")
        assert summary[0] == 0
    assert await delete_topic(conn, topic) == 4  # meta + 3 streams
