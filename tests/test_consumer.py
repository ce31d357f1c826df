"""The consumer side of the core against a real server (its pitfall cases
are in test_pitfalls_core.py)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis

from aioredismq.client import ACK_CHUNK, TURN_MESSAGES, Client, Consumer
from aioredismq.connection import Connection
from aioredismq.consumer import AckMode
from aioredismq.errors import (
    ClosedError,
    ConfigError,
    RedisConnectionError,
    ReplyError,
)
from aioredismq.keys import dead_letter_key
from aioredismq.message import Message
from aioredismq.topic import Topic


@pytest.fixture
async def client(conn: Connection, redis_url: str) -> AsyncIterator[Client]:
    client = await Client.connect(redis_url)
    yield client
    await client.close()


async def kill_other_clients(conn: Connection) -> None:
    """Close every server connection but `conn`'s, as a lost network would."""
    own_id = await conn.execute("CLIENT", "ID")
    listing = (await conn.execute("CLIENT", "LIST")).decode().splitlines()
    for line in listing:
        client_id = int(line.split("id=")[1].split()[0])
        if client_id != own_id:
            await conn.execute("CLIENT", "KILL", "ID", client_id)


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
    shown = repr(consumer.stats)
    assert shown.startswith("ConsumerStats(delivered=")
    assert "dead_lettered=1, " in shown


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


async def test_subscriber_from_an_entry_id_reads_what_follows_it(
    client: Client,
) -> None:
    topic = await client.create_topic("fan-id", 1)
    producer = client.producer(topic)
    ids = [await producer.send(b"%d" % i) for i in range(3)]
    subscriber = client.subscriber(topic, start=ids[0].decode(), block_ms=20)
    got = [m.payload for m in await subscriber.read()]
    await subscriber.stop()
    assert got == [b"1", b"2"]


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda c, t: c.consumer(t, "g", "c", prefetch=0), "prefetch: 0 is not"),
        (lambda c, t: c.consumer(t, "g", "c", concurrency=-1), "concurrency: -1"),
        (lambda c, t: c.consumer(t, "g", "c", start_id="first"), "start_id: 'first'"),
        (lambda c, t: c.subscriber(t, count=0), "subscriber: count: 0 is not"),
        (lambda c, t: c.subscriber(t, block_ms=-1), "subscriber: block_ms: -1"),
        (lambda c, t: c.subscriber(t, start="latest"), "start: 'latest'"),
        (lambda c, t: c.subscriber(t, start="1-2-3"), "start: '1-2-3'"),
        (lambda c, t: c.consumer(t, "g", "c", ack_mode="auto"), "ack_mode: 'auto'"),
        (lambda c, t: c.consumer(t, "g", "c", prefetch="5"), "prefetch: '5' is not"),
        (lambda c, t: c.producer(t, max_in_flight="9"), "max_in_flight: '9' is"),
        (lambda c, t: c.producer(t, batch_max=1.5), "batch_max: 1.5 is not"),
        (lambda c, t: c.producer(t, retries=-1), "retries: -1 is not allowed"),
        (lambda c, t: c.producer(t, capacity_timeout_s="1"), "capacity_timeout_s"),
        (lambda c, t: Topic("{orders}", 2), "name: '{orders}' is not"),
        (lambda c, t: Topic("", 2), "name: '' is not"),
        (
            lambda c, t: Topic("t", "3"),  # type: ignore[arg-type]
            "partitions: '3' is not",
        ),
    ],
)
async def test_options_refused_at_construction_name_themselves(
    client: Client, make: Callable[[Client, Topic], object], error: str
) -> None:
    topic = await client.create_topic("opts", 2)
    with pytest.raises(ConfigError, match=error):
        make(client, topic)


