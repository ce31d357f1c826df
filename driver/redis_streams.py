"""The Redis / Valkey Streams driver, built on the aioredismq core.

Unlike OMB's own Redis driver it honours `partitionsPerTopic` (one stream per
partition), acks what it consumes, keeps payloads as bytes, never blocks the
event loop inside a send, removes what a run created, and stamps each message
with the producer's clock in microseconds.

Driver file keys (besides `name` and `driverClass`):

    redisHost, redisPort        server address (127.0.0.1, 6379)
    redisUser, redisPass        credentials; the user only counts with a password
    redisDb                     database number (0)
    redisTls                    connect with TLS (false); the four keys
                                below are refused without it
    redisTlsCaFile              PEM file of the authorities to check the
                                server's certificate against (system's)
    redisTlsVerify              check the server's certificate (true)
    redisTlsCertFile, redisTlsKeyFile
                                client certificate and key, for servers that
                                ask for one
    consumerReadCount           entries per partition per read (500)
    consumerBlockMs             how long an idle read waits on the server (100)
    streamMaxLenApprox          trim each partition to about this many entries
                                (`XADD MAXLEN ~`), consumed or not; unset: off
    trimIntervalMs              how often consumed entries are trimmed away
                                (100); 0 keeps every entry until the run ends

Without trimming a stream keeps every entry, and at 50,000 msg/s of 1 KiB
the server grows by 3 GB a minute, which slows it down as it allocates.
Trimming consumed entries keeps memory flat and loses nothing a group still
needs (see `aioredismq.topic.trim_acknowledged`). Trimming often matters: the
server frees trimmed entries while everything else waits, and one pass a
second at 50,000 msg/s stalls it for about 10 ms, which shows as the p99 of
publish latency; ten smaller passes a second do not.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aioredismq.connection import Connection, ConnectionSettings, is_reply_error
from aioredismq.consumer import Entry, GroupConsumer, entry_payload_ts
from aioredismq.errors import (
    ConfigError,
    DriverConfigError,
    RedisError,
    ReplyError,
    ServerUnavailableError,
    check_misspelt_keys,
)
from aioredismq.message import FIELD_PAYLOAD, FIELD_TS
from aioredismq.producer import Producer
from aioredismq.tasks import cancel_and_wait
from aioredismq.topic import (
    Topic,
    create_topic,
    delete_topic,
    open_topic,
    trim_acknowledged,
)
from driver.base import (
    BenchmarkConsumer,
    BenchmarkDriver,
    BenchmarkProducer,
    ConsumerCallback,
)

__all__ = ["RedisStreamsDriver"]

logger = logging.getLogger(__name__)

FRAMEWORK_KEYS = frozenset({"name", "driverClass"})
# Keys of OMB's Java driver file that mean nothing here (Jedis pool sizes:
# this driver gives every producer and consumer its own connection instead).
JAVA_ONLY_KEYS = frozenset({"jedisPoolMaxTotal", "jedisPoolMaxIdle"})
OWN_KEYS = frozenset(
    {
        "redisHost",
        "redisPort",
        "redisUser",
        "redisPass",
        "redisDb",
        "redisTls",
        "redisTlsCaFile",
        "redisTlsVerify",
        "redisTlsCertFile",
        "redisTlsKeyFile",
        "consumerReadCount",
        "consumerBlockMs",
        "streamMaxLenApprox",
        "trimIntervalMs",
    }
)


#: Connection settings named in errors by the driver-file key that sets them.
_TLS_KEYS = {
    "tls_ca_file": "redisTlsCaFile",
    "tls_cert_file": "redisTlsCertFile",
    "tls_key_file": "redisTlsKeyFile",
}
#: Keys that mean something only with `redisTls: true`.
_TLS_ONLY_KEYS = (*_TLS_KEYS.values(), "redisTlsVerify")


def _random_suffix() -> str:
    return base64.urlsafe_b64encode(os.urandom(5)).decode().rstrip("=")


def _int_key(
    config: Mapping[str, Any], source: str, key: str, default: int, low: int, high: int
) -> int:
    value = config.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value <= high
    ):
        raise DriverConfigError(source, key, value, f"expected an integer {low}-{high}")
    return value


def _str_key(config: Mapping[str, Any], source: str, key: str) -> str | None:
    value = config.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise DriverConfigError(source, key, value, "expected a string")


#: How long the check before a run waits for the server. Short, because it
#: runs before anything else and a wrong address should be reported at once.
CHECK_TIMEOUT_S: Final = 2.0


@dataclasses.dataclass(frozen=True, slots=True)
class _Options:
    """A driver file's keys, checked, with this driver's defaults filled in."""

    settings: ConnectionSettings
    read_count: int
    block_ms: int
    maxlen: int | None
    trim_interval_ms: int


def _parse_options(config: Mapping[str, Any], source: str) -> _Options:
    """Check every key this driver reads; the first bad one raises."""
    host = _str_key(config, source, "redisHost") or "127.0.0.1"
    tls = config.get("redisTls", False)
    if not isinstance(tls, bool):
        raise DriverConfigError(source, "redisTls", tls, "expected true or false")
    tls_verify = config.get("redisTlsVerify", True)
    if not isinstance(tls_verify, bool):
        allowed = "expected true or false"
        raise DriverConfigError(source, "redisTlsVerify", tls_verify, allowed)
    if not tls:
        for tls_key in _TLS_ONLY_KEYS:
            if config.get(tls_key) is not None:
                raise DriverConfigError(
                    source,
                    tls_key,
                    config[tls_key],
                    "it counts only with TLS, which is off: set redisTls: true, "
                    "or remove the key (else the run goes ahead in plaintext)",
                )
    password = _str_key(config, source, "redisPass")
    # OMB's driver uses the user only together with a password.
    username = _str_key(config, source, "redisUser") if password is not None else None
    try:
        settings = ConnectionSettings(
            host=host,
            port=_int_key(config, source, "redisPort", 6379, 1, 65535),
            username=username,
            password=password,
            db=_int_key(config, source, "redisDb", 0, 0, 1 << 16),
            tls=tls,
            tls_ca_file=_str_key(config, source, "redisTlsCaFile"),
            tls_cert_file=_str_key(config, source, "redisTlsCertFile"),
            tls_key_file=_str_key(config, source, "redisTlsKeyFile"),
            tls_verify=tls_verify,
        )
        settings.tls_context()  # loads the files: a bad one is named now
    except DriverConfigError:
        raise
    except ConfigError as err:
        key = _TLS_KEYS.get(err.field or "", err.field)
        raise DriverConfigError(source, key, err.value, err.allowed) from err
    maxlen = None
    if config.get("streamMaxLenApprox") is not None:
        maxlen = _int_key(config, source, "streamMaxLenApprox", 0, 1, 1 << 62)
    return _Options(
        settings=settings,
        read_count=_int_key(config, source, "consumerReadCount", 500, 1, 1_000_000),
        block_ms=_int_key(config, source, "consumerBlockMs", 100, 1, 60_000),
        maxlen=maxlen,
        trim_interval_ms=_int_key(config, source, "trimIntervalMs", 100, 0, 3_600_000),
    )


def _unused_keys(config: Mapping[str, Any]) -> list[str]:
    ignored = sorted(set(config) & JAVA_ONLY_KEYS)
    unknown = sorted(set(config) - FRAMEWORK_KEYS - JAVA_ONLY_KEYS - OWN_KEYS)
    return ignored + unknown


def _address_keys(config: Mapping[str, Any], source: str) -> str:
    """Where the address came from, for an error that names the keys."""
    parts = [
        f"{key} {config[key]!r}" if key in config else f"{key} unset"
        for key in ("redisHost", "redisPort")
    ]
    return f"{' and '.join(parts)} in {source}"


def _refusal(
    source: str, settings: ConnectionSettings, err: ReplyError, where: str
) -> DriverConfigError | ServerUnavailableError:
    """The driver key an error reply to the first commands is about, if any."""
    said = f"the server at {settings.address} refused it: {err}"
    text = str(err)
    if "DB index" in text:
        return DriverConfigError(source, "redisDb", settings.db, said)
    if text.startswith("NOAUTH") and settings.password is None:
        wanted = (
            f"the server at {settings.address} wants a password (redisPass, "
            f"and redisUser if it has users): {err}"
        )
        return DriverConfigError(source, "redisPass", None, wanted)
    if text.startswith(("WRONGPASS", "NOAUTH")) or "password" in text:
        # The password itself never goes into a message or a log.
        return DriverConfigError(source, "redisPass", "***", said)
    # Anything else (too many clients, loading, ...) is not the file's fault.
    return ServerUnavailableError(
        settings.address, f"it answered with an error: {err} ({where})"
    )


class RedisStreamsProducer(BenchmarkProducer):
    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._loop = asyncio.get_running_loop()

    async def send_async(self, key: str | None, payload: bytes) -> None:
        await self._producer.send(payload, key)

    def send_batch(
        self, keys: Sequence[str] | None, payloads: Sequence[bytes]
    ) -> asyncio.Future[int]:
        failed: asyncio.Future[int] = self._loop.create_future()
        try:
            replies = self._producer.send_many(payloads, keys)
        except Exception:
            failed.set_result(len(payloads))
            return failed

        def count_failures(done: asyncio.Future[list[Any]]) -> None:
            if done.cancelled() or done.exception() is not None:
                failed.set_result(len(payloads))
            else:
                failed.set_result(sum(map(is_reply_error, done.result())))

        replies.add_done_callback(count_failures)
        return failed

    async def close(self) -> None:
        await self._producer.close()
        await self._producer.connection.close()


class RedisStreamsConsumer(BenchmarkConsumer):
    def __init__(self, callback: ConsumerCallback) -> None:
        self._callback = callback
        self.group_consumer: GroupConsumer | None = None

    def on_entries(
        self, partition: int, entries: list[Entry], deliveries: list[int] | None
    ) -> None:
        payloads: list[bytes] = []
        stamps_us: list[int] = []
        for _, fields in entries:
            if fields[0] == FIELD_TS and fields[2] == FIELD_PAYLOAD:
                stamps_us.append(int(fields[1]))
                payloads.append(fields[3])
            else:
                payload, stamp_us = entry_payload_ts(fields)
                payloads.append(payload)
                stamps_us.append(stamp_us)
        self._callback.messages_received(payloads, stamps_us)

    def pause(self) -> None:
        if self.group_consumer is not None:
            self.group_consumer.pause()

    def resume(self) -> None:
        if self.group_consumer is not None:
            self.group_consumer.resume()

    async def close(self) -> None:
        if self.group_consumer is not None:
            await self.group_consumer.stop()


class RedisStreamsDriver(BenchmarkDriver):
    """Topics are partitioned streams; subscriptions are consumer groups."""

    def __init__(self) -> None:
        self._settings = ConnectionSettings()
        self._admin: Connection | None = None
        self._topics: dict[str, Topic] = {}
        self._read_count = 500
        self._block_ms = 100
        self._maxlen: int | None = None
        self._trim_interval_ms = 100
        self._consumed_topics: dict[str, Topic] = {}
        self._consumers_of: dict[str, list[RedisStreamsConsumer]] = {}
        self._trimmer: asyncio.Task[None] | None = None
        self._closeables: list[RedisStreamsProducer | RedisStreamsConsumer] = []

    @classmethod
    def check_config(cls, config: Mapping[str, Any], source: str) -> None:
        """Refuse a bad value in the driver file before any worker starts.

        Also logs the keys this driver leaves unused, in one line for the
        run; the workers' own `initialize` keeps quiet about them.
        """
        check_misspelt_keys(
            source, config, FRAMEWORK_KEYS | OWN_KEYS, DriverConfigError
        )
        unused = _unused_keys(config)
        if unused:
            logger.warning(
                "%s: ignoring keys this driver does not use: %s",
                source,
                ", ".join(unused),
            )
        _parse_options(config, source)

    @classmethod
    async def check_server(cls, config: Mapping[str, Any], source: str) -> None:
        """Fail within seconds, before any worker starts, if the server in the
        file cannot be reached or refuses the login."""
        options = _parse_options(config, source)
        settings = dataclasses.replace(
            options.settings, connect_timeout_s=CHECK_TIMEOUT_S
        )
        where = _address_keys(config, source)
        silent = f"({where})"  # what a timeout is reported with
        if settings.tls:
            # A TLS client waits for the server's half of the handshake, and
            # a plaintext server for the rest of a command: neither answers.
            silent = (
                f"({where}; with redisTls: true, a server there that does not "
                "speak TLS on that port gives no answer either: set redisTls: "
                "false for a plaintext one)"
            )
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                conn = await Connection.open(settings)
                try:
                    # Opening logs in only when there is a password; PING
                    # finds a server that wants one when the file has none.
                    await conn.execute("PING")
                finally:
                    await conn.close()
        except ServerUnavailableError as err:
            after = silent if isinstance(err.__cause__, TimeoutError) else f"({where})"
            raise ServerUnavailableError(err.address, f"{err.reason} {after}") from err
        except TimeoutError as err:
            raise ServerUnavailableError(
                settings.address, f"no answer in {CHECK_TIMEOUT_S:g} s {silent}"
            ) from err
        except ReplyError as err:
            raise _refusal(source, settings, err, where) from err
        except RedisError as err:
            raise ServerUnavailableError(
                settings.address, f"no Redis server answers there: {err} ({where})"
            ) from err

    async def initialize(self, config: Mapping[str, Any], source: str) -> None:
        unused = _unused_keys(config)
        if unused:
            # In a worker process the coordinator's check_config has said it
            # once already; every worker repeating it would only be noise.
            in_worker = multiprocessing.parent_process() is not None
            logger.log(
                logging.DEBUG if in_worker else logging.WARNING,
                "%s: ignoring keys this driver does not use: %s",
                source,
                ", ".join(unused),
            )
        options = _parse_options(config, source)
        self._settings = options.settings
        self._read_count = options.read_count
        self._block_ms = options.block_ms
        self._maxlen = options.maxlen
        self._trim_interval_ms = options.trim_interval_ms
        self._admin = await Connection.open(self._settings)

    @property
    def settings(self) -> ConnectionSettings:
        return self._settings

    @property
    def topic_name_prefix(self) -> str:
        return "redis-openmessaging-benchmark"

    def _admin_conn(self) -> Connection:
        if self._admin is None:
            raise RuntimeError("driver used before initialize()")
        return self._admin

    async def create_topic(self, topic: str, partitions: int) -> None:
        self._topics[topic] = await create_topic(self._admin_conn(), topic, partitions)

    async def _topic(self, name: str) -> Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = await open_topic(self._admin_conn(), name)
        return topic

    async def create_producer(self, topic: str) -> BenchmarkProducer:
        conn = await Connection.open(self._settings)
        producer = Producer(conn, await self._topic(topic), maxlen_approx=self._maxlen)
        wrapper = RedisStreamsProducer(producer)
        self._closeables.append(wrapper)
        return wrapper

    async def create_consumer(
        self, topic: str, subscription_name: str, callback: ConsumerCallback
    ) -> BenchmarkConsumer:
        wrapper = RedisStreamsConsumer(callback)
        group_consumer = GroupConsumer(
            self._settings,
            await self._topic(topic),
            subscription_name,
            f"consumer-{_random_suffix()}",
            wrapper.on_entries,
            count=self._read_count,
            block_ms=self._block_ms,
            side=self._admin_conn(),
        )
        await group_consumer.start()
        wrapper.group_consumer = group_consumer
        self._consumed_topics[topic] = group_consumer.topic
        self._consumers_of.setdefault(topic, []).append(wrapper)
        if self._trimmer is None and self._trim_interval_ms:
            self._trimmer = asyncio.create_task(self._trim_periodically())
        self._closeables.append(wrapper)
        return wrapper

    async def _trim_periodically(self) -> None:
        # Its own connection: a trim pass must not queue behind admin calls.
        conn = await Connection.open(self._settings)
        try:
            pause_s = self._trim_interval_ms / 1000
            while True:
                await asyncio.sleep(pause_s)
                started = time.monotonic()
                for topic in list(self._consumed_topics.values()):
                    await trim_acknowledged(conn, topic)
                # With thousands of partitions a pass takes a while; keep the
                # trimming to about a tenth of this connection's time.
                spent_s = time.monotonic() - started
                pause_s = max(self._trim_interval_ms / 1000, 10 * spent_s)
        finally:
            await conn.close()

    async def _stop_trimmer(self) -> None:
        try:
            await cancel_and_wait(self._trimmer)
        except Exception as err:  # noqa: BLE001 - report, then go on closing
            logger.warning("trimming stopped with an error: %s", err)
        self._trimmer = None

    async def delete_topics(self, topics: Sequence[str]) -> None:
        await self._stop_trimmer()
        # A consumer still reading would recreate its group, and with it the
        # stream, as soon as the stream is gone.
        for name in topics:
            consumers = self._consumers_of.pop(name, [])
            # Together: each may wait out a blocking read before it stops.
            await asyncio.gather(*(consumer.close() for consumer in consumers))
            self._consumed_topics.pop(name, None)
        conn = self._admin_conn()
        for name in topics:
            await delete_topic(conn, await self._topic(name))
            self._topics.pop(name, None)
        if self._consumed_topics and self._trim_interval_ms:
            self._trimmer = asyncio.create_task(self._trim_periodically())

    async def describe(self) -> dict[str, Any]:
        info = (await self._admin_conn().execute("INFO", "server")).decode()
        facts = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        return {
            "server": "valkey" if "valkey_version" in facts else "redis",
            "version": facts.get("valkey_version") or facts.get("redis_version"),
            "address": self._settings.address,
        }

    async def close(self) -> None:
        await self._stop_trimmer()
        closeables, self._closeables = self._closeables, []
        await asyncio.gather(*(item.close() for item in closeables))
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
