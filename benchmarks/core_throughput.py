"""Produce and consume throughput: aioredismq, plain redis-py and FastStream.

How to run it (from the repository root). FastStream is not a dependency of
this project, so its rows need a benchmark-only venv; where `faststream`
cannot be imported they are left out and the output says so:

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install -e . 'faststream[redis]'
    /tmp/bench-venv/bin/python benchmarks/core_throughput.py

    python benchmarks/core_throughput.py               # without FastStream
    python benchmarks/core_throughput.py --sizes 1024 --rounds 5 --uvloop
    python benchmarks/core_throughput.py --redis-url redis://127.0.0.1:6379

Without --redis-url it starts a private valkey-server (runner.server). The
default run (50,000 messages, 3 rounds, 1 KiB and 100 B) takes about 75 s.

What it measures. Every contender runs in this one client process, one at a
time, against the same server, with the same messages: --messages copies of
the repository's payload file of each size (payload/), round robin over the
same --partitions streams. Each round runs every contender once, starting one
place further along the list each round. Per size it prints, for each
contender, the median and the best messages per second over the rounds, the
median client CPU time per message (user + system of this process) and the
server's CPU time per message (INFO cpu, read before and after the round),
and the ratios to redis-py's loop and to FastStream on the same side: each
ratio is taken within a round, against that round's baseline, and the
median over the rounds is shown (other work on a shared machine then moves
both sides of a ratio, not one). "msg/s" ratios are wall-clock throughput,
which the server bounds once the client is fast (one batch in flight, server
on the same machine): per message the wall clock cannot beat client plus
server CPU time, and no client can beat the server's time alone. "CPU"
ratios are the baseline's client CPU per message over the row's, i.e. how
much more one fully busy client process can push through. A "bound" line per
side gives that limit: the server's CPU per message (the lowest median of the
aioredismq rows), the rate no client can pass, and that rate over redis-py's.
Before each timed run the garbage collector runs once, so no contender pays
for a full collection owed by the one before it.

Producing (the streams are emptied first; one batch in flight at a time):
  aioredismq send_many     `Producer.send_many` of --batch messages, awaited
  aioredismq send          `Producer.send` from --batch tasks, each awaiting
                           its own message's ack (the per-message API)
  redis-py pipeline        `redis.asyncio` with the hiredis parser: a
                           non-transactional pipeline of --batch XADDs
  FastStream pipeline      `RedisBroker.publish(body, stream=, pipeline=)`
                           for --batch messages, then `pipeline.execute()`:
                           the documented way to write many messages to a
                           stream in one round trip (`publish_batch` is for
                           lists only; a `broker.publisher(...)` object was
                           slower, so the broker call is used)

Consuming (only consuming is timed: the streams are first filled in the
contender's own format and the group is created at id 0; the clock runs from
starting the consumer until its handler has seen every message, and each
handler reads every payload; afterwards nothing may be left pending):
  aioredismq GroupConsumer `GroupConsumer(..., columns=True)`: a batch
                           handler that reads every payload of the `Batch`
                           it gets, COUNT --batch per partition, acked after
                           the handler (payloads only, as the other handlers:
                           the producer's timestamp is not parsed)
  aioredismq Consumer.run  `Client.consumer(...).run(handler)`, one handler
                           call per message, acked after it returns
  aioredismq Consumer iter `async for message in consumer`, acked when the
                           loop asks for the next one
  redis-py XREADGROUP loop one pipeline per round trip: XACK of what the
                           previous read returned, then XREADGROUP COUNT
                           --batch over all partitions
  redis-py task/partition  one task per partition, each a pipeline per
                           round trip: XACK of its previous read, then
                           XREADGROUP COUNT --batch of its own stream (the
                           tasks share the client's connection pool, so
                           their round trips overlap); shown for comparison,
                           the ratios are to the loop above
  FastStream batch sub     one `StreamSub(stream, group=, consumer=,
                           batch=True, max_records=--batch)` subscriber per
                           partition (a subscriber reads one stream), handler
                           typed `list[bytes]`, acked after it returns

Both `Consumer` rows use the library's defaults for prefetch and concurrency
(--prefetch, --concurrency). FastStream's broker is made with `logger=None`,
since the other contenders log nothing per message either.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as redis_asyncio  # noqa: E402

from aioredismq.client import Client  # noqa: E402
from aioredismq.connection import (  # noqa: E402
    Connection,
    ConnectionSettings,
    encode_command,
)
from aioredismq.consumer import Batch, GroupConsumer  # noqa: E402
from aioredismq.message import Message  # noqa: E402
from aioredismq.producer import Producer  # noqa: E402
from aioredismq.topic import Topic  # noqa: E402
from runner.server import EmbeddedServer  # noqa: E402

HAVE_FASTSTREAM = importlib.util.find_spec("faststream") is not None
GROUP = "bench"
CONSUMER_NAME = "bench-1"
# Stream entries are written in batches this large when filling the streams
# for a consume round; the fill is not timed, so it only needs to be quick.
FILL_BATCH = 1000
CONSUME_TIMEOUT_S = 120
PAYLOAD_DIR = Path(__file__).resolve().parent.parent / "payload"
PAYLOAD_FILES = {100: "payload-100b.data", 1024: "payload-1Kb.data"}


def make_payload(size: int) -> bytes:
    """The repository's payload file of that size, else hex text like it.

    Text, not arbitrary bytes: FastStream's batch subscriber decodes bodies
    as UTF-8 before handing them over, and fails on anything else.
    """
    name = PAYLOAD_FILES.get(size)
    if name is not None and (PAYLOAD_DIR / name).is_file():
        data = (PAYLOAD_DIR / name).read_bytes()
        if len(data) == size:
            return data
    digits = b"0123456789abcdef"
    return bytes(digits[(i * 7 + i // 16) % 16] for i in range(size))


@dataclass(frozen=True)
class Setup:
    """What every contender of one size gets: same server, data, shape."""

    url: str
    topic: Topic
    payload: bytes
    messages: int
    batch: int
    prefetch: int
    concurrency: int

    def batches(self) -> list[int]:
        """Batch sizes adding up to `messages` (the last may be short)."""
        full, rest = divmod(self.messages, self.batch)
        return [self.batch] * full + ([rest] if rest else [])


class Stopwatch:
    """Wall and CPU time of the part of a round that is measured."""

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self._wall0 = 0.0
        self._cpu0 = 0.0

    def start(self) -> None:
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.wall_s = time.perf_counter() - self._wall0
        self.cpu_s = time.process_time() - self._cpu0


class Tally:
    """What a consumer's handler has seen; `done` is set at the last message."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.messages = 0
        self.payload_bytes = 0
        self.done = asyncio.Event()

    def add(self, messages: int, payload_bytes: int) -> None:
        self.messages += messages
        self.payload_bytes += payload_bytes
        if self.messages >= self.expected:
            self.done.set()

    async def wait(self) -> None:
        # A handler that raises leaves its messages pending, and some
        # libraries only log that: fail the run instead of waiting forever.
        try:
            async with asyncio.timeout(CONSUME_TIMEOUT_S):
                await self.done.wait()
        except TimeoutError:
            raise AssertionError(
                f"handler saw {self.messages} of {self.expected} messages "
                f"in {CONSUME_TIMEOUT_S} s"
            ) from None


