"""The Redis Streams driver on its own, against the test server."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aioredismq.connection import Connection, ConnectionSettings
from aioredismq.errors import DriverConfigError, ServerUnavailableError
from aioredismq.topic import create_topic, trim_acknowledged
from driver.base import ConsumerCallback
from driver.redis_streams import RedisStreamsDriver
from runner.drivers import load_driver_spec

BINARY_PAYLOADS = [
    bytes(range(256)),
    b"\xc3\x28",  # invalid UTF-8
    b"",
    b"line\r\nbreak",
    os.urandom(1 << 20),
]


class Collector(ConsumerCallback):
    def __init__(self, expected: int) -> None:
        self.received: list[tuple[bytes, int]] = []
        self.expected = expected
        self.done = asyncio.Event()

    def message_received(self, payload: bytes, publish_timestamp_us: int) -> None:
        self.received.append((payload, publish_timestamp_us))
        if len(self.received) >= self.expected:
            self.done.set()


@pytest.fixture
async def driver(
    settings: ConnectionSettings, conn: Connection
) -> AsyncIterator[RedisStreamsDriver]:
    driver = RedisStreamsDriver()
    config = {"redisHost": settings.host, "redisPort": settings.port}
    await driver.initialize(config, "test")
    yield driver
    await driver.close()


async def test_binary_payloads_arrive_byte_for_byte(driver: RedisStreamsDriver) -> None:
    await driver.create_topic("bin", 3)
    collector = Collector(len(BINARY_PAYLOADS))
    await driver.create_consumer("bin", "sub", collector)
    producer = await driver.create_producer("bin")
    before_us = time.time_ns() // 1000
    for payload in BINARY_PAYLOADS:
        await producer.send_async(None, payload)
    await asyncio.wait_for(collector.done.wait(), 10)
    after_us = time.time_ns() // 1000

    payloads = [payload for payload, _ in collector.received]
    assert sorted(payloads) == sorted(BINARY_PAYLOADS)
    for _, stamp_us in collector.received:
        assert before_us <= stamp_us <= after_us


async def test_send_batch_reports_no_failures(driver: RedisStreamsDriver) -> None:
    await driver.create_topic("batch", 4)
    collector = Collector(100)
    await driver.create_consumer("batch", "sub", collector)
    producer = await driver.create_producer("batch")
    keys = [f"k{i}" for i in range(100)]
    failed = await producer.send_batch(keys, [b"%d" % i for i in range(100)])
    assert failed == 0
    await asyncio.wait_for(collector.done.wait(), 10)
    assert sorted(int(p) for p, _ in collector.received) == list(range(100))


async def test_two_subscriptions_each_get_everything(
    driver: RedisStreamsDriver,
) -> None:
    await driver.create_topic("fan", 2)
    first, second = Collector(10), Collector(10)
    await driver.create_consumer("fan", "sub-a", first)
    await driver.create_consumer("fan", "sub-b", second)
    producer = await driver.create_producer("fan")
    assert await producer.send_batch(None, [b"m"] * 10) == 0
    await asyncio.wait_for(first.done.wait(), 10)
    await asyncio.wait_for(second.done.wait(), 10)
    assert len(first.received) == len(second.received) == 10


async def test_consumers_of_one_subscription_share_messages(
    driver: RedisStreamsDriver,
) -> None:
    await driver.create_topic("share", 4)
    total = Collector(200)

    class Counting(ConsumerCallback):
        def __init__(self) -> None:
            self.count = 0

        def message_received(self, payload: bytes, publish_timestamp_us: int) -> None:
            self.count += 1
            total.message_received(payload, publish_timestamp_us)

    a, b = Counting(), Counting()
    await driver.create_consumer("share", "sub", a)
    await driver.create_consumer("share", "sub", b)
    producer = await driver.create_producer("share")
    for _ in range(20):
        assert await producer.send_batch(None, [b"x"] * 10) == 0
        await asyncio.sleep(0.01)
    await asyncio.wait_for(total.done.wait(), 10)
    await asyncio.sleep(0.3)
    assert a.count + b.count == 200


async def test_delete_topics_removes_every_key(
    driver: RedisStreamsDriver, conn: Connection
) -> None:
    await driver.create_topic("gone", 2)
    collector = Collector(1)
    await driver.create_consumer("gone", "sub", collector)
    producer = await driver.create_producer("gone")
    await producer.send_async("k", b"x")
    await asyncio.wait_for(collector.done.wait(), 10)
    await driver.delete_topics(["gone"])
    assert await conn.execute("KEYS", "*gone*") == []


async def test_trim_keeps_what_a_group_still_needs(
    conn: Connection, settings: ConnectionSettings
) -> None:
    topic = await create_topic(conn, "trim", 1)
    key = topic.stream_keys[0]
    await conn.execute("XGROUP", "CREATE", key, "slow", "0", "MKSTREAM")
    await conn.execute("XGROUP", "CREATE", key, "fast", "0")
    # 1,000 entries in small radix nodes so that approximate trimming bites.
    await conn.execute("CONFIG", "SET", "stream-node-max-entries", "10")
    try:
        for i in range(1000):
            await conn.execute("XADD", key, f"{i + 1}-0", "f", "v")
        # "fast" read and acked everything; "slow" read 500 and acked 300.
        fast = await conn.execute(
            "XREADGROUP", "GROUP", "fast", "c", "STREAMS", key, ">"
        )
        await conn.execute("XACK", key, "fast", *[e[0] for e in fast[0][1]])
        slow = await conn.execute(
            "XREADGROUP", "GROUP", "slow", "c", "COUNT", "500", "STREAMS", key, ">"
        )
        await conn.execute("XACK", key, "slow", *[e[0] for e in slow[0][1][:300]])

        removed = await trim_acknowledged(conn, topic)
        first = (await conn.execute("XRANGE", key, "-", "+", "COUNT", "1"))[0][0]
    finally:
        await conn.execute("CONFIG", "SET", "stream-node-max-entries", "100")
    # Entry 301 is the oldest still pending in "slow": it and all after stay.
    assert 250 <= removed <= 300
    assert int(first.split(b"-")[0]) <= 301
    assert await conn.execute("XLEN", key) == 1000 - removed


def test_omb_java_driver_file_maps_to_this_driver(tmp_path: Path) -> None:
    path = tmp_path / "redis.yaml"
    path.write_text(
        "name: Redis\n"
        "driverClass: io.openmessaging.benchmark.driver.redis.RedisBenchmarkDriver\n"
        "redisHost: 127.0.0.1\nredisPort: 6379\n"
        "jedisPoolMaxTotal: 8\njedisPoolMaxIdle: 8\n"
    )
    spec = load_driver_spec(path)
    assert spec.driver_class == "driver.redis_streams.RedisStreamsDriver"
    assert spec.config["jedisPoolMaxTotal"] == 8


async def test_java_pool_keys_are_named_as_ignored(
    settings: ConnectionSettings, caplog: pytest.LogCaptureFixture
) -> None:
    driver = RedisStreamsDriver()
    config: dict[str, object] = {
        "redisHost": settings.host,
        "redisPort": settings.port,
        "jedisPoolMaxTotal": 8,
        "jedisPoolMaxIdle": 8,
    }
    with caplog.at_level("WARNING"):
        await driver.initialize(config, "omb/redis.yaml")
    await driver.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "omb/redis.yaml: ignoring keys this driver does not use: "
        "jedisPoolMaxIdle, jedisPoolMaxTotal"
    ]


def test_a_driver_key_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "redis.yaml"
    path.write_text(
        "name: Redis\n"
        "driverClass: driver.redis_streams.RedisStreamsDriver\n"
        "redisPort: 6379\nredisHost: 127.0.0.1\nredisPort: 6380\n"
    )
    with pytest.raises(
        DriverConfigError,
        match=f"^{path}: \"duplicate key 'redisPort' on lines 3 and 5\" is not "
        "allowed; expected valid YAML$",
    ):
        load_driver_spec(path)


def test_a_misspelt_driver_key_is_refused() -> None:
    with pytest.raises(DriverConfigError, match="did you mean redisPort"):
        RedisStreamsDriver.check_config({"redisPrt": 6390}, "d.yaml")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("redisTlsCaFile", "ca.pem"),
        ("redisTlsCertFile", "client.pem"),
        ("redisTlsKeyFile", "client.key"),
        ("redisTlsVerify", False),
    ],
)
@pytest.mark.parametrize("tls", [None, False], ids=["tls-unset", "tls-false"])
def test_a_tls_key_without_tls_is_refused(
    key: str, value: object, tls: bool | None
) -> None:
    config = {"redisHost": "127.0.0.1", key: value}
    if tls is not None:
        config["redisTls"] = tls
    with pytest.raises(DriverConfigError) as caught:
        RedisStreamsDriver.check_config(config, "d.yaml")
    assert str(caught.value).startswith(f"d.yaml: {key}: {value!r} is not allowed; ")
    assert "set redisTls: true" in str(caught.value)


async def test_tls_to_a_plaintext_server_says_it_may_not_speak_tls(
    settings: ConnectionSettings,
) -> None:
    """TLS on, against the plaintext test server: no answer either way, and
    only the TLS check says the server may not speak it; a plaintext check
    against a listener that never answers does not."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        plain = {"redisHost": "127.0.0.1", "redisPort": silent.getsockname()[1]}
        tls = {
            "redisHost": settings.host,
            "redisPort": settings.port,
            "redisTls": True,
            "redisTlsVerify": False,
        }
        checks = [RedisStreamsDriver.check_server(c, "d.yaml") for c in (tls, plain)]
        errors = await asyncio.gather(*checks, return_exceptions=True)
    hint = "does not speak TLS on that port"
    tls_error, plain_error = errors
    assert isinstance(tls_error, ServerUnavailableError), tls_error
    assert "no answer in 2 s" in str(tls_error)
    assert hint in str(tls_error)
    assert "set redisTls: false" in str(tls_error)
    assert isinstance(plain_error, ServerUnavailableError), plain_error
    assert "no answer in 2 s" in str(plain_error)
    assert hint not in str(plain_error)
