"""Shutting down an iterating consumer cleanly, and surviving a killed one.

The `run(handler)` side of shutdown is in test_pitfalls_core.py (B12).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aioredismq.client import Client
from aioredismq.connection import Connection
from aioredismq.errors import ClosedError
from aioredismq.message import Message
from runner.server import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent

SHUTDOWN_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time, warnings
    warnings.simplefilter("error")
    from aioredismq.client import Client
    from aioredismq.consumer import AckMode

    async def main(url):
        client = await Client.connect(url)
        topic = await client.create_topic("b12", 2)
        producer = client.producer(topic)
        consumer = client.consumer(topic, "g", "c", block_ms=2000,
                                   ack_mode=AckMode.MANUAL)
        await consumer.start()
        for i in range(5):
            await producer.send(b"%d" % i)
        async for message in consumer:
            if message.payload == b"4":
                break
        started = time.monotonic()
        await client.close()
        print(f"shutdown_s={time.monotonic() - started:.2f}")

    url, loop_kind = sys.argv[1], sys.argv[2]
    if loop_kind == "uvloop":
        import uvloop
        uvloop.run(main(url), debug=True)
    else:
        asyncio.run(main(url), debug=True)
    """
)


async def _client_count(conn: Connection) -> int:
    listing = await conn.execute("CLIENT", "LIST")
    return len(listing.splitlines())


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
async def test_iterating_consumer_shuts_down_leaving_nothing_behind(
    conn: Connection, redis_url: str, loop_kind: str
) -> None:
    before = await _client_count(conn)
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
        "Unclosed",
        "unclosed",
        "Event loop is closed",
        "Traceback",
    ):
        assert bad not in done.stderr, done.stderr
    shutdown_s = float(done.stdout.split("shutdown_s=")[1])
    assert shutdown_s < 2.0 + 1.0  # block time + 1 s
    await asyncio.sleep(0.2)
    assert await _client_count(conn) == before
    # Read but never acked: still pending after shutdown, not acked on exit.
    pending = [
        (await conn.execute("XPENDING", key, "g"))[0] for key in ("{b12:0}", "{b12:1}")
    ]
    assert sum(pending) == 5


CRASH_CONSUMER = textwrap.dedent(
    """
    import asyncio, sys
    from aioredismq.client import Client

    async def main(url):
        client = await Client.connect(url)
        topic = await client.topic("crash")
        consumer = client.consumer(topic, "g", "victim", prefetch=50)

        async def slow(message):
            print(message.payload.decode(), flush=True)
            await asyncio.sleep(0.01)

        await consumer.run(slow)

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_killed_consumer_loses_nothing(conn: Connection, redis_url: str) -> None:
    client = await Client.connect(redis_url)
    topic = await client.create_topic("crash", 4)
    producer = client.producer(topic)
    # Entry ids repeat across partitions; the payload names each message.
    sent = {b"%d" % i for i in range(400)}
    for payload in sorted(sent):
        await producer.send(payload)

    victim = subprocess.Popen(
        [sys.executable, "-c", CRASH_CONSUMER, redis_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert victim.stdout is not None
    seen_by_victim = set()
    for line in victim.stdout:
        seen_by_victim.add(line.strip().encode())
        if len(seen_by_victim) >= 100:
            break
    victim.send_signal(signal.SIGKILL)  # mid-batch: its prefetch is pending
    victim.wait(10)
    victim.stdout.close()
    assert victim.returncode == -signal.SIGKILL

    handled = set()
    survivor = client.consumer(
        topic, "g", "survivor", claim_idle_ms=200, claim_interval_ms=100
    )

    async def record(message) -> None:  # type: ignore[no-untyped-def]
        handled.add(message.payload)

    runner = asyncio.create_task(survivor.run(record))
    async with asyncio.timeout(20):
        while not sent <= handled | seen_by_victim or any(
            await client.pending(topic, "g")
        ):
            await asyncio.sleep(0.1)
    await survivor.stop()
    await runner
    await client.close()

    # Everything handled at least once; what the victim took and never
    # acked was claimed from it and handled again.
    assert sent <= handled | seen_by_victim
    assert survivor.stats.claimed > 0
    assert sum(await _pending(conn)) == 0


async def _pending(conn: Connection) -> list[int]:
    return [
        (await conn.execute("XPENDING", f"{{crash:{i}}}", "g"))[0] for i in range(4)
    ]


async def test_stops_are_bounded_when_the_server_stops_answering() -> None:
    # A frozen server (SIGSTOP): connections stay open, nothing is answered.
    # Without a socket timeout a send waits for ever, but stopping a
    # consumer and closing the client take their timeouts, not for ever.
    with EmbeddedServer("valkey") as server:
        assert server.pid is not None
        client = await Client.connect(server.url)
        topic = await client.create_topic("frozen", 2)
        producer = client.producer(topic)
        consumer = client.consumer(topic, "g", "c1", block_ms=50)
        handled: list[bytes] = []

        async def handle(message: Message) -> None:
            handled.append(message.payload)

        running = asyncio.create_task(consumer.run(handle))
        await producer.send(b"before")
        async with asyncio.timeout(5):
            while not handled:
                await asyncio.sleep(0.01)
        os.kill(server.pid, signal.SIGSTOP)
        try:
            # Three producers, each with a send the server never answers.
            producers = [producer, client.producer(topic), client.producer(topic)]
            sendings = [
                asyncio.create_task(one.send(b"unanswered")) for one in producers
            ]
            await asyncio.sleep(0.2)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await consumer.stop(timeout_s=0.5)
            await running
            stop_s = loop.time() - started
            started = loop.time()
            await client.close(timeout_s=1)
            close_s = loop.time() - started
        finally:
            os.kill(server.pid, signal.SIGCONT)
        for sending in sendings:
            assert sending.done()
            assert isinstance(sending.exception(), ClosedError)
    # Handlers (none running), reads in flight and last acks: 0.5 s each at
    # most. The producers wait up to 1 s for their sends, all at once (one
    # after the other they would take 3 s), then the connection closes.
    assert stop_s < 2.5
    assert close_s < 2
    assert handled == [b"before"]