Round = Callable[[Setup, Stopwatch], Awaitable[None]]


@dataclass(frozen=True)
class Sample:
    rate_per_s: float
    cpu_us: float
    server_us: float


@dataclass
class Contender:
    side: str  # "produce" or "consume"
    name: str
    run: Round
    # Consumers read entries in their own library's format; this writes them.
    fill: Round | None = None
    # Per round: messages per second, client CPU µs and server CPU µs per
    # message.
    samples: list[Sample] = field(default_factory=list)


# producing


async def aioredismq_send_many(setup: Setup, watch: Stopwatch) -> None:
    conn = await Connection.open(ConnectionSettings.from_url(setup.url))
    try:
        producer = Producer(conn, setup.topic)
        batches = [[setup.payload] * n for n in setup.batches()]
        watch.start()
        for payloads in batches:
            await producer.send_many(payloads)
        watch.stop()
    finally:
        await conn.close()


async def aioredismq_send(setup: Setup, watch: Stopwatch) -> None:
    conn = await Connection.open(ConnectionSettings.from_url(setup.url))
    try:
        producer = Producer(conn, setup.topic)
        payload = setup.payload
        # Long-lived senders, as an application with many concurrent requests
        # has them; each awaits its own ack, so `batch` messages are in flight.
        senders = min(setup.batch, setup.messages)
        share, extra = divmod(setup.messages, senders)

        async def sender(count: int) -> None:
            for _ in range(count):
                await producer.send(payload)

        watch.start()
        await asyncio.gather(
            *(sender(share + (1 if i < extra else 0)) for i in range(senders))
        )
        watch.stop()
    finally:
        await conn.close()


