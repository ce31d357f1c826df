"""The consumer side of the core against a real server, pitfalls included."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from aioredismq.client import Client, Consumer
from aioredismq.connection import Connection, ConnectionSettings
from aioredismq.consumer import AckMode, GroupConsumer, create_group
from aioredismq.errors import ClosedError
from aioredismq.keys import dead_letter_key
from aioredismq.message import Message
from aioredismq.topic import Topic


@pytest.fixture
async def client(conn: Connection, redis_url: str) -> AsyncIterator[Client]:
    client = await Client.connect(redis_url)
    yield client
    await client.close()


async def collect(
    consumer: Consumer, count: int, timeout_s: float = 5
) -> list[Message]:
    got: list[Message] = []
    async with asyncio.timeout(timeout_s):
        async for message in consumer:
            got.append(message)
            if len(got) == count:
                break
    return got


async def run_until_dead_lettered(
    client: Client,
    topic: Topic,
    handler: Callable[[Message], Awaitable[None]],
    max_deliveries: int,
) -> Consumer:
    """Run a quickly-retrying consumer until a dead letter appears; stop it."""
    consumer = client.consumer(
        topic,
        "g",
        "c1",
        claim_idle_ms=50,
        claim_interval_ms=50,
        max_deliveries=max_deliveries,
    )
    runner = asyncio.create_task(consumer.run(handler))
    async with asyncio.timeout(5):
        while consumer.stats.dead_lettered == 0:
            await asyncio.sleep(0.05)
    await consumer.stop()
    await runner
    return consumer


async def test_iterate_and_ack_after_each_message(client: Client) -> None:
    topic = await client.create_topic("it", 3)
    producer = client.producer(topic)
    for i in range(30):
        await producer.send(b"%d" % i, headers={"trace": f"t{i}"})
    consumer = client.consumer(topic, "g", "c1")
    got = await collect(consumer, 30)
    await consumer.stop()
    assert sorted(int(m.payload) for m in got) == list(range(30))
    assert all(m.headers[b"trace"] == b"t" + m.payload for m in got)
    # The last message is acked only when the loop asks for the next one, so
    # at most one stays pending after the loop was left early.
    assert sum(await client.pending(topic, "g")) <= 1
    assert consumer.stats.delivered == 30


async def test_failed_messages_are_retried_then_dead_lettered(client: Client) -> None:
    topic = await client.create_topic("dl", 1)
    producer = client.producer(topic)
    await producer.send(b"good")
    await producer.send(b"bad")
    seen: list[tuple[bytes, int]] = []

    async def handler(message: Message) -> None:
        seen.append((message.payload, message.deliveries))
        if message.payload == b"bad":
            raise ValueError("cannot handle bad")

    consumer = await run_until_dead_lettered(client, topic, handler, 2)
    dead_key = dead_letter_key("dl", 0)

    assert (b"good", 1) in seen
    assert [d for p, d in seen if p == b"bad"] == [1, 2]
    (entry,) = await client.connection.execute("XRANGE", dead_key, "-", "+")
    fields = dict(zip(entry[1][::2], entry[1][1::2], strict=True))
    assert fields[b"payload"] == b"bad"
    assert fields[b"origin-partition"] == b"0"
    assert fields[b"origin-group"] == b"g"
    assert fields[b"deliveries"] == b"3"
    assert fields[b"last-error"] == b"cannot handle bad"
    assert await client.pending(topic, "g") == [0]
    assert consumer.stats.dead_lettered == 1


async def test_manual_mode_leaves_unacked_messages_pending(client: Client) -> None:
    topic = await client.create_topic("manual", 1)
    producer = client.producer(topic)
    for i in range(4):
        await producer.send(b"%d" % i)
    consumer = client.consumer(topic, "g", "c1", ack_mode=AckMode.MANUAL)
    got = await collect(consumer, 4)
    await consumer.ack(got[0])
    await consumer.ack(got[1])
    await consumer.stop()
    assert await client.pending(topic, "g") == [2]


async def test_noack_mode_keeps_nothing_pending(client: Client) -> None:
    topic = await client.create_topic("noack", 2)
    producer = client.producer(topic)
    for i in range(6):
        await producer.send(b"%d" % i)
    consumer = client.consumer(topic, "g", "c1", ack_mode=AckMode.NONE)
    await collect(consumer, 6)
    await consumer.stop()
    assert await client.pending(topic, "g") == [0, 0]


async def test_restart_drains_own_history_first(client: Client) -> None:
    topic = await client.create_topic("hist", 1)
    producer = client.producer(topic)
    for i in range(3):
        await producer.send(b"%d" % i)
    first = client.consumer(topic, "g", "same", ack_mode=AckMode.MANUAL)
    await collect(first, 3)
    await first.stop()  # nothing acked
    await producer.send(b"3")
    second = client.consumer(topic, "g", "same")
    got = await collect(second, 4)
    await second.stop()
    assert [m.payload for m in got] == [b"0", b"1", b"2", b"3"]


async def test_pitfall_b03_trimmed_pending_entries_become_tombstones(
    conn: Connection, settings: ConnectionSettings
) -> None:
    topic = Topic("b03", 1)
    key = topic.stream_keys[0]
    await conn.execute("XGROUP", "CREATE", key, "g", "$", "MKSTREAM")
    await conn.execute("XADD", key, "1-0", "f", "v1")
    await conn.execute("XREADGROUP", "GROUP", "g", "c", "STREAMS", key, ">")
    await conn.execute("XADD", key, "MAXLEN", "1", "2-0", "f", "v2")
    await conn.execute("XREADGROUP", "GROUP", "g", "c", "STREAMS", key, ">")
    history = await conn.execute("XREADGROUP", "GROUP", "g", "c", "STREAMS", key, "0")
    assert [entry[0] for entry in history[0][1]] == [b"1-0", b"2-0"]
    assert history[0][1][0][1] is None

    handled: list[list[bytes]] = []
    consumer = GroupConsumer(
        settings, topic, "g", "c",
        lambda p, entries, d: handled.append([e[0] for e in entries]),
        block_ms=20,
    )  # fmt: skip
    await consumer.start()
    async with asyncio.timeout(5):
        while consumer.stats.acked < 2:
            await asyncio.sleep(0.02)
    await consumer.stop()
    assert handled == [[b"2-0"]]
    assert consumer.stats.tombstones == 1
    assert (await conn.execute("XPENDING", key, "g"))[0] == 0


def _create_group_in_process(url: str, barrier_path: str) -> None:
    async def main() -> None:
        conn = await Connection.open(ConnectionSettings.from_url(url))
        await create_group(conn, ["b04"], "g", "0")
        await conn.close()

    asyncio.run(main())


async def test_pitfall_b04_many_processes_create_one_group(
    conn: Connection, redis_url: str, settings: ConnectionSettings
) -> None:
    context = multiprocessing.get_context("spawn")
    procs = [
        context.Process(target=_create_group_in_process, args=(redis_url, ""))
        for _ in range(8)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0] * 8
    assert len(await conn.execute("XINFO", "GROUPS", "b04")) == 1

    # The start id applies only on creation: "$" later moves nothing.
    for i in range(100):
        await conn.execute("XADD", "b04", "*", "n", i)
    await conn.execute(
        "XREADGROUP", "GROUP", "g", "c", "COUNT", "40", "STREAMS", "b04", ">"
    )
    await create_group(conn, ["b04"], "g", "$")
    rest = await conn.execute("XREADGROUP", "GROUP", "g", "c", "STREAMS", "b04", ">")
    assert len(rest[0][1]) == 60

    await conn.execute("SET", "b04-string", "x")
    with pytest.raises(Exception, match="WRONGTYPE"):
        await create_group(conn, ["b04-string"], "g")


async def test_pitfall_b05_deleted_stream_recreates_group(
    conn: Connection, settings: ConnectionSettings
) -> None:
    topic = Topic("b05", 1)
    got: list[bytes] = []
    consumer = GroupConsumer(
        settings, topic, "g", "c",
        lambda p, entries, d: got.extend(e[1][1] for e in entries),
        block_ms=200,
    )  # fmt: skip
    await consumer.start()
    await asyncio.sleep(0.3)
    await conn.execute("DEL", topic.stream_keys[0])
    await asyncio.sleep(1.5)
    # The group is back (recreated from the start of an empty stream) ...
    groups = await conn.execute("XINFO", "GROUPS", topic.stream_keys[0])
    assert len(groups) == 1
    await conn.execute("XADD", topic.stream_keys[0], "*", "payload", "after")
    async with asyncio.timeout(3):
        while not got:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    await consumer.stop()
    assert got == [b"after"]  # ... and the new entry arrives exactly once


async def test_pitfall_b09_blocking_read_without_socket_timeout(
    conn: Connection, settings: ConnectionSettings
) -> None:
    topic = Topic("b09", 1)
    reads: list[float] = []
    consumer = GroupConsumer(
        settings, topic, "g", "c", lambda p, e, d: None, block_ms=1500
    )
    await consumer.start()
    started = time.monotonic()
    await asyncio.sleep(0.2)
    await conn.execute("XADD", topic.stream_keys[0], "*", "payload", "x")
    async with asyncio.timeout(3):
        while consumer.stats.delivered < 1:
            await asyncio.sleep(0.01)
    reads.append(time.monotonic() - started)
    await consumer.stop()
    assert reads[0] < 1.0  # woken by the entry, not by a timeout


async def test_pitfall_b11_many_concurrent_calls_on_one_connection(
    conn: Connection,
) -> None:
    sets = [conn.execute("SET", f"k{i}", i) for i in range(100)]
    adds = [conn.execute("XADD", "b11", "*", "n", i) for i in range(100)]
    results = await asyncio.gather(*sets, *adds)
    assert results[:100] == [b"OK"] * 100
    assert await conn.execute("XLEN", "b11") == 100


async def test_subscriber_misses_nothing_between_reads(client: Client) -> None:
    topic = await client.create_topic("fan", 2)
    producer = client.producer(topic)
    await producer.send(b"before")
    subscriber = client.subscriber(topic, block_ms=20)
    assert await subscriber.read() == []
    for i in range(10):
        await producer.send(b"%d" % i)
    got: list[bytes] = []
    async with asyncio.timeout(3):
        while len(got) < 10:
            got += [m.payload for m in await subscriber.read()]
    await subscriber.stop()
    assert sorted(got) == sorted(b"%d" % i for i in range(10))


async def test_admin_surface(client: Client) -> None:
    topic = await client.create_topic("adm", 2)
    producer = client.producer(topic)
    for i in range(6):
        await producer.send(b"%d" % i)
    assert await client.stream_lengths(topic) == [3, 3]
    assert "adm" in await client.list_topics()
    consumer = client.consumer(topic, "g", "c1", ack_mode=AckMode.MANUAL)
    await collect(consumer, 6)
    assert await client.pending(topic, "g") == [3, 3]
    assert await client.lag(topic, "g") == [0, 0]
    infos = await client.consumers(topic, "g")
    assert infos[0][0]["name"] == b"c1"
    await consumer.stop()
    assert await client.trim(topic, maxlen=1) == 4
    assert await client.stream_lengths(topic) == [1, 1]


async def test_producer_and_consumer_survive_a_lost_connection(
    client: Client, conn: Connection
) -> None:
    topic = await client.create_topic("lost", 2)
    producer = client.producer(topic)
    consumer = client.consumer(topic, "g", "c1", block_ms=50)
    await producer.send(b"before")
    assert [m.payload for m in await collect(consumer, 1)] == [b"before"]

    # Every connection but the test's own goes: producer's, reader's, side.
    own_id = await conn.execute("CLIENT", "ID")
    listing = (await conn.execute("CLIENT", "LIST")).decode().splitlines()
    for line in listing:
        client_id = int(line.split("id=")[1].split()[0])
        if client_id != own_id:
            await conn.execute("CLIENT", "KILL", "ID", client_id)

    await producer.send(b"after")  # reconnects and sends
    got = await collect(consumer, 1, timeout_s=10)
    await consumer.stop()
    assert [m.payload for m in got] == [b"after"]


async def test_pitfall_b13_undecodable_text_is_dead_lettered(client: Client) -> None:
    topic = await client.create_topic("b13", 1)
    producer = client.producer(topic)
    await producer.send(b"\xc3\x28")  # not UTF-8
    await producer.send(b"fine")
    texts: list[str] = []

    async def as_text(message: Message) -> None:
        texts.append(message.text())

    await run_until_dead_lettered(client, topic, as_text, 1)
    dead_key = dead_letter_key("b13", 0)
    assert texts == ["fine"]
    (entry,) = await client.connection.execute("XRANGE", dead_key, "-", "+")
    assert entry[1][entry[1].index(b"payload") + 1] == b"\xc3\x28"
    assert await client.pending(topic, "g") == [0]


async def test_pitfall_b08_blocking_reads_never_hold_up_other_commands(
    client: Client,
) -> None:
    topic = await client.create_topic("b08", 4)
    # Four members blocking for 5 s at a time on an idle topic ...
    idle = [client.consumer(topic, "g", f"idle-{i}", block_ms=5000) for i in range(4)]
    for consumer in idle:
        await consumer.start()
    await asyncio.sleep(0.1)
    # ... while another task adds and acks every 20 ms on the shared connection.
    other = await client.create_topic("b08-busy", 1)
    producer = client.producer(other)
    await client.connection.execute(
        "XGROUP", "CREATE", "{b08-busy:0}", "h", "$", "MKSTREAM"
    )
    latencies_s: list[float] = []
    for _ in range(50):
        started = time.monotonic()
        entry_id = await producer.send(b"x")
        await client.connection.execute("XACK", "{b08-busy:0}", "h", entry_id)
        latencies_s.append(time.monotonic() - started)
        await asyncio.sleep(0.02)
    await asyncio.gather(*(consumer.stop() for consumer in idle))
    latencies_s.sort()
    assert latencies_s[int(len(latencies_s) * 0.99) - 1] < 0.05


async def test_dead_letters_api_and_acks_after_stop(client: Client) -> None:
    topic = await client.create_topic("dlapi", 2)
    producer = client.producer(topic)
    await producer.send(b"poison", key="p")

    async def fail(message: Message) -> None:
        raise KeyError("missing field")

    consumer = await run_until_dead_lettered(client, topic, fail, 1)
    ((message, origin),) = await client.dead_letters(topic)
    assert message.payload == b"poison"
    assert message.key == b"p"
    assert origin["origin-group"] == b"g"
    assert origin["last-error"] == b"'missing field'"
    with pytest.raises(ClosedError):
        await consumer.ack(message)


async def test_subscriber_as_a_context_manager_starts_at_the_end(
    client: Client,
) -> None:
    topic = await client.create_topic("fan-cm", 1)
    producer = client.producer(topic)
    await producer.send(b"old")
    async with client.subscriber(topic, block_ms=20) as subscriber:
        await producer.send(b"new")
        got: list[bytes] = []
        async with asyncio.timeout(3):
            while not got:
                got = [m.payload for m in await subscriber.read()]
    assert got == [b"new"]