@pytest.mark.parametrize(
    ("style", "concurrency", "tick_s"),
    [("run", 1, 0), ("run", 10, 0), ("iterator", 1, 0), ("run", 10, 0.0001)],
)
async def test_handlers_that_never_suspend_still_let_other_tasks_run(
    client: Client, style: str, concurrency: int, tick_s: float
) -> None:
    # One read brings 1,000 messages; handlers that never await would hold
    # the loop for all of them. A ticker counts the loop's turns: each
    # message notes the count it saw, so the distinct counts are the turns
    # other tasks got while the batch was handled.
    topic = await client.create_topic("hog", 1)
    producer = client.producer(topic)
    await producer.send_many([b"%d" % i for i in range(1000)])
    consumer = client.consumer(topic, "g", "c1", prefetch=1000, concurrency=concurrency)
    ticks = 0
    seen: list[int] = []

    async def ticker() -> None:
        # With tick_s > 0 it waits on a timer, which becomes a task step
        # only a loop pass after it fires.
        nonlocal ticks
        while True:
            await asyncio.sleep(tick_s)
            ticks += 1

    async def handle(message: Message) -> None:
        seen.append(ticks)
        until = time.perf_counter() + tick_s / 4  # keeps the timer due
        while time.perf_counter() < until:
            pass

    ticking = asyncio.create_task(ticker())
    try:
        async with asyncio.timeout(10):
            if style == "run":
                running = asyncio.create_task(consumer.run(handle))
                while len(seen) < 1000:
                    await asyncio.sleep(0.01)
                await consumer.stop()
                await running
            else:
                async for message in consumer:
                    await handle(message)
                    if len(seen) == 1000:
                        break
                await consumer.stop()
    finally:
        ticking.cancel()
    assert len(seen) == 1000
    assert len(set(seen)) >= 1000 // TURN_MESSAGES


