"""aioredismq: an async message queue on Redis / Valkey Streams."""

from aioredismq.client import Client, Consumer, Subscriber
from aioredismq.connection import Connection, ConnectionSettings
from aioredismq.consumer import AckMode, ConsumerStats, GroupConsumer
from aioredismq.errors import (
    AioRedisMQError,
    BusyGroupError,
    CapacityTimeoutError,
    ClosedError,
    ConfigError,
    NoGroupError,
    ProtocolError,
    RedisConnectionError,
    RedisError,
    ReplyError,
    ReplyTimeoutError,
    ServerBusyError,
    ServerUnavailableError,
)
from aioredismq.message import Message
from aioredismq.producer import Producer
from aioredismq.topic import Topic

__all__ = [
    "AckMode",
    "AioRedisMQError",
    "BusyGroupError",
    "CapacityTimeoutError",
    "Client",
    "ClosedError",
    "ConfigError",
    "Connection",
    "ConnectionSettings",
    "Consumer",
    "ConsumerStats",
    "GroupConsumer",
    "Message",
    "NoGroupError",
    "Producer",
    "ProtocolError",
    "RedisConnectionError",
    "RedisError",
    "ReplyError",
    "ReplyTimeoutError",
    "ServerBusyError",
    "ServerUnavailableError",
    "Subscriber",
    "Topic",
]