async def redis_py_pipeline(setup: Setup, watch: Stopwatch) -> None:
    client = redis_asyncio.Redis.from_url(setup.url)
    try:
        await client.ping()  # connect before the clock starts
        keys = setup.topic.stream_keys
        payload = setup.payload
        partition = 0
        watch.start()
        for count in setup.batches():
            pipe = client.pipeline(transaction=False)
            for _ in range(count):
                stamp = time.time_ns() // 1000
                pipe.xadd(keys[partition], {"ts_us": stamp, "payload": payload})
                partition = (partition + 1) % len(keys)
            await pipe.execute()
        watch.stop()
    finally:
        await client.aclose()


def faststream_broker(url: str) -> Any:
    """A FastStream Redis broker that writes no access log line per message,
    as the other contenders write none."""
    import faststream.redis as fs  # type: ignore[import-not-found, unused-ignore]

    # `logger=None` is FastStream's documented switch for that, though its
    # signature does not admit None.
    return fs.RedisBroker(url, logger=None)  # type: ignore[arg-type, unused-ignore]


async def faststream_pipeline(setup: Setup, watch: Stopwatch) -> None:
    broker = faststream_broker(setup.url)
    client = await broker.connect()
    try:
        keys = setup.topic.stream_keys
        payload = setup.payload
        partition = 0
        watch.start()
        for count in setup.batches():
            # Non-transactional, like the redis-py rows; the `Pipeline` that
            # FastStream injects into handlers wraps MULTI/EXEC around the
            # batch, which measured no faster here.
            pipe = client.pipeline(transaction=False)
            for _ in range(count):
                await broker.publish(payload, stream=keys[partition], pipeline=pipe)
                partition = (partition + 1) % len(keys)
            await pipe.execute()
        watch.stop()
    finally:
        await broker.stop()


# filling the streams for a consume round (not timed)


async def fill_aioredismq(setup: Setup, watch: Stopwatch) -> None:
    """Entries as `Producer` writes them (`ts_us`, `payload`), which the
    aioredismq and redis-py consumers read alike."""
    conn = await Connection.open(ConnectionSettings.from_url(setup.url))
    try:
        producer = Producer(conn, setup.topic)
        left = setup.messages
        while left > 0:
            count = min(FILL_BATCH, left)
            await producer.send_many([setup.payload] * count)
            left -= count
    finally:
        await conn.close()


async def fill_faststream(setup: Setup, watch: Stopwatch) -> None:
    """Entries in FastStream's own envelope, written by FastStream."""
    broker = faststream_broker(setup.url)
    client = await broker.connect()
    try:
        keys = setup.topic.stream_keys
        left, partition = setup.messages, 0
        while left > 0:
            count = min(FILL_BATCH, left)
            pipe = client.pipeline(transaction=False)
            for _ in range(count):
                await broker.publish(
                    setup.payload, stream=keys[partition], pipeline=pipe
                )
                partition = (partition + 1) % len(keys)
            await pipe.execute()
            left -= count
    finally:
        await broker.stop()