@pytest.mark.parametrize("style", ["run", "iterator"])
async def test_an_error_that_ends_reading_is_raised_not_hidden(
    client: Client, conn: Connection, style: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await client.create_topic("clobbered", 1)
    producer = client.producer(topic)
    await producer.send(b"before")
    consumer = client.consumer(topic, "g", "c1", block_ms=20)
    got: list[bytes] = []

    async def handle(message: Message) -> None:
        got.append(message.payload)
        if len(got) == 1:
            # The partition's key becomes a string in one step: every read
            # from now on is refused with WRONGTYPE, which no retry mends.
            key = topic.stream_keys[0]
            await conn.execute("MULTI")
            await conn.execute("DEL", key)
            await conn.execute("SET", key, "not a stream")
            await conn.execute("EXEC")

    with pytest.raises(ReplyError, match="WRONGTYPE"):
        async with asyncio.timeout(5):
            if style == "run":
                await consumer.run(handle)
            else:
                async for message in consumer:
                    await handle(message)
    await consumer.stop()
    assert got == [b"before"]
    del consumer
    gc.collect()  # a task whose error nobody read complains when collected
    assert "never retrieved" not in caplog.text


BUSY_FOR_S = """
    local start = redis.call("TIME")
    local now = start
    while (now[1] - start[1]) * 1000000 + (now[2] - start[2]) < ARGV[1] * 1000000 do
        now = redis.call("TIME")
    end
    return 1
"""


async def test_a_busy_server_is_waited_out(
    client: Client, conn: Connection, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A script that runs for a second: past busy-reply-threshold, every other
    # command gets a BUSY error reply until it ends. The handler of the first
    # message starts it; with prefetch 1 the reader sends its next read (and
    # the ack) only when that handler returns, into the busy server.
    topic = await client.create_topic("busy", 1)
    producer = client.producer(topic, retries=5)
    consumer = client.consumer(
        topic, "g", "c1", prefetch=1, block_ms=10, claim_idle_ms=None
    )
    script = redis.Redis.from_url(redis_url)
    got: list[bytes] = []
    busy: list[asyncio.Future[Any]] = []

    async def handle(message: Message) -> None:
        got.append(message.payload)
        if not busy:
            busy.append(asyncio.ensure_future(
                asyncio.to_thread(script.eval, BUSY_FOR_S, 0, 1)
            ))  # fmt: skip
            await asyncio.sleep(0.2)

    await conn.execute("CONFIG", "SET", "busy-reply-threshold", 20)
    running = asyncio.create_task(consumer.run(handle))
    try:
        await producer.send(b"before")
        async with asyncio.timeout(10):
            while not busy:
                await asyncio.sleep(0.01)
            # Sent while the script runs: the producer asks again until the
            # server takes it (its retries' back-off adds up to 3.1 s).
            await asyncio.sleep(0.1)
            await producer.send(b"after")
            assert busy[0].done()
            while b"after" not in got:
                await asyncio.sleep(0.01)
    finally:
        if busy:
            await busy[0]
        script.close()
        await conn.execute("CONFIG", "SET", "busy-reply-threshold", 5000)
        await consumer.stop()
        await running
    assert "BUSY" in caplog.text and "reading again" in caplog.text
    assert await client.stream_lengths(topic) == [2]  # "after" stored once
    # The ack that met the busy server is lost with it: the message comes
    # again from the consumer's own history (at least once), then is acked.
    assert got[0] == b"before" and got[-1] == b"after"
    assert set(got) == {b"before", b"after"}
    assert await client.pending(topic, "g") == [0]


@pytest.mark.parametrize("mode", ["manual", "none"])
async def test_an_ack_mode_by_its_value(client: Client, mode: str) -> None:
    topic = await client.create_topic("modes", 1)
    await client.producer(topic).send(b"x")
    consumer = client.consumer(topic, "g", "c1", ack_mode=mode)
    await collect(consumer, 1)
    await consumer.stop()
    # Manual: not acked, so pending; none (NOACK): never pending.
    assert await client.pending(topic, "g") == [1 if mode == "manual" else 0]


async def test_admin_errors_are_the_servers_not_a_crash(client: Client) -> None:
    topic = await client.create_topic("adm-err", 1)
    with pytest.raises(ReplyError, match="MAXLEN"):
        await client.trim(topic, maxlen=-1)
    with pytest.raises(ReplyError, match="Invalid stream ID"):
        await client.trim(topic, min_id="abc")
    await client.connection.execute("SET", topic.stream_keys[0], "text")
    with pytest.raises(ReplyError, match="WRONGTYPE"):
        await client.stream_lengths(topic)


async def test_a_handler_that_is_not_async_is_refused_loudly(
    client: Client,
) -> None:
    topic = await client.create_topic("sync", 1)
    await client.producer(topic).send_many([b"x", b"y", b"z"])
    consumer = client.consumer(topic, "g", "c1", concurrency=3)
    calls: list[bytes] = []

    def handle(message: Message) -> None:
        calls.append(message.payload)

    with pytest.raises(TypeError, match=r"returned NoneType, not an awaitable"):
        async with asyncio.timeout(5):
            await consumer.run(handle)  # type: ignore[arg-type]
    await consumer.stop()
    assert calls == [b"x"]  # once, though three handler tasks ran
    assert await client.pending(topic, "g") == [3]  # none acked as handled

    # A plain function that returns a coroutine is an async handler too.
    async def later(message: Message) -> None:
        calls.append(message.payload)

    again = client.consumer(topic, "g", "c1", claim_idle_ms=None)
    running = asyncio.create_task(again.run(lambda message: later(message)))
    async with asyncio.timeout(5):
        while len(calls) < 4:
            await asyncio.sleep(0.01)
    await again.stop()
    await running
    assert await client.pending(topic, "g") == [0]


async def test_a_closed_client_makes_nothing_more(redis_url: str) -> None:
    client = await Client.connect(redis_url)
    topic = await client.create_topic("closed", 1)
    await client.close()
    with pytest.raises(ClosedError, match="client is closed"):
        client.consumer(topic, "g", "c1")
    with pytest.raises(ClosedError, match="client is closed"):
        client.producer(topic)
    with pytest.raises(ClosedError, match="client is closed"):
        client.subscriber(topic)


async def test_stop_called_by_a_handler(client: Client) -> None:
    # The handler that stops the consumer is not waited for (it waits for
    # stop); what was handled before it is acked, the rest stays pending.
    topic = await client.create_topic("self-stop", 1)
    await client.producer(topic).send_many([b"%d" % i for i in range(20)])
    consumer = client.consumer(topic, "g", "c1", concurrency=1)
    handled: list[bytes] = []
    stop_s: list[float] = []

    async def handle(message: Message) -> None:
        handled.append(message.payload)
        if len(handled) == 5:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await consumer.stop(timeout_s=5)
            stop_s.append(loop.time() - started)

    async with asyncio.timeout(10):
        await consumer.run(handle)
    assert handled == [b"%d" % i for i in range(5)]
    assert stop_s and stop_s[0] < 2
    # The four before the stopping one were acked; it and the rest pending.
    assert await client.pending(topic, "g") == [16]


async def test_a_second_stop_waits_for_the_first(client: Client) -> None:
    topic = await client.create_topic("two-stops", 1)
    await client.producer(topic).send(b"x")
    consumer = client.consumer(topic, "g", "c1")
    release = asyncio.Event()
    started = asyncio.Event()

    async def handle(message: Message) -> None:
        started.set()
        await release.wait()

    running = asyncio.create_task(consumer.run(handle))
    await started.wait()
    first = asyncio.create_task(consumer.stop(timeout_s=5))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(consumer.stop(timeout_s=5))
    await asyncio.sleep(0.1)
    assert not second.done()  # the handler still runs
    release.set()
    async with asyncio.timeout(5):
        await asyncio.gather(first, second, running)
    assert await client.pending(topic, "g") == [0]


async def test_ack_refuses_what_is_no_message_of_the_topic(client: Client) -> None:
    topic = await client.create_topic("bad-ack", 2)
    await client.producer(topic).send_many([b"a", b"b"])
    consumer = client.consumer(topic, "g", "c1", ack_mode="manual")
    got = await collect(consumer, 2)
    for bad in (
        Message(b"garbage", 0, b""),
        Message(got[0].id, 7, b""),
        Message(got[0].id, -1, b""),
    ):
        with pytest.raises(ValueError, match="no message to ack"):
            await consumer.ack(bad)
    for message in got:
        await consumer.ack(message)
    await consumer.stop()
    assert await client.pending(topic, "g") == [0, 0]


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
    await kill_other_clients(conn)

    await producer.send(b"after")  # reconnects and sends
    got = await collect(consumer, 1, timeout_s=10)
    await consumer.stop()
    assert [m.payload for m in got] == [b"after"]


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


async def test_subscriber_reconnects_and_goes_on_from_its_cursors(
    client: Client, conn: Connection
) -> None:
    topic = await client.create_topic("fan-lost", 2)
    producer = client.producer(topic)
    subscriber = client.subscriber(topic, block_ms=20)
    await subscriber.start()
    await producer.send(b"a")
    got = [m.payload for m in await subscriber.read()]
    await kill_other_clients(conn)
    # Published while the subscriber has no connection: still read, once.
    await producer.send(b"b")
    await producer.send(b"c")
    async with asyncio.timeout(10):
        while len(got) < 3:
            got += [m.payload for m in await subscriber.read()]
    await subscriber.stop()
    assert got == [b"a", b"b", b"c"]


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


async def test_stop_lets_running_handlers_finish_and_releases_the_rest(
    client: Client,
) -> None:
    # 40 messages fetched at once, two handlers at a time, each taking a
    # while: a stop ends the two running ones, hands out nothing more, and
    # leaves every message not handled pending; a later start gets them.
    topic = await client.create_topic("release", 1)
    await client.producer(topic).send_many([b"%d" % i for i in range(40)])
    handled: list[bytes] = []
    started = asyncio.Event()

    async def slow(message: Message) -> None:
        started.set()
        await asyncio.sleep(0.2)
        handled.append(message.payload)

    consumer = client.consumer(topic, "g", "c1", prefetch=40, concurrency=2)
    runner = asyncio.create_task(consumer.run(slow))
    await started.wait()
    await consumer.stop(timeout_s=5)
    await runner
    assert len(handled) == 2
    assert await client.pending(topic, "g") == [38]
    # The iterator ends too, without handing out what it had fetched.
    assert [m async for m in consumer] == []
    again = client.consumer(topic, "g", "c1")
    rest = await collect(again, 38)
    await again.stop()
    assert sorted(handled + [m.payload for m in rest], key=int) == [
        b"%d" % i for i in range(40)
    ]
    # All acked but the one `collect` broke out of the loop on (see
    # `Consumer.__anext__`).
    assert await client.pending(topic, "g") == [1]


async def test_a_start_that_fails_leaves_no_connection_open(
    client: Client, conn: Connection
) -> None:
    # The topic's key holds a string, so the group cannot be made.
    topic = Topic("not-a-stream", 1)
    await conn.execute("SET", topic.stream_keys[0], "x")
    listing: bytes = await conn.execute("CLIENT", "LIST")
    before = len(listing.splitlines())
    consumer = client.consumer(topic, "g", "c1")
    with pytest.raises(ReplyError, match="WRONGTYPE"):
        await consumer.start()
    listing = await conn.execute("CLIENT", "LIST")
    assert len(listing.splitlines()) == before


async def test_send_many_reopens_a_lost_connection_for_the_next_batch(
    client: Client, conn: Connection
) -> None:
    # send_many does not retry (a batch may already be stored), but a batch
    # that fails on a lost connection has it reopened in the background, so
    # the caller's next batch goes through without a `send` in between.
    topic = await client.create_topic("lost-many", 2)
    producer = client.producer(topic)
    await producer.send_many([b"before"] * 10)
    await kill_other_clients(conn)
    with pytest.raises(RedisConnectionError):
        await producer.send_many([b"lost"] * 10)
    async with asyncio.timeout(5):
        while True:
            try:
                replies = await producer.send_many([b"after"] * 10)
                break
            except RedisConnectionError:
                await asyncio.sleep(0.05)
    assert all(isinstance(reply, bytes) for reply in replies)
    lengths = [await conn.execute("XLEN", key) for key in topic.stream_keys]
    assert sum(lengths) == 20
    await producer.close()


async def test_the_ack_that_makes_room_sends_the_next_read(
    client: Client, redis_url: str
) -> None:
    # A handler that never suspends keeps the event loop to itself until the
    # batch is done; the next read must still go out as soon as an ack makes
    # room, so the server prepares it meanwhile. Seen from a second, blocking
    # connection while the handler still holds the loop: the group's pending
    # count grows by the next read while the first batch is in the handler.
    topic = await client.create_topic("room", 1)
    await client.producer(topic).send_many([b"%d" % i for i in range(300)])
    seen: list[int] = []
    done = asyncio.Event()
    observer = redis.Redis.from_url(redis_url)

    def pending() -> int:
        summary: Any = observer.xpending(topic.stream_keys[0], "g")
        return int(summary["pending"])

    async def handler(message: Message) -> None:
        index = int(message.payload)
        if index == ACK_CHUNK + 10:
            # The first ACK_CHUNK are acked; the read sent with those acks
            # leaves 100 - ACK_CHUNK of the first read and 100 more pending.
            deadline = time.monotonic() + 5
            while pending() == 100 and time.monotonic() < deadline:
                time.sleep(0.001)
            seen.append(pending())
        if index == 299:
            done.set()

    consumer = client.consumer(topic, "g", "c1", prefetch=100, concurrency=1)
    runner = asyncio.create_task(consumer.run(handler))
    try:
        async with asyncio.timeout(10):
            await done.wait()
    finally:
        await consumer.stop()
        await runner
        observer.close()
    assert seen == [100 - ACK_CHUNK + 100]
