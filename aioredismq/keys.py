"""Every Redis key name aioredismq uses, in one place.

A topic `orders` with 3 partitions is the stream keys `{orders:0}`,
`{orders:1}` and `{orders:2}`. The braces make the whole name the cluster hash
tag, so partitions spread over slots, while a partition's dead-letter stream
`{orders:1}:dead` shares its slot and "dead-letter + ack" stays one
transaction. The partition count lives in `aioredismq:topic:orders`, so any
process can open a topic by name.
"""

from __future__ import annotations

import zlib

__all__ = [
    "META_PREFIX",
    "dead_letter_key",
    "partition_for_key",
    "stream_key",
    "topic_meta_key",
]

META_PREFIX = "aioredismq:topic:"


def stream_key(topic: str, partition: int) -> str:
    """The stream holding one partition of a topic."""
    return f"{{{topic}:{partition}}}"


def dead_letter_key(topic: str, partition: int) -> str:
    """The dead-letter stream of one partition (same cluster slot)."""
    return f"{{{topic}:{partition}}}:dead"


def topic_meta_key(topic: str) -> str:
    """The hash that records a topic's partition count."""
    return META_PREFIX + topic


def partition_for_key(key: bytes, partitions: int) -> int:
    """Stable partition of a message key: CRC-32 of its bytes, modulo N.

    The same key maps to the same partition in every process and on every run,
    which is what per-key ordering needs.
    """
    return zlib.crc32(key) % partitions
