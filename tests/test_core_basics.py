"""The first slice of the core against a real server."""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

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


async def test_a_bad_message_fails_its_own_call_only(conn: Connection) -> None:
    topic = await create_topic(conn, "poison", 2)
    producer = Producer(conn, topic)
    bad: list[Any] = ["a str", 5, None]
    results = await asyncio.gather(
        producer.send(b"good-1"),
        *(producer.send(payload) for payload in bad),
        producer.send(b"good-2", key=5),  # type: ignore[arg-type]
        producer.send(b"good-3", headers={"n": 1}),  # type: ignore[dict-item]
        producer.send(b"good-4", headers=[("a", "b")]),  # type: ignore[arg-type]
        producer.send(b"good-5", key="k", headers={"h": b"v"}),
        return_exceptions=True,
    )
    assert [type(result).__name__ for result in results] == [
        "bytes",
        *["TypeError"] * 6,
        "bytes",
    ]
    assert "not str (encode it first)" in str(results[1])
    assert "key must be str, bytes or None, not int" in str(results[4])
    stored = [await conn.execute("XRANGE", key, "-", "+") for key in topic.stream_keys]
    payloads = sorted(entry_payload_ts(e[1])[0] for entries in stored for e in entries)
    assert payloads == [b"good-1", b"good-5"]


async def test_send_many_of_nothing_or_of_bad_values(conn: Connection) -> None:
    topic = await create_topic(conn, "empty", 2)
    producer = Producer(conn, topic)
    assert await producer.send_many([]) == []
    with pytest.raises(ValueError, match="1 keys for 2 payloads"):
        producer.send_many([b"a", b"b"], keys=["x"])
    with pytest.raises(TypeError, match="payload must be bytes"):
        producer.send_many([b"a", "b"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="key must be str, bytes or None, not int"):
        producer.send_many([b"a", b"b"], keys=["k", 5])  # type: ignore[list-item]
    # The connection still serves the next batch and single sends.
    replies = await producer.send_many([b"a", b"b"])
    assert len(replies) == 2 and not any(map(is_reply_error, replies))
    await producer.send(b"c")
    assert [await conn.execute("XLEN", key) for key in topic.stream_keys] == [2, 1]


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