# consuming


async def aioredismq_group_consumer(setup: Setup, watch: Stopwatch) -> None:
    tally = Tally(setup.messages)

    def handler(batch: Batch) -> None:
        size = 0
        for payload in batch.payloads:
            size += len(payload)
        tally.add(len(batch.ids), size)

    consumer = GroupConsumer(
        ConnectionSettings.from_url(setup.url),
        setup.topic,
        GROUP,
        CONSUMER_NAME,
        handler,
        columns=True,
        count=setup.batch,
    )
    watch.start()
    await consumer.start()
    await tally.wait()
    watch.stop()
    await consumer.stop()
    check_tally(setup, tally)


async def aioredismq_consumer_run(setup: Setup, watch: Stopwatch) -> None:
    tally = Tally(setup.messages)

    async def handler(message: Message) -> None:
        tally.add(1, len(message.payload))

    client = await Client.connect(setup.url)
    try:
        consumer = client.consumer(
            setup.topic,
            GROUP,
            CONSUMER_NAME,
            prefetch=setup.prefetch,
            concurrency=setup.concurrency,
        )
        watch.start()
        await consumer.start()
        running = asyncio.create_task(consumer.run(handler))
        await tally.wait()
        watch.stop()
        await consumer.stop()
        await running
    finally:
        await client.close()
    check_tally(setup, tally)


async def aioredismq_consumer_iter(setup: Setup, watch: Stopwatch) -> None:
    tally = Tally(setup.messages)
    client = await Client.connect(setup.url)
    try:
        consumer = client.consumer(
            setup.topic, GROUP, CONSUMER_NAME, prefetch=setup.prefetch
        )
        watch.start()
        await consumer.start()
        async for message in consumer:
            tally.add(1, len(message.payload))
            if tally.done.is_set():
                # The loop acks a message when it asks for the next one; the
                # last one is acked here, since the loop ends without asking.
                await consumer.ack(message)
                break
        watch.stop()
        await consumer.stop()
    finally:
        await client.close()
    check_tally(setup, tally)


async def redis_py_xreadgroup(setup: Setup, watch: Stopwatch) -> None:
    tally = Tally(setup.messages)
    client = redis_asyncio.Redis.from_url(setup.url)
    try:
        await client.ping()
        streams: dict[Any, Any] = {key: ">" for key in setup.topic.stream_keys}
        acks: list[tuple[bytes, list[bytes]]] = []
        watch.start()
        while not tally.done.is_set():
            pipe = client.pipeline(transaction=False)
            for stream, ids in acks:
                pipe.xack(stream, GROUP, *ids)
            pipe.xreadgroup(GROUP, CONSUMER_NAME, streams, count=setup.batch, block=100)
            replies = await pipe.execute()
            acks = []
            for stream, entries in replies[-1] or []:
                ids = []
                size = 0
                for entry_id, fields in entries:
                    size += len(fields[b"payload"])
                    ids.append(entry_id)
                tally.add(len(ids), size)
                acks.append((stream, ids))
        watch.stop()
        # The last read's acks, so the group ends as the others leave it.
        pipe = client.pipeline(transaction=False)
        for stream, ids in acks:
            pipe.xack(stream, GROUP, *ids)
        await pipe.execute()
    finally:
        await client.aclose()
    check_tally(setup, tally)


async def redis_py_per_partition(setup: Setup, watch: Stopwatch) -> None:
    tally = Tally(setup.messages)
    client = redis_asyncio.Redis.from_url(setup.url)

    async def read_partition(stream: str) -> None:
        ids: list[bytes] = []
        while not tally.done.is_set():
            pipe = client.pipeline(transaction=False)
            if ids:
                pipe.xack(stream, GROUP, *ids)
            pipe.xreadgroup(GROUP, CONSUMER_NAME, {stream: ">"}, count=setup.batch)
            replies = await pipe.execute()
            ids = []
            size = 0
            for _, entries in replies[-1] or []:
                for entry_id, fields in entries:
                    size += len(fields[b"payload"])
                    ids.append(entry_id)
            if ids:
                tally.add(len(ids), size)
            else:
                await asyncio.sleep(0.001)  # this partition is drained
        if ids:
            await client.xack(stream, GROUP, *ids)

    try:
        await client.ping()
        watch.start()
        await asyncio.gather(*map(read_partition, setup.topic.stream_keys))
        watch.stop()
    finally:
        await client.aclose()
    check_tally(setup, tally)


