"""Producer throughput: aioredismq against a plain redis-py pipeline, same run.

Both sides send the same messages to the same server in the same pattern:
batches of --batch XADDs, one round trip each, one batch in flight at a time,
one process. The script prints messages per second and client CPU time per
message for each side and the ratio, best of --repeat rounds (rounds
alternate between the sides so machine noise hits both alike).

    python benchmarks/producer_throughput.py            # embedded server
    python benchmarks/producer_throughput.py --redis-url redis://127.0.0.1:6379
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as redis_asyncio  # noqa: E402

from aioredismq.connection import Connection, ConnectionSettings  # noqa: E402
from aioredismq.producer import Producer  # noqa: E402
from aioredismq.topic import Topic  # noqa: E402
from runner.server import EmbeddedServer  # noqa: E402


async def redis_py_round(
    url: str, topic: Topic, payload: bytes, total: int, batch: int
) -> None:
    client = redis_asyncio.Redis.from_url(url)
    try:
        keys = topic.stream_keys
        sent = 0
        partition = 0
        while sent < total:
            pipe = client.pipeline(transaction=False)
            for _ in range(batch):
                stamp = time.time_ns() // 1000
                pipe.xadd(keys[partition], {"ts_us": stamp, "payload": payload})
                partition = (partition + 1) % len(keys)
            await pipe.execute()
            sent += batch
    finally:
        await client.aclose()


async def aioredismq_round(
    url: str, topic: Topic, payload: bytes, total: int, batch: int
) -> None:
    conn = await Connection.open(ConnectionSettings.from_url(url))
    try:
        producer = Producer(conn, topic)
        payloads = [payload] * batch
        sent = 0
        while sent < total:
            await producer.send_many(payloads)
            sent += batch
    finally:
        await conn.close()


async def aioredismq_send_round(
    url: str, topic: Topic, payload: bytes, total: int, batch: int
) -> None:
    """The per-message `send` API: `batch` concurrent sends per tick."""
    conn = await Connection.open(ConnectionSettings.from_url(url))
    try:
        producer = Producer(conn, topic)
        sent = 0
        while sent < total:
            await asyncio.gather(*(producer.send(payload) for _ in range(batch)))
            sent += batch
    finally:
        await conn.close()


Round = Callable[[str, Topic, bytes, int, int], Awaitable[None]]


async def measure(
    round_: Round, url: str, topic: Topic, payload: bytes, total: int, batch: int
) -> tuple[float, float]:
    """(messages per second, client CPU µs per message) of one round."""
    conn = await Connection.open(ConnectionSettings.from_url(url))
    for key in topic.stream_keys:
        await conn.execute("DEL", key)
    await conn.close()
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    await round_(url, topic, payload, total, batch)
    wall_s = time.perf_counter() - wall_start
    cpu_s = time.process_time() - cpu_start
    return total / wall_s, cpu_s / total * 1e6


async def main_async(args: argparse.Namespace, url: str) -> None:
    topic = Topic("bench-producer", args.partitions)
    payload = b"x" * args.size
    sides: dict[str, Round] = {
        "redis-py pipeline": redis_py_round,
        "aioredismq send_many": aioredismq_round,
        "aioredismq send": aioredismq_send_round,
    }
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeat):
        for name, round_ in sides.items():
            rate, cpu_us = await measure(
                round_, url, topic, payload, args.messages, args.batch
            )
            if name not in best or rate > best[name][0]:
                best[name] = (rate, cpu_us)
    baseline = best["redis-py pipeline"][0]
    print(
        f"{args.messages} messages of {args.size} B, batches of {args.batch}, "
        f"{args.partitions} partitions, best of {args.repeat}"
    )
    for name, (rate, cpu_us) in best.items():
        print(
            f"  {name:22} {rate:10,.0f} msg/s  {cpu_us:6.1f} µs CPU/msg  "
            f"x{rate / baseline:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="use this server instead of a private one")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024, help="payload bytes")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    runner = asyncio.run
    if args.uvloop:
        import uvloop

        runner = uvloop.run
    if args.redis_url:
        runner(main_async(args, args.redis_url))
        return
    with EmbeddedServer() as server:
        runner(main_async(args, server.url))


if __name__ == "__main__":
    main()
