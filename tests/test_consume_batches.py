"""Batch paths of consuming: whole-batch helpers and acks, on a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aioredismq.connection import Connection, ConnectionSettings
from aioredismq.consumer import (
    READS_AHEAD,
    AckMode,
    Batch,
    Entry,
    GroupConsumer,
    batch_payloads,
    batch_payloads_ts,
    entry_payload_ts,
)
from aioredismq.message import parse_entries, parse_fields, producer_layout
from aioredismq.producer import Producer
from aioredismq.topic import Topic, create_topic


async def read_all(conn: Connection, key: str) -> list[Entry]:
    entries: list[Entry] = await conn.execute("XRANGE", key, "-", "+")
    return entries


def per_entry(entries: list[Entry]) -> tuple[list[bytes], list[int]]:
    pairs = [entry_payload_ts(fields) for _, fields in entries]
    return [p for p, _ in pairs], [ts for _, ts in pairs]


async def test_plain_batch_reads_like_entry_by_entry(conn: Connection) -> None:
    topic = await create_topic(conn, "plain", 1)
    payloads = [b"", b"a\r\nb", bytes(range(256)), b"x" * 5000]
    await Producer(conn, topic).send_many(payloads)
    entries = await read_all(conn, topic.stream_keys[0])
    assert producer_layout([fields for _, fields in entries])
    assert batch_payloads(entries) == payloads
    assert batch_payloads_ts(entries) == per_entry(entries)
    expected = [parse_fields(i, 0, f) for i, f in entries]
    assert parse_entries(0, entries) == expected
    # Each message gets headers of its own, not one shared dict.
    messages = parse_entries(0, entries)
    messages[0].headers[b"k"] = b"v"
    assert messages[1].headers == {}


async def test_mixed_and_foreign_entries_take_the_general_path(
    conn: Connection,
) -> None:
    topic = await create_topic(conn, "mixed", 1)
    key = topic.stream_keys[0]
    producer = Producer(conn, topic)
    await producer.send(b"plain")
    await producer.send(b"keyed", key="k1", headers={"trace": "t1"})
    # Written by something other than Producer: other order, no timestamp.
    await conn.execute("XADD", key, "*", "payload", b"foreign", "other", b"1")
    await conn.execute("XADD", key, "*", "other", b"no payload here")
    entries = await read_all(conn, key)
    assert not producer_layout([fields for _, fields in entries])
    payloads, stamps_us = batch_payloads_ts(entries)
    assert payloads == [b"plain", b"keyed", b"foreign", b""]
    assert (payloads, stamps_us) == per_entry(entries)
    assert stamps_us[2:] == [0, 0] and min(stamps_us[:2]) > 1_600_000_000_000_000
    assert batch_payloads(entries) == payloads
    messages = parse_entries(0, entries, [1, 2, 3, 4])
    assert messages == [
        parse_fields(i, 0, f, n)
        for (i, f), n in zip(entries, [1, 2, 3, 4], strict=True)
    ]
    assert messages[1].key == b"k1" and messages[1].headers == {b"trace": b"t1"}


async def test_delivery_counts_must_match_the_entries(conn: Connection) -> None:
    topic = await create_topic(conn, "counts", 1)
    await Producer(conn, topic).send_many([b"a", b"b"])
    entries = await read_all(conn, topic.stream_keys[0])
    assert [m.deliveries for m in parse_entries(0, entries, [3, 5])] == [3, 5]
    assert [m.deliveries for m in parse_entries(0, entries)] == [1, 1]
    with pytest.raises(ValueError):
        parse_entries(0, entries, [1])


@pytest.mark.parametrize(
    ("columns", "ack_mode"),
    [
        (False, AckMode.AFTER_HANDLER),
        (True, AckMode.AFTER_HANDLER),
        (True, AckMode.NONE),
    ],
)
async def test_a_backlog_is_read_acked_and_left_with_nothing_pending(
    conn: Connection, settings: ConnectionSettings, columns: bool, ack_mode: AckMode
) -> None:
    # Ids within one millisecond count up (`<ms>-0`, ..., `<ms>-10`, ...), so
    # one read returns ids of several lengths; each must be acked. A backlog
    # over three streams, read 100 at a time per stream, in each handler
    # shape, and without acks (NOACK) in NONE mode.
    topic = Topic("lengths", 3)
    sent = 3000
    await Producer(conn, topic).send_many([b"%d" % i for i in range(sent)])
    lengths: set[int] = set()
    got: list[bytes] = []
    done = asyncio.Event()

    def on_entries(partition: int, entries: list[Entry], _: list[int] | None) -> None:
        on_ids([entry_id for entry_id, _ in entries], batch_payloads(entries))

    def on_batch(batch: Batch) -> None:
        on_ids(batch.ids, batch.payloads)

    def on_ids(ids: list[bytes], payloads: list[bytes]) -> None:
        lengths.update(map(len, ids))
        got.extend(payloads)
        if len(got) == sent:
            done.set()

    consumer = GroupConsumer(
        settings,
        topic,
        "g",
        "c1",
        on_batch if columns else on_entries,
        columns=columns,
        count=100,
        ack_mode=ack_mode,
    )
    await consumer.start()
    await asyncio.wait_for(done.wait(), 10)
    await consumer.stop()
    assert len(lengths) > 1
    assert sorted(got, key=int) == [b"%d" % i for i in range(sent)]
    assert consumer.stats.acked == (sent if ack_mode is AckMode.AFTER_HANDLER else 0)
    pending: list[Any] = [
        await conn.execute("XPENDING", key, "g") for key in topic.stream_keys
    ]
    assert [summary[0] for summary in pending] == [0, 0, 0]


async def test_run_acks_every_handled_message_and_only_those(
    conn: Connection, redis_url: str
) -> None:
    # More messages than one ack chunk, handlers that yield now and then,
    # one that fails: the rest are acked, the failed one stays pending.
    from aioredismq.client import Client
    from aioredismq.message import Message

    client = await Client.connect(redis_url)
    topic = await client.create_topic("run-acks", 3)
    sent = 1000
    await client.producer(topic).send_many([b"%d" % i for i in range(sent)])
    seen: list[bytes] = []
    done = asyncio.Event()

    async def handle(message: Message) -> None:
        seen.append(message.payload)
        if len(seen) == sent:
            done.set()
        if len(seen) % 7 == 0:
            await asyncio.sleep(0)
        if message.payload == b"500":
            raise ValueError("refused")

    consumer = client.consumer(topic, "g", "c1", concurrency=4)
    runner = asyncio.create_task(consumer.run(handle))
    await asyncio.wait_for(done.wait(), 10)
    await consumer.stop()
    await runner
    assert sorted(seen, key=int) == [b"%d" % i for i in range(sent)]
    assert consumer.stats.acked == sent - 1
    assert sum(await client.pending(topic, "g")) == 1
    await client.close()


async def test_parsing_leaves_the_collectors_switch_as_it_was(
    conn: Connection,
) -> None:
    import gc

    topic = await create_topic(conn, "gc-switch", 1)
    await Producer(conn, topic).send_many([b"x" * 1000] * 2000)
    key = topic.stream_keys[0]
    was = gc.isenabled()
    try:
        for enabled in (True, False, True):
            (gc.enable if enabled else gc.disable)()
            # A reply of thousands of lists, parsed over many reads.
            entries = await conn.execute("XRANGE", key, "-", "+")
            assert len(entries) == 2000
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("columns", [False, True])
async def test_history_with_a_tombstone_in_either_handler_shape(
    conn: Connection, settings: ConnectionSettings, columns: bool
) -> None:
    topic = Topic("hist", 1)
    s = topic.stream_keys[0]
    await conn.execute("XGROUP", "CREATE", s, "g", "$", "MKSTREAM")
    await conn.execute("XADD", s, "1-0", "ts_us", "5", "payload", "v1")
    await conn.execute("XREADGROUP", "GROUP", "g", "c", "STREAMS", s, ">")
    await conn.execute("XADD", s, "MAXLEN", "1", "2-0", "ts_us", "7", "payload", "v2")
    await conn.execute("XREADGROUP", "GROUP", "g", "c", "STREAMS", s, ">")
    await conn.execute("XADD", s, "3-0", "ts_us", "9", "payload", "v3")
    got: list[tuple[bytes, bytes, int]] = []

    def on_entries(partition: int, entries: list[Entry], _: list[int] | None) -> None:
        for entry_id, fields in entries:
            payload, ts_us = entry_payload_ts(fields)
            got.append((entry_id, payload, ts_us))

    def on_batch(batch: Any) -> None:
        got.extend(zip(batch.ids, batch.payloads, batch.timestamps_us(), strict=True))

    handler = on_batch if columns else on_entries
    consumer = GroupConsumer(
        settings, topic, "g", "c", handler, columns=columns, block_ms=20
    )
    await consumer.start()
    async with asyncio.timeout(5):
        while consumer.stats.acked < 3:
            await asyncio.sleep(0.02)
    await consumer.stop()
    # 1-0 was trimmed while pending: acked and counted, never handed over;
    # 2-0 comes from the history, 3-0 as a new entry.
    assert got == [(b"2-0", b"v2", 7), (b"3-0", b"v3", 9)]
    assert consumer.stats.tombstones == 1
    assert (await conn.execute("XPENDING", s, "g"))[0] == 0


async def test_a_batch_keeps_keys_and_headers_and_reads_like_its_entries(
    conn: Connection,
) -> None:

    topic = await create_topic(conn, "batch", 1)
    producer = Producer(conn, topic)
    await producer.send_many([b"a", b"b"])
    plain = await read_all(conn, topic.stream_keys[0])
    await producer.send(b"c", key="k", headers={"h": "1"})
    mixed = await read_all(conn, topic.stream_keys[0])
    for entries in (plain, mixed):
        batch = Batch.from_entries(0, entries, [2] * len(entries))
        assert batch.ids == [i for i, _ in entries]
        assert (batch.payloads, batch.timestamps_us()) == per_entry(entries)
        assert batch.entries() == entries
        expected = [parse_fields(i, 0, f, 2) for i, f in entries]
        assert list(batch.messages()) == expected
        assert len(batch) == len(entries)
    assert Batch.from_entries(0, plain).fields is None
    assert Batch.from_entries(0, mixed).fields is not None
    assert list(Batch.from_entries(0, mixed).messages())[2].key == b"k"


async def test_a_backlog_is_read_ahead_in_stream_order(
    conn: Connection, settings: ConnectionSettings
) -> None:
    # Full reads (COUNT entries from a stream) make the reader send the next
    # reads before handing a batch over: while a handler runs, the group has
    # already given out more than was handed over. Batches must still come
    # in stream order, each entry once, with nothing left pending.
    topic = Topic("ahead", 2)
    sent = 4000
    await Producer(conn, topic).send_many([b"%d" % i for i in range(sent)])
    seen: dict[int, list[bytes]] = {0: [], 1: []}
    read_beyond: list[int] = []
    done = asyncio.Event()

    async def on_batch(batch: Batch) -> None:
        seen[batch.partition].extend(batch.ids)
        if len(read_beyond) < 5:
            await asyncio.sleep(0.02)  # for the server to answer what is sent
            key = topic.stream_keys[batch.partition]
            info = await conn.execute("XINFO", "GROUPS", key)
            fields = dict(zip(info[0][::2], info[0][1::2], strict=True))
            read_beyond.append(fields[b"entries-read"] - len(seen[batch.partition]))
        if sum(map(len, seen.values())) == sent:
            done.set()

    consumer = GroupConsumer(
        settings, topic, "g", "c", on_batch, columns=True, count=50
    )
    await consumer.start()
    await asyncio.wait_for(done.wait(), 10)
    await consumer.stop()
    for partition, ids in seen.items():
        stored = await read_all(conn, topic.stream_keys[partition])
        assert ids == [entry_id for entry_id, _ in stored]
    # Reads ahead have each taken a further 50 entries of the stream (when a
    # read returns one stream's entries only, the next returns the other's).
    assert min(read_beyond) >= 50
    assert max(read_beyond) == READS_AHEAD * 50
    assert consumer.stats.acked == sent
    summaries = [await conn.execute("XPENDING", k, "g") for k in topic.stream_keys]
    assert [summary[0] for summary in summaries] == [0, 0]


async def test_a_stop_during_reads_ahead_hands_over_nothing_more(
    conn: Connection, settings: ConnectionSettings
) -> None:
    # Stopped from its handler while reads are in flight: what they return
    # stays pending, unhandled, and every handled entry is acked.
    topic = Topic("ahead-stop", 1)
    await Producer(conn, topic).send_many([b"x"] * 2000)
    handled: list[bytes] = []
    stopping: list[asyncio.Task[None]] = []

    def on_batch(batch: Batch) -> None:
        handled.extend(batch.ids)
        if len(handled) >= 300 and not stopping:
            stopping.append(asyncio.create_task(consumer.stop()))

    consumer = GroupConsumer(
        settings, topic, "g", "c", on_batch, columns=True, count=100
    )
    await consumer.start()
    while not stopping:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(stopping[0], 5)
    count_after_stop = len(handled)
    await asyncio.sleep(0.2)
    assert len(handled) == count_after_stop
    assert consumer.stats.acked == len(handled)
    (pending, *_) = await conn.execute("XPENDING", topic.stream_keys[0], "g")
    (info,) = await conn.execute("XINFO", "GROUPS", topic.stream_keys[0])
    fields = dict(zip(info[::2], info[1::2], strict=True))
    # Read by the group: what was handled (acked) and what reads ahead got.
    assert pending == fields[b"entries-read"] - len(handled) > 0


async def test_reads_ahead_do_not_block_when_the_backlog_ends(
    conn: Connection, settings: ConnectionSettings
) -> None:
    # Reads sent ahead at the end of a backlog find nothing; they return at
    # once (no BLOCK), so the last acks go out with the next read instead of
    # waiting for the block time of each.
    topic = Topic("ahead-end", 1)
    sent = 1000
    await Producer(conn, topic).send_many([b"x"] * sent)
    handled: list[bytes] = []

    def on_batch(batch: Batch) -> None:
        handled.extend(batch.ids)

    consumer = GroupConsumer(
        settings, topic, "g", "c", on_batch, columns=True, count=100, block_ms=3000
    )
    await consumer.start()
    try:
        async with asyncio.timeout(5):
            while len(handled) < sent:
                await asyncio.sleep(0.01)
        async with asyncio.timeout(1):
            while (await conn.execute("XPENDING", topic.stream_keys[0], "g"))[0]:
                await asyncio.sleep(0.01)
    finally:
        await consumer.stop()
    assert consumer.stats.acked == sent