async def faststream_batch_subscriber(setup: Setup, watch: Stopwatch) -> None:
    import faststream.redis as fs  # type: ignore[import-not-found, unused-ignore]

    tally = Tally(setup.messages)
    broker = faststream_broker(setup.url)

    async def handler(bodies: list[bytes]) -> None:
        tally.add(len(bodies), sum(map(len, bodies)))

    for key in setup.topic.stream_keys:
        # The group exists already (made at id 0 after the fill), so the
        # subscriber's own XGROUP CREATE at "$" is refused and it reads ">".
        sub = fs.StreamSub(
            key,
            group=GROUP,
            consumer=CONSUMER_NAME,
            batch=True,
            max_records=setup.batch,
        )
        broker.subscriber(stream=sub)(handler)
    await broker.connect()
    try:
        watch.start()
        await broker.start()
        await tally.wait()
        watch.stop()
    finally:
        await broker.stop()
    check_tally(setup, tally)


def check_tally(setup: Setup, tally: Tally) -> None:
    expected = setup.messages * len(setup.payload)
    if tally.messages != setup.messages or tally.payload_bytes != expected:
        raise AssertionError(
            f"handler saw {tally.messages} messages, {tally.payload_bytes} B; "
            f"expected {setup.messages}, {expected} B"
        )


# rounds


async def reset_streams(setup: Setup) -> None:
    conn = await Connection.open(ConnectionSettings.from_url(setup.url))
    try:
        commands = [encode_command("DEL", key) for key in setup.topic.stream_keys]
        await conn.request(b"".join(commands), len(commands))
    finally:
        await conn.close()


async def create_groups(setup: Setup) -> None:
    conn = await Connection.open(ConnectionSettings.from_url(setup.url))
    try:
        commands = [
            encode_command("XGROUP", "CREATE", key, GROUP, "0", "MKSTREAM")
            for key in setup.topic.stream_keys
        ]
        await conn.request(b"".join(commands), len(commands))
    finally:
        await conn.close()


async def check_stored(setup: Setup, pending_too: bool) -> None:
    """Every message is in the streams and, after a consumer, acked."""
    conn = await Connection.open(ConnectionSettings.from_url(setup.url))
    try:
        keys = setup.topic.stream_keys
        commands = [encode_command("XLEN", key) for key in keys]
        if pending_too:
            commands += [encode_command("XPENDING", key, GROUP) for key in keys]
        replies = await conn.request(b"".join(commands), len(commands))
    finally:
        await conn.close()
    stored = sum(int(n) for n in replies[: len(keys)])
    if stored != setup.messages:
        raise AssertionError(f"{stored} entries stored, {setup.messages} sent")
    pending = sum(int(r[0]) for r in replies[len(keys) :])
    if pending:
        raise AssertionError(f"{pending} entries left unacknowledged")


async def server_cpu_s(setup: Setup) -> float:
    """CPU time the server process has used so far (INFO cpu, user + sys)."""
    conn = await Connection.open(ConnectionSettings.from_url(setup.url))
    try:
        info = (await conn.execute("INFO", "cpu")).decode()
    finally:
        await conn.close()
    facts = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return float(facts["used_cpu_user"]) + float(facts["used_cpu_sys"])


