"""Known failures of Redis Streams clients, each turned into a test of the core.

Every test runs one case's input against a real server and asserts what
that case expects; the comment above each test names the case and says where
the input had to be adapted to the library's terms (a topic partition is a
stream, a `Consumer` is a group member with its own loop).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from aioredismq.client import Client, Consumer
from aioredismq.cluster import key_slot
from aioredismq.connection import (
    Connection,
    ConnectionSettings,
    block_wait_s,
    encode_command,
)
from aioredismq.errors import (
    BusyGroupError,
    CapacityTimeoutError,
    ConfigError,
    RedisConnectionError,
    ReplyError,
    ReplyTimeoutError,
)
from aioredismq.keys import dead_letter_key
from aioredismq.message import Message
from aioredismq.topic import Topic

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def client(conn: Connection, redis_url: str) -> AsyncIterator[Client]:
    client = await Client.connect(redis_url)
    yield client
    await client.close()


async def client_list(conn: Connection) -> dict[int, dict[str, str]]:
    """CLIENT LIST as {id: {field: value}}."""
    listing = (await conn.execute("CLIENT", "LIST")).decode()
    clients = {}
    for line in listing.splitlines():
        fields = dict(item.split("=", 1) for item in line.split())
        clients[int(fields["id"])] = fields
    return clients


async def info(conn: Connection, section: str) -> dict[str, str]:
    text = (await conn.execute("INFO", section)).decode()
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return dict(pairs)


async def named(conn: Connection, name: str) -> dict[int, dict[str, str]]:
    """The connections called `name` (a client's `client_name`), by id."""
    clients = await client_list(conn)
    return {i: fields for i, fields in clients.items() if fields["name"] == name}


async def wait_until_blocked(
    conn: Connection, client_id: int, timeout_s: float = 5
) -> None:
    """Return once connection `client_id` is blocked in a read."""
    async with asyncio.timeout(timeout_s):
        while "b" not in (await client_list(conn))[client_id]["flags"]:
            await asyncio.sleep(0.02)


async def blocked_named(
    conn: Connection, name: str, count: int, timeout_s: float = 5
) -> set[int]:
    """Ids of the connections called `name` blocked in a read, once `count` are."""
    async with asyncio.timeout(timeout_s):
        while True:
            blocked = {
                client_id
                for client_id, fields in (await named(conn, name)).items()
                if "b" in fields["flags"]
            }
            if len(blocked) >= count:
                return blocked
            await asyncio.sleep(0.02)


def commands_run(
    before: dict[int, dict[str, str]], after: dict[int, dict[str, str]]
) -> int:
    """Commands run between two listings of the same connections."""
    assert after.keys() == before.keys(), "a connection was dropped or added"
    return sum(int(after[i]["tot-cmds"]) - int(before[i]["tot-cmds"]) for i in after)


def recorder(into: list[bytes]) -> Callable[[Message], Awaitable[None]]:
    async def record(message: Message) -> None:
        into.append(message.payload)

    return record


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# B03: pending entries whose data was trimmed. The case's field `f` is
# written as `payload`, so that "an empty body" can be told from a real one.


async def test_b03_trimmed_pending_entry_is_a_tombstone_never_a_message(
    conn: Connection, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await client.create_topic("b03", 1)
    s = topic.stream_keys[0]
    await conn.execute("XGROUP", "CREATE", s, "g", "$", "MKSTREAM")
    await conn.execute("XADD", s, "1-0", "payload", "v1")
    await conn.execute("XREADGROUP", "GROUP", "g", "c", "STREAMS", s, ">")
    await conn.execute("XADD", s, "MAXLEN", "1", "2-0", "payload", "v2")
    await conn.execute("XREADGROUP", "GROUP", "g", "c", "STREAMS", s, ">")
    history = await conn.execute("XREADGROUP", "GROUP", "g", "c", "STREAMS", s, "0")
    # Two different ids: 1-0 without data, 2-0 with its fields, once each.
    assert history == [[s.encode(), [[b"1-0", None], [b"2-0", [b"payload", b"v2"]]]]]

    # The library's recovery (consumer "c" drains its own history first).
    handled: list[tuple[bytes, bytes]] = []

    async def handle(message: Message) -> None:
        handled.append((message.id, message.payload))

    consumer = client.consumer(topic, "g", "c", block_ms=20)
    runner = asyncio.create_task(consumer.run(handle))
    async with asyncio.timeout(5):
        while consumer.stats.acked < 2 or consumer.stats.tombstones < 1:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # a duplicate of 2-0 would arrive by now
    await consumer.stop()
    await runner  # nothing raised
    assert handled == [(b"2-0", b"v2")]
    assert consumer.stats.tombstones == 1  # lost before processing
    assert consumer.stats.acked == 2  # the tombstone is acked with 2-0
    assert (await conn.execute("XPENDING", s, "g"))[0] == 0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def _id_of(entry_id: bytes) -> tuple[int, int]:
    ms, seq = entry_id.split(b"-")
    return int(ms), int(seq)


async def test_b03_soak_slow_consumer_under_maxlen_stays_bounded(
    conn: Connection, client: Client
) -> None:
    # 10,000 messages at about 4,000 msg/s, trimmed to about 100 entries; a
    # consumer taking 5 ms a message. In its first run it fails one message
    # in 25, which stays pending; it restarts partway, and its history then
    # holds those entries, most of them trimmed away meanwhile: tombstones.
    topic = await client.create_topic("b03-soak", 1)
    s = topic.stream_keys[0]
    await conn.execute("XGROUP", "CREATE", s, "g", "$", "MKSTREAM")
    producer = client.producer(topic, maxlen_approx=100)
    sent = [b"m%05d" % i for i in range(10_000)]
    handled: list[bytes] = []
    failed: list[bytes] = []
    failing = True

    second_ids: list[bytes] = []

    async def slow(message: Message) -> None:
        assert message.payload  # never an empty or missing body
        await asyncio.sleep(0.005)
        if failing and int(message.payload[1:]) % 25 == 0:
            failed.append(message.payload)
            raise ValueError("left pending")
        handled.append(message.payload)
        if not failing:
            second_ids.append(message.id)

    def start_consumer() -> tuple[Consumer, asyncio.Task[None]]:
        # Recovery off: its sweep would ack the trimmed entries as tombstones
        # in the first run already; this case is about the history's.
        consumer = client.consumer(
            topic, "g", "slow", prefetch=50, concurrency=1, claim_idle_ms=None
        )
        return consumer, asyncio.create_task(consumer.run(slow))

    async def produce() -> None:
        for i in range(0, len(sent), 100):
            replies = await producer.send_many(sent[i : i + 100])
            assert all(isinstance(reply, bytes) for reply in replies)
            await asyncio.sleep(0.025)

    samples: list[tuple[int, int, int]] = []  # (pending, stream length, bytes)

    async def sample_forever() -> None:
        while True:
            pending = (await conn.execute("XPENDING", s, "g"))[0]
            length = await conn.execute("XLEN", s)
            size = await conn.execute("MEMORY", "USAGE", s, "SAMPLES", "0")
            samples.append((pending, length, size))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample_forever())
    producing = asyncio.create_task(produce())
    first, runner = start_consumer()
    await asyncio.sleep(1.2)
    await first.stop()
    await runner
    # Fetched and never started: left pending by the stop, as failures are.
    released = first.stats.delivered - len(handled) - len(failed)
    info = await conn.execute("XINFO", "GROUPS", s)
    first_read_up_to = _id_of(
        dict(zip(info[0][::2], info[0][1::2], strict=True))[b"last-delivered-id"]
    )
    failing = False
    second, runner = start_consumer()
    await producing
    async with asyncio.timeout(10):
        while not handled or handled[-1] != sent[-1]:
            await asyncio.sleep(0.05)
    await second.stop()
    await runner
    sampler.cancel()

    assert len(handled) == len(set(handled))  # no message handled twice
    assert set(handled) <= set(sent)
    assert first.stats.tombstones == 0 and first.stats.failed == len(failed) > 0
    # Each message the first run failed or released came back once, from
    # the second run's history: with its data, or, trimmed, as a tombstone
    # that was acked and never reached the handler.
    assert second.stats.tombstones > 0
    came_back = [i for i in second_ids if _id_of(i) <= first_read_up_to]
    assert len(came_back) + second.stats.tombstones == len(failed) + released
    assert (await conn.execute("XPENDING", s, "g"))[0] == 0
    pending, lengths, sizes = zip(*samples, strict=True)
    # The PEL holds at most what the consumer may have fetched (its prefetch,
    # plus one read while the last of it is handled) and what it failed ...
    assert max(pending) <= 2 * 50 + len(failed)
    # ... and the stream stays near its MAXLEN, its memory flat: the second
    # half of the run peaks no higher than the first.
    assert max(lengths) < 300
    half = len(sizes) // 2
    assert max(sizes[half:]) <= max(sizes[:half]) * 1.2


# B04: several workers creating the same group at once. The 9th process of
# the case is a consumer in this process: group creation is the same call.

WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from aioredismq.client import Client

    async def main(url, name):
        async with await Client.connect(url) as client:
            topic = await client.create_topic("b04", 1)
            consumer = client.consumer(topic, "g", name, start_id="0")
            print("ready", flush=True)
            sys.stdin.readline()  # all eight create the group at once
            await consumer.start()
            await consumer.stop()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_b04_eight_processes_create_one_group_and_start_moves_nothing(
    conn: Connection, client: Client, redis_url: str
) -> None:
    await conn.execute("CONFIG", "RESETSTAT")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, redis_url, f"w{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for i in range(8)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        _, stderr = worker.communicate(timeout=30)
        assert worker.returncode == 0, stderr
    topic = await client.topic("b04")
    s = topic.stream_keys[0]
    (group,) = await client.groups(topic)
    assert [g["name"] for g in group] == [b"g"]
    # Seven of the eight were told BUSYGROUP and carried on.
    errors = await info(conn, "errorstats")
    assert errors.get("errorstat_BUSYGROUP") == "count=7"
    with pytest.raises(BusyGroupError):
        await conn.execute("XGROUP", "CREATE", s, "g", "0")

    # A member handles and acks the first 40 entries, then stops. The other
    # 60 are added only then: a reader fetches ahead of its handler, so with
    # all 100 there it could have taken some of them already.
    producer = client.producer(topic)
    await producer.send_many([b"%d" % i for i in range(40)])
    member = client.consumer(topic, "g", "w0")
    first = [m.payload async for m in _take(member, 40)]
    await member.stop()
    assert first == [b"%d" % i for i in range(40)]
    assert await client.pending(topic, "g") == [0]
    await producer.send_many([b"%d" % i for i in range(40, 100)])
    before = (await client.groups(topic))[0][0]["last-delivered-id"]

    # A 9th member asks for "$": the group exists, so nothing moves.
    ninth = client.consumer(topic, "g", "ninth", start_id="$")
    await ninth.start()
    assert (await client.groups(topic))[0][0]["last-delivered-id"] == before
    rest = [m.payload async for m in _take(ninth, 60)]
    await ninth.stop()
    assert rest == [b"%d" % i for i in range(40, 100)]
    assert ninth.stats.delivered == 60
    assert await client.pending(topic, "g") == [0]

    # Any other error still reaches the caller.
    wrong = Topic("b04-string", 1)
    await conn.execute("SET", wrong.stream_keys[0], "not a stream")
    stray = client.consumer(wrong, "g", "w")
    with pytest.raises(ReplyError, match="^WRONGTYPE") as raised:
        await stray.start()
    assert not isinstance(raised.value, BusyGroupError)
    await stray.stop()


async def _take(consumer: Consumer, count: int) -> AsyncIterator[Message]:
    async with asyncio.timeout(10):
        seen = 0
        async for message in consumer:
            yield message
            seen += 1
            if seen == count:
                await consumer.ack(message)
                return


# B05: the stream deleted or expired under a live group (NOGROUP). Each
# consumer runs on a client of its own whose connections carry the topic's
# name, so the server can count that consumer's calls.


def gone_logs(
    caplog: pytest.LogCaptureFixture, topic: Topic
) -> list[logging.LogRecord]:
    """What the consumer logged about the group on `topic` being gone."""
    return [
        record
        for record in caplog.records
        if record.name == "aioredismq.consumer"
        and "is gone" in record.getMessage()
        and f"topic {topic.name};" in record.getMessage()
    ]


async def _b05_removed_once(
    conn: Connection,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
    name: str,
    removal: Sequence[str | int],
) -> None:
    async with await Client.connect(redis_url, client_name=name) as client:
        topic = await client.create_topic(name, 1)
        s = topic.stream_keys[0]
        await conn.execute("XGROUP", "CREATE", s, "g", "$", "MKSTREAM")
        got: list[bytes] = []
        consumer = client.consumer(topic, "g", "c", block_ms=2000)
        runner = asyncio.create_task(consumer.run(recorder(got)))
        await blocked_named(conn, name, 1)
        before = await named(conn, name)

        removed_at = time.time()
        await conn.execute(removal[0], s, *removal[1:])
        async with asyncio.timeout(2.0 + 1.0):  # one block period plus 1 s
            while not gone_logs(caplog, topic):
                await asyncio.sleep(0.01)
            while not await conn.execute("EXISTS", s):
                await asyncio.sleep(0.01)
        (group,) = await conn.execute("XINFO", "GROUPS", s)
        assert group[group.index(b"name") + 1] == b"g"

        await asyncio.sleep(removed_at + 5 - time.time())
        calls = commands_run(before, await named(conn, name))
        assert calls / (time.time() - removed_at) < 20
        await conn.execute("XADD", s, "*", "payload", "v")
        async with asyncio.timeout(3):
            while not got:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # a second delivery would show by now
        await consumer.stop()
        await runner
    assert got == [b"v"]
    assert len(gone_logs(caplog, topic)) == 1  # said once, not on every loop


async def _b05_kept_missing(conn: Connection, redis_url: str) -> None:
    # The key is deleted every 20 ms, so each recreated group vanishes again
    # at once: only the consumer's back-off bounds its calls.
    name = "b05-gone"
    async with await Client.connect(redis_url, client_name=name) as client:
        topic = await client.create_topic(name, 1)
        s = topic.stream_keys[0]
        got: list[bytes] = []
        consumer = client.consumer(topic, "g", "c", block_ms=2000)
        runner = asyncio.create_task(consumer.run(recorder(got)))
        await blocked_named(conn, name, 1)
        before = await named(conn, name)
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            await conn.execute("DEL", s)
            await asyncio.sleep(0.02)
        calls = commands_run(before, await named(conn, name))
        assert calls / (time.monotonic() - started) < 20

        await conn.execute("XADD", s, "*", "payload", "back")
        async with asyncio.timeout(8):  # the back-off reached a few seconds
            while not got:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        await consumer.stop()
        await runner
    assert got == [b"back"]


async def test_b05_stream_deleted_expired_or_kept_missing(
    conn: Connection, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The DEL run, the PEXPIRE run and a key that stays missing, side by side.
    await asyncio.gather(
        _b05_removed_once(conn, redis_url, caplog, "b05-del", ["DEL"]),
        _b05_removed_once(conn, redis_url, caplog, "b05-expire", ["PEXPIRE", 100]),
        _b05_kept_missing(conn, redis_url),
    )


async def test_b05_startup_reclaim_on_a_missing_stream_and_group(
    conn: Connection, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await client.create_topic("b05-new", 2)  # no stream, no group yet
    assert await conn.execute("EXISTS", *topic.stream_keys) == 0
    await conn.execute("CONFIG", "RESETSTAT")
    consumer = client.consumer(
        topic, "g", "c", claim_idle_ms=1, claim_interval_ms=20, block_ms=20
    )
    await consumer.start()
    await asyncio.sleep(0.3)  # a dozen reclaim sweeps
    await consumer.stop()

    stats = await info(conn, "commandstats")
    sweeps = dict(item.split("=") for item in stats["cmdstat_xautoclaim"].split(","))
    assert int(sweeps["calls"]) >= 2 * 5
    assert sweeps["failed_calls"] == "0"  # the group existed before any sweep
    assert "errorstat_NOGROUP" not in await info(conn, "errorstats")
    assert consumer.stats.claimed == consumer.stats.tombstones == 0
    assert [len(g) for g in await client.groups(topic)] == [1, 1]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# B07: one group over streams in different hash slots of a 3-master cluster.
# The library's unit is a topic: its partitions are the case's streams, each
# in its own slot, read by one consumer.


@pytest.fixture
async def cluster_client(
    cluster_seeds: list[ConnectionSettings],
) -> AsyncIterator[Client]:
    client = await Client.connect_cluster(
        [f"redis://{s.host}:{s.port}" for s in cluster_seeds]
    )
    for node in await client._cluster.primaries():  # type: ignore[union-attr]
        await node.execute("FLUSHALL")  # the cluster is shared by the session
        await node.execute("CONFIG", "RESETSTAT")
    yield client
    await client.close()


async def test_b07_one_group_over_streams_in_different_slots(
    cluster_client: Client,
) -> None:
    cluster = cluster_client._cluster
    assert cluster is not None
    # A topic whose two partitions live on two different primaries.
    name = next(
        f"b07-{i}"
        for i in range(100)
        if cluster.settings_for_key(f"{{b07-{i}:0}}")
        != cluster.settings_for_key(f"{{b07-{i}:1}}")
    )
    topic = await cluster_client.create_topic(name, 2)
    a, b = topic.stream_keys
    slots = [
        await cluster.connection_for_key(k).execute("CLUSTER", "KEYSLOT", k)
        for k in (a, b)
    ]
    assert slots == [key_slot(a), key_slot(b)] and slots[0] != slots[1]

    producer = cluster_client.producer(topic)
    await producer.send_many([b"%d" % i for i in range(200)])  # 100 each
    assert await cluster_client.stream_lengths(topic) == [100, 100]
    consumer = cluster_client.consumer(topic, "g", "c", block_ms=50)
    got = [m.payload async for m in _take(consumer, 200)]
    await consumer.stop()
    assert sorted(got) == sorted(b"%d" % i for i in range(200))
    for node in await cluster.primaries():
        assert "CROSSSLOT" not in (await node.execute("INFO", "errorstats")).decode()


# B08 and B09: blocking reads. They wait on the server for seconds, so the
# runs of both cases go side by side, in one test.


async def _b08_run(conn: Connection, redis_url: str, name: str, readers: int) -> None:
    # Task B's commands also run under a 1 s socket timeout, so one stuck
    # behind a blocking read would fail, not merely be slow.
    async with await Client.connect(
        redis_url, socket_timeout_s=1.0, client_name=name
    ) as client:
        idle = await client.create_topic(f"{name}-idle", 1)
        members = [
            client.consumer(idle, "g", f"r{i}", block_ms=5000) for i in range(readers)
        ]
        busy = await client.create_topic(f"{name}-busy", 1)
        producer = client.producer(busy)
        key = busy.stream_keys[0]
        await client.connection.execute("XGROUP", "CREATE", key, "h", "$", "MKSTREAM")
        shared_id = await client.connection.execute("CLIENT", "ID")
        for member in members:
            await member.start()
        # Each blocking read has a connection of its own, never task B's.
        blocked = await blocked_named(conn, name, readers)
        assert len(blocked) == readers and shared_id not in blocked
        latencies_s: list[float] = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Two block periods, less a little so that the readers' stop, which
        # waits for their current block to end, comes right after.
        for i in range(97):
            await asyncio.sleep(max(0.0, started + i * 0.1 - loop.time()))
            sent_at = loop.time()
            entry_id = await producer.send(b"x")
            acked_at = loop.time()
            await client.connection.execute("XACK", key, "h", entry_id)
            latencies_s += [acked_at - sent_at, loop.time() - acked_at]
        # The readers kept their connections: none timed out and reconnected.
        assert await blocked_named(conn, name, readers) == blocked
        await asyncio.gather(*(member.stop() for member in members))
    assert len(latencies_s) == 2 * 97
    assert percentile(latencies_s, 0.99) < 0.050


def test_block_wait_is_read_from_the_encoded_commands() -> None:
    def read(*extra: str | int) -> bytes:
        return encode_command("XREADGROUP", "GROUP", "g", "c", *extra, "STREAMS", "s")

    assert block_wait_s(encode_command("PING")) == 0.0
    assert block_wait_s(read("COUNT", 10)) == 0.0
    assert block_wait_s(read("BLOCK", 5000)) == 5.0
    assert block_wait_s(read("block", 250)) == 0.25
    assert (
        block_wait_s(encode_command("XACK", "s", "g", "1-0") + read("BLOCK", 0)) is None
    )
    assert block_wait_s(read("BLOCK", 100) + read("BLOCK", 200)) == pytest.approx(0.3)


def test_socket_timeout_setting_from_url_and_keywords() -> None:
    url = "redis://127.0.0.1:6379/0"
    assert ConnectionSettings.from_url(url).socket_timeout_s is None
    assert (
        ConnectionSettings.from_url(url + "?socket_timeout=2.5").socket_timeout_s == 2.5
    )
    assert (
        ConnectionSettings.from_url(
            url + "?socket_timeout=2", socket_timeout_s=7
        ).socket_timeout_s
        == 7
    )
    with pytest.raises(ConfigError, match="did you mean socket_timeout"):
        ConnectionSettings.from_url(url + "?socket_timout=2")
    for bad in ("abc", "0", "-1", "inf", ""):
        with pytest.raises(ConfigError, match="socket_timeout: .* seconds > 0"):
            ConnectionSettings.from_url(f"{url}?socket_timeout={bad}")
    with pytest.raises(ConfigError, match="socket_timeout_s: -1 is not allowed"):
        ConnectionSettings(socket_timeout_s=-1)
    with pytest.raises(ConfigError, match="parser: 'java' is not allowed"):
        ConnectionSettings(parser="java")  # type: ignore[arg-type]


def test_url_ports() -> None:
    assert ConnectionSettings.from_url("redis://h").port == 6379  # as redis-py
    assert ConnectionSettings.from_url("redis://h:7000").port == 7000
    for bad in ("redis://h:0", "redis://h:70000", "redis://h:x"):
        with pytest.raises(ConfigError, match="url: port: .* expected 1-65535"):
            ConnectionSettings.from_url(bad)
    with pytest.raises(ConfigError, match="url: 6379 is not allowed; expected a str"):
        ConnectionSettings.from_url(6379)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="connection: port: 'x' is not allowed"):
        ConnectionSettings.from_url("redis://h", port="x")
    with pytest.raises(ConfigError, match="connection: db: -1 is not allowed"):
        ConnectionSettings.from_url("redis://h", db=-1)


async def test_reply_deadlines_count_block_time_and_queue_position(
    conn: Connection, settings: ConnectionSettings
) -> None:
    timed = await Connection.open(
        ConnectionSettings.from_url(settings.address + "?socket_timeout=0.3")
    )
    await conn.execute("XGROUP", "CREATE", "dl", "g", "$", "MKSTREAM")
    read_600ms = encode_command(
        "XREADGROUP", "GROUP", "g", "c", "BLOCK", 600, "STREAMS", "dl", ">"
    )
    read_forever = read_600ms.replace(b"$3\r\n600\r\n", b"$1\r\n0\r\n")
    # A read blocking 0.6 s, and a PING queued behind it: neither times out.
    replies = await asyncio.gather(
        timed.request(read_600ms, 1), timed.request(encode_command("PING"), 1)
    )
    assert list(replies) == [[None], [b"PONG"]]
    # BLOCK 0 waits for ever; the PING behind it gets its answer after it.
    waiting = asyncio.gather(
        timed.request(read_forever, 1), timed.request(encode_command("PING"), 1)
    )
    await asyncio.sleep(0.6)
    entry_id = await conn.execute("XADD", "dl", "*", "payload", "late")
    (read,), (pong,) = await waiting
    assert read == [[b"dl", [[entry_id, [b"payload", b"late"]]]]]
    assert pong == b"PONG"

    # A server that stops answering: every waiting batch fails at once, with
    # a retriable error, and the connection is closed.
    await conn.execute("CLIENT", "PAUSE", 600, "ALL")
    started = time.monotonic()
    results = await asyncio.gather(
        *(timed.execute("PING") for _ in range(3)), return_exceptions=True
    )
    elapsed_s = time.monotonic() - started
    assert all(isinstance(r, ReplyTimeoutError) for r in results), results
    assert 0.3 <= elapsed_s < 0.6
    error = results[0]
    assert isinstance(error, RedisConnectionError) and error.retriable
    assert "socket_timeout_s=0.3" in str(error)
    assert timed.closed
    with pytest.raises(ReplyTimeoutError):
        await timed.execute("PING")
    await timed.close()
    await asyncio.sleep(0.3)  # the pause ends


async def test_b08_b09_blocking_reads(
    conn: Connection, redis_url: str, settings: ConnectionSettings
) -> None:
    # B08 with one blocking reader, and with four; B09 a, b and c, whose
    # connections all have redis-py's `socket_timeout=2`.
    timed = ConnectionSettings.from_url(settings.address + "?socket_timeout=2")
    loop = asyncio.get_running_loop()
    for s in ("a", "b", "c"):
        await conn.execute("XGROUP", "CREATE", f"b09{s}", "g", "$", "MKSTREAM")

    def read(consumer: str, block_ms: int, stream: str) -> list[str | int]:
        return [
            "XREADGROUP", "GROUP", "g", consumer, "BLOCK", block_ms,
            "STREAMS", stream, ">",
        ]  # fmt: skip

    async def case_a(started: float) -> None:
        c = await Connection.open(timed)
        reply = await c.execute(*read("a", 5000, "b09a"))
        elapsed_s = loop.time() - started
        assert reply is None  # no messages, no exception
        assert abs(elapsed_s - 5) <= 0.5
        assert await c.execute("PING") == b"PONG"  # the connection still works
        await c.close()

    async def case_b(started: float) -> None:
        c = await Connection.open(timed)
        reading = asyncio.ensure_future(c.execute(*read("b", 0, "b09b")))
        await asyncio.sleep(started + 8 - loop.time())
        entry_id = await conn.execute("XADD", "b09b", "*", "payload", "b")
        reply = await reading
        assert abs(loop.time() - started - 8) <= 0.5
        assert reply == [[b"b09b", [[entry_id, [b"payload", b"b"]]]]]
        await c.close()

    async def case_c(started: float) -> None:
        a, b = await Connection.open(timed), await Connection.open(timed)
        a_id, b_id = [await x.execute("CLIENT", "ID") for x in (a, b)]
        got_a = asyncio.ensure_future(a.execute(*read("A", 0, "b09c")))
        await wait_until_blocked(conn, a_id)  # A waits first, so A gets the entry
        b_returns: list[tuple[float, Any]] = []

        async def loop_b() -> None:
            # B's consumer loop: read, note the result, read again.
            while True:
                reply = await b.execute(*read("B", 10000, "b09c"))
                b_returns.append((loop.time() - started, reply))

        b_loop = asyncio.create_task(loop_b())
        await asyncio.sleep(started + 5 - loop.time())
        entry_id = await conn.execute("XADD", "b09c", "*", "payload", "c")
        assert await got_a == [[b"b09c", [[entry_id, [b"payload", b"c"]]]]]
        async with asyncio.timeout(12):  # at 10 s, or about 15 s on some servers
            while not b_returns:
                await asyncio.sleep(0.05)
        ((at_s, reply),) = b_returns
        assert reply is None and 9.5 <= at_s <= 16
        # The loop carries on: B's next read waits on the same connection.
        await wait_until_blocked(conn, b_id)
        assert not b_loop.done() and not b.closed
        b_loop.cancel()
        await asyncio.gather(b_loop, return_exceptions=True)
        await a.close()
        await b.close()

    started = loop.time()
    await asyncio.gather(
        _b08_run(conn, redis_url, "b08-one", 1),
        _b08_run(conn, redis_url, "b08-four", 4),
        case_a(started),
        case_b(started),
        case_c(started),
    )


# B11: bursts of calls. There is no pool to run dry: every non-blocking call
# of a client shares one pipelined connection, and a producer's
# `max_in_flight` makes senders wait rather than fail.


async def test_b11_bursts_share_one_connection_and_wait_instead_of_failing(
    conn: Connection, redis_url: str
) -> None:
    async with await Client.connect(redis_url, client_name="b11") as client:
        topic = await client.create_topic("b11", 1)
        producer = client.producer(topic, max_in_flight=2)
        sets = await asyncio.gather(
            *(client.connection.execute("SET", f"k{i}", i) for i in range(100))
        )
        adds = asyncio.gather(*(producer.send(b"%d" % i) for i in range(100)))
        during = await named(conn, "b11")  # while the XADDs are in flight
        ids = await adds
        after = await named(conn, "b11")
    assert sets == [b"OK"] * 100
    assert len(set(ids)) == 100
    assert await conn.execute("XLEN", topic.stream_keys[0]) == 100
    assert await conn.execute("GET", "k99") == b"99"
    assert len(during) == len(after) == 1  # at most 2 allowed


async def test_b11_a_wait_past_its_limit_is_a_capacity_error(
    conn: Connection, redis_url: str
) -> None:
    async with await Client.connect(redis_url) as client:
        topic = await client.create_topic("b11t", 1)
        producer = client.producer(topic, max_in_flight=2, capacity_timeout_s=0.3)
        # The server holds every write for 1.5 s: two sends fill the producer,
        # the third waits for room and gives up after 0.3 s.
        await conn.execute("CLIENT", "PAUSE", 1500, "WRITE")
        first = [asyncio.create_task(producer.send(b"%d" % i)) for i in range(2)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(CapacityTimeoutError) as caught:
            await producer.send(b"third")
        waited_s = time.monotonic() - started
        ids = await asyncio.gather(*first)  # the server answers in the end
    assert not isinstance(caught.value, RedisConnectionError)
    assert caught.value.retriable
    assert 0.25 < waited_s < 1.0
    assert len(set(ids)) == 2
    assert await conn.execute("XLEN", topic.stream_keys[0]) == 2


# B12: shutdown, in a process of its own run in asyncio's debug mode with
# warnings as errors, on the default loop and on uvloop.

SHUTDOWN_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time, warnings
    warnings.simplefilter("error")
    from aioredismq.client import Client
    from aioredismq.consumer import AckMode
    from aioredismq.errors import ClosedError

    async def main(url):
        client = await Client.connect(url)
        topic = await client.create_topic("b12", 2)
        producer = client.producer(topic)
        consumer = client.consumer(topic, "g", "c", block_ms=2000,
                                   ack_mode=AckMode.MANUAL)

        async def handle(message):
            pass  # read and never acked

        async def produce():
            try:
                while True:
                    await producer.send(b"x")
                    await asyncio.sleep(0.05)
            except ClosedError:
                pass  # the shutdown closed the producer

        tasks = [asyncio.create_task(consumer.run(handle)),
                 asyncio.create_task(produce())]
        await asyncio.sleep(2)
        started = time.monotonic()
        await client.close()
        await asyncio.gather(*tasks)
        print(f"shutdown_s={time.monotonic() - started:.3f}")
        print(f"delivered={consumer.stats.delivered}")
        print(f"acked={consumer.stats.acked}")

    url, loop_kind = sys.argv[1], sys.argv[2]
    if loop_kind == "uvloop":
        import uvloop
        uvloop.run(main(url), debug=True)
    else:
        asyncio.run(main(url), debug=True)
    """
)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
async def test_b12_shutdown_leaves_nothing_behind(
    conn: Connection, redis_url: str, loop_kind: str
) -> None:
    before = len(await client_list(conn))
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", SHUTDOWN_SCRIPT, redis_url, loop_kind],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    for bad in (
        "Task was destroyed",
        "nclosed",  # Unclosed / unclosed resources
        "Event loop is closed",
        "Exception ignored",
        "ResourceWarning",
        "Traceback",
    ):
        assert bad not in done.stderr, done.stderr
    facts = dict(line.split("=") for line in done.stdout.split())
    assert float(facts["shutdown_s"]) < 2.0 + 1.0  # block time + 1 s
    assert len(await client_list(conn)) == before
    # Read but never acked: all still pending, none acked on the way out
    # (what the group gave out includes a read that returned during the
    # stop, which stays pending without reaching the handler).
    pending = read = 0
    for key in ("{b12:0}", "{b12:1}"):
        pending += (await conn.execute("XPENDING", key, "g"))[0]
        (info,) = await conn.execute("XINFO", "GROUPS", key)
        read += dict(zip(info[::2], info[1::2], strict=True))[b"entries-read"]
    assert int(facts["acked"]) == 0
    assert 0 < int(facts["delivered"]) <= pending == read


# B13: binary payloads, with the pure-Python reply parser and with hiredis.

B13_PAYLOADS = {
    "all-bytes": bytes(range(256)),
    "bad-utf8": b"\xc3\x28",
    "random-1mib": os.urandom(1 << 20),
    "empty": b"",
    "crlf": b"line\r\nline",
}


@pytest.mark.parametrize("parser", ["hiredis", "python"])
async def test_b13_every_payload_comes_back_byte_for_byte(
    conn: Connection, redis_url: str, parser: str
) -> None:
    async with await Client.connect(redis_url, parser=parser) as client:
        reader_module = type(client.connection._reader).__module__
        assert reader_module == (
            "hiredis" if parser == "hiredis" else "aioredismq.resp"
        )
        topic = await client.create_topic("b13", 2)
        producer = client.producer(topic)
        for name, payload in B13_PAYLOADS.items():
            await producer.send(payload, key=name, headers={"case": name})
        consumer = client.consumer(topic, "g", "c")
        got = {
            m.headers[b"case"].decode(): m.payload
            async for m in _take(consumer, len(B13_PAYLOADS))
        }
        await consumer.stop()
        assert got == B13_PAYLOADS
        stored = {}
        for key in topic.stream_keys:
            for _, fields in await client.connection.execute("XRANGE", key, "-", "+"):
                values = dict(zip(fields[::2], fields[1::2], strict=True))
                stored[values[b"h:case"].decode()] = values[b"payload"]
        assert stored == B13_PAYLOADS


@pytest.mark.parametrize("parser", ["hiredis", "python"])
async def test_b13_text_that_does_not_decode_fails_that_message_only(
    conn: Connection, redis_url: str, parser: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with await Client.connect(redis_url, parser=parser) as client:
        topic = await client.create_topic("b13-text", 1)
        producer = client.producer(topic)
        bad_id = await producer.send(b"\xc3\x28")
        await producer.send(b"fine")
        texts: list[str] = []

        async def as_text(message: Message) -> None:
            texts.append(message.text())

        consumer = client.consumer(
            topic, "g", "c", claim_idle_ms=50, claim_interval_ms=50, max_deliveries=1
        )
        await _run_until(consumer, as_text, lambda: consumer.stats.dead_lettered > 0)
        assert texts == ["fine"]
        assert consumer.stats.failed >= 1  # reported as failed ...
        assert any(
            "handler failed" in r.getMessage() and repr(bad_id) in r.getMessage()
            for r in caplog.records
        )
        (entry,) = await client.connection.execute(
            "XRANGE", dead_letter_key("b13-text", 0), "-", "+"
        )
        fields = dict(zip(entry[1][::2], entry[1][1::2], strict=True))
        assert fields[b"payload"] == b"\xc3\x28"  # ... moved aside intact ...
        assert fields[b"origin-id"] == bad_id
        assert b"can't decode" in fields[b"last-error"]
        assert await client.pending(topic, "g") == [0]  # ... not pending


async def _run_until(
    consumer: Consumer,
    handler: Callable[[Message], Awaitable[None]],
    done: Callable[[], bool],
    timeout_s: float = 5,
) -> None:
    runner = asyncio.create_task(consumer.run(handler))
    async with asyncio.timeout(timeout_s):
        while not done():
            await asyncio.sleep(0.02)
    await consumer.stop()
    await runner