async def measure(setup: Setup, contender: Contender) -> Sample:
    """Rate, client and server CPU per message of one round.

    The server's CPU is read before and after the contender's whole round,
    so it also holds connecting and closing: a little more than the timed
    part, the same for every contender.
    """
    await reset_streams(setup)
    if contender.fill is not None:
        await contender.fill(setup, Stopwatch())
        await create_groups(setup)
    watch = Stopwatch()
    server_before_s = await server_cpu_s(setup)
    # Start every contender without garbage left by the one before: the
    # full collection that garbage would soon cause (tens of ms with
    # FastStream's modules loaded, a sizable share of a round) should not be
    # billed to whichever contender happens to trigger it.
    gc.collect()
    await contender.run(setup, watch)
    server_s = await server_cpu_s(setup) - server_before_s
    await check_stored(setup, pending_too=contender.fill is not None)
    return Sample(
        rate_per_s=setup.messages / watch.wall_s,
        cpu_us=watch.cpu_s / setup.messages * 1e6,
        server_us=server_s / setup.messages * 1e6,
    )


def contenders(only: list[str] | None = None) -> list[Contender]:
    """Every contender, or those whose names contain one of `only` (the
    baselines always stay, since every ratio needs them)."""
    found = [
        Contender("produce", "aioredismq send_many", aioredismq_send_many),
        Contender("produce", "aioredismq send", aioredismq_send),
        Contender("produce", "redis-py pipeline", redis_py_pipeline),
        Contender(
            "consume",
            "aioredismq GroupConsumer",
            aioredismq_group_consumer,
            fill_aioredismq,
        ),
        Contender(
            "consume",
            "aioredismq Consumer.run",
            aioredismq_consumer_run,
            fill_aioredismq,
        ),
        Contender(
            "consume",
            "aioredismq Consumer iter",
            aioredismq_consumer_iter,
            fill_aioredismq,
        ),
        Contender(
            "consume", "redis-py XREADGROUP loop", redis_py_xreadgroup, fill_aioredismq
        ),
        Contender(
            "consume",
            "redis-py task/partition",
            redis_py_per_partition,
            fill_aioredismq,
        ),
    ]
    if HAVE_FASTSTREAM:
        found += [
            Contender("produce", "FastStream pipeline", faststream_pipeline),
            Contender(
                "consume",
                "FastStream batch sub",
                faststream_batch_subscriber,
                fill_faststream,
            ),
        ]
    if only:
        baselines = {*REDIS_PY.values(), *FASTSTREAM.values()}
        found = [
            c
            for c in found
            if c.name in baselines or any(word in c.name for word in only)
        ]
    return found


REDIS_PY = {"produce": "redis-py pipeline", "consume": "redis-py XREADGROUP loop"}
FASTSTREAM = {"produce": "FastStream pipeline", "consume": "FastStream batch sub"}


def report(setup: Setup, rounds: int, found: list[Contender]) -> None:
    """One table per size: medians over the rounds, and ratios to redis-py's
    loop and to FastStream on the same side.

    A ratio is taken within each round (the contender against the baseline
    of that same round, run minutes apart at most) and the median of those
    is shown, so that a busy spell on a shared machine moves both sides of
    a ratio rather than one. "msg/s" is wall-clock throughput; "CPU" is the
    baseline's client CPU per message over the row's (how much more one
    fully busy client process can push through); both read "above 1: better
    than the baseline". "srv µs" is the server's CPU per message: with one
    round trip in flight the wall clock cannot beat client plus server time
    per message, and no client can beat the server's own time.
    """
    print(
        f"\n{setup.messages:,} messages of {len(setup.payload)} B, batch/COUNT "
        f"{setup.batch}, {setup.topic.partitions} partitions, "
        f"medians of {rounds} rounds"
    )
    by_name = {c.name: c for c in found}

    def ratios(c: Contender, baseline_name: str) -> str:
        baseline = by_name.get(baseline_name)
        if baseline is None:
            return f"{'-':>7}{'-':>6}"
        pairs = list(zip(c.samples, baseline.samples, strict=True))
        rate = statistics.median(a.rate_per_s / b.rate_per_s for a, b in pairs)
        cpu = statistics.median(b.cpu_us / a.cpu_us for a, b in pairs)
        return f"{rate:7.2f}{cpu:6.1f}"

    print(
        f"  {'':8}{'':26}{'msg/s':>9}{'msg/s':>9}{'CPU µs':>8}{'srv µs':>8}"
        f"{'vs redis-py':>14}{'vs FastStream':>14}"
    )
    print(
        f"  {'side':8}{'contender':26}{'median':>9}{'best':>9}{'/msg':>8}"
        f"{'/msg':>8}{'msg/s':>8}{'CPU':>6}{'msg/s':>8}{'CPU':>6}"
    )
    for c in sorted(found, key=lambda c: c.side != "produce"):
        rates = [sample.rate_per_s for sample in c.samples]
        cpu_us = statistics.median(sample.cpu_us for sample in c.samples)
        server_us = statistics.median(sample.server_us for sample in c.samples)
        print(
            f"  {c.side:8}{c.name:26}{statistics.median(rates):9,.0f}"
            f"{max(rates):9,.0f}{cpu_us:8.2f}{server_us:8.2f} "
            f"{ratios(c, REDIS_PY[c.side])} {ratios(c, FASTSTREAM[c.side])}"
        )
    for side, baseline_name in REDIS_PY.items():
        # The server's own time per message bounds every client; with one
        # round trip in flight, a client's wall clock per message is its own
        # CPU time plus the server's.
        ours = [c for c in found if c.side == side and c.name.startswith("aioredismq")]
        baseline = by_name.get(baseline_name)
        if not ours or baseline is None:
            continue
        server_us = min(
            statistics.median(sample.server_us for sample in c.samples) for c in ours
        )
        baseline_rate = statistics.median(s.rate_per_s for s in baseline.samples)
        print(
            f"  {side} bound: the server needs {server_us:.2f} µs per message, so "
            f"no client passes {1e6 / server_us:,.0f} msg/s, "
            f"{1e6 / server_us / baseline_rate:.2f}x {baseline_name}"
        )


async def main_async(args: argparse.Namespace, url: str, server: str) -> None:
    print(f"server: {server}")
    loop_name = "uvloop" if args.uvloop else "asyncio"
    print(f"client: Python {sys.version.split()[0]}, {loop_name} event loop")
    if not HAVE_FASTSTREAM:
        print(
            "note: faststream is not importable here, so its rows are skipped; "
            "see the top of this file for the benchmark venv that has it"
        )
    started = time.perf_counter()
    for size in args.sizes:
        setup = Setup(
            url=url,
            topic=Topic("bench-core", args.partitions),
            payload=make_payload(size),
            messages=args.messages,
            batch=args.batch,
            prefetch=args.prefetch,
            concurrency=args.concurrency,
        )
        found = contenders(args.only)
        for round_index in range(args.rounds):
            # Start each round one place further along, so no contender always
            # runs first (cold caches) or right after the slowest one.
            shift = round_index % len(found)
            for contender in found[shift:] + found[:shift]:
                contender.samples.append(await measure(setup, contender))
        await reset_streams(setup)
        report(setup, args.rounds, found)
    print(f"\n({time.perf_counter() - started:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="use this server instead of a private one")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1024, 100], help="payload bytes"
    )
    parser.add_argument(
        "--batch", type=int, default=100, help="messages per produce batch and "
        "per-partition COUNT of each read",
    )  # fmt: skip
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefetch", type=int, default=100, help="Consumer prefetch")
    parser.add_argument(
        "--concurrency", type=int, default=10, help="Consumer.run concurrency"
    )
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument(
        "--only", nargs="+", metavar="WORD",
        help="only contenders whose names contain a WORD (and the baselines)",
    )  # fmt: skip
    args = parser.parse_args()

    def run(main_coro: Coroutine[Any, Any, None]) -> None:
        if args.uvloop:
            import uvloop

            uvloop.run(main_coro)
        else:
            asyncio.run(main_coro)

    if args.redis_url:
        run(main_async(args, args.redis_url, args.redis_url))
        return
    with EmbeddedServer() as server:
        run(main_async(args, server.url, server.describe()))


if __name__ == "__main__":
    main()
