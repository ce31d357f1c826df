"""Topics: N partitions, one stream key each, and the admin calls on them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aioredismq import keys
from aioredismq.connection import (
    Connection,
    encode_command,
    is_reply_error,
    raise_for_reply,
)
from aioredismq.errors import ConfigError
from aioredismq.routing import Router, SingleNode

__all__ = [
    "Topic",
    "check_position",
    "create_topic",
    "delete_topic",
    "open_topic",
    "trim_acknowledged",
]

# Redis allows up to 2**32 - 1 keys; far fewer partitions already stop making
# sense, and the bound keeps a typo from creating millions of keys.
MAX_PARTITIONS = 1_000_000

# "$" (the end), or an entry id: milliseconds, optionally "-" and a sequence.
_POSITION = re.compile(r"\$|\d+(-\d+)?")


def check_position(source: str, option: str, position: str) -> None:
    """Refuse a stream position the server would refuse only at first use."""
    if not isinstance(position, str) or not _POSITION.fullmatch(position):
        allowed = '"$" (new messages only), "0" (from the start) or an entry id'
        raise ConfigError(source, option, position, allowed)


@dataclass(frozen=True, slots=True)
class Topic:
    """A named set of partitions; partition i is the stream `stream_keys[i]`."""

    name: str
    partitions: int
    stream_keys: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name or "{" in name or "}" in name:
            # Each partition's key is "{name:i}": a brace in the name would
            # move the hash tag, and a cluster would no longer spread them.
            allowed = "expected a non-empty str without { or }"
            raise ConfigError("topic", "name", self.name, allowed)
        if not isinstance(self.partitions, int) or isinstance(self.partitions, bool):
            allowed = "expected a whole number of partitions"
            raise ConfigError(
                f"topic {self.name!r}", "partitions", self.partitions, allowed
            )
        if not 1 <= self.partitions <= MAX_PARTITIONS:
            allowed = f"expected 1 to {MAX_PARTITIONS} partitions"
            source = f"topic {self.name!r}"
            raise ConfigError(source, "partitions", self.partitions, allowed)
        names = tuple(keys.stream_key(self.name, i) for i in range(self.partitions))
        object.__setattr__(self, "stream_keys", names)


def _router(conn: Connection | Router) -> Router:
    return SingleNode(conn) if isinstance(conn, Connection) else conn


async def create_topic(conn: Connection | Router, name: str, partitions: int) -> Topic:
    """Record a topic's partition count; the streams appear on first write.

    Creating a topic that exists with the same count is a no-op; with another
    count it is an error, because keys already hashed to partitions would move.
    """
    topic = Topic(name, partitions)
    meta = keys.topic_meta_key(name)
    node = _router(conn).connection_for_key(meta)
    await node.execute("HSETNX", meta, "partitions", partitions)
    existing = int(await node.execute("HGET", meta, "partitions"))
    if existing != partitions:
        allowed = f"topic exists with {existing} partitions"
        raise ConfigError(f"topic {name!r}", "partitions", partitions, allowed)
    return topic


async def open_topic(conn: Connection | Router, name: str) -> Topic:
    """The topic as another process created it."""
    meta = keys.topic_meta_key(name)
    reply = (
        await _router(conn).connection_for_key(meta).execute("HGET", meta, "partitions")
    )
    if reply is None:
        raise ConfigError("topic", "name", name, "no such topic; create it first")
    return Topic(name, int(reply))


async def delete_topic(conn: Connection | Router, topic: Topic) -> int:
    """Delete every stream, dead-letter stream and group of a topic.

    Returns how many keys existed. Keys go one command each, so this works on
    a cluster too, where one DEL may not span slots.
    """
    names = [keys.topic_meta_key(topic.name)]
    for i in range(topic.partitions):
        names.append(keys.stream_key(topic.name, i))
        names.append(keys.dead_letter_key(topic.name, i))
    replies = await _router(conn).request_by_key(
        [(name, encode_command("DEL", name)) for name in names]
    )
    return sum(int(raise_for_reply(reply)) for reply in replies)


def _id_tuple(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


async def trim_acknowledged(conn: Connection | Router, topic: Topic) -> int:
    """Trim each partition to what some consumer group still needs.

    An entry can go once every group on its stream has had it delivered and
    acked: everything below the smallest id that is still pending, or not yet
    delivered, in any group. Streams without groups are left alone. Trimming
    is approximate (`MINID ~`), so whole radix-tree nodes go and a few extra
    entries stay. Returns how many entries were removed.
    """
    router = _router(conn)
    keys_ = topic.stream_keys
    infos = await router.request_by_key(
        [(key, encode_command("XINFO", "GROUPS", key)) for key in keys_]
    )
    pending_queries: list[tuple[int, bytes, bytes]] = []
    floors: dict[int, tuple[int, int]] = {}
    for index, info in enumerate(infos):
        if is_reply_error(info) or not info:
            continue  # no stream yet, or no group: nothing is known consumed
        for group in info:
            fields = dict(zip(group[::2], group[1::2], strict=True))
            delivered = _id_tuple(fields[b"last-delivered-id"])
            floor = floors.get(index)
            floors[index] = delivered if floor is None else min(floor, delivered)
            if fields[b"pending"]:
                pending_queries.append((index, keys_[index].encode(), fields[b"name"]))
    if pending_queries:
        summaries = await router.request_by_key(
            [
                (key, encode_command("XPENDING", key, group))
                for _, key, group in pending_queries
            ]
        )
        for (index, _, _), summary in zip(pending_queries, summaries, strict=True):
            if not is_reply_error(summary) and summary[0]:
                floors[index] = min(floors[index], _id_tuple(summary[1]))
    if not floors:
        return 0
    trims = [
        (
            keys_[index],
            encode_command(
                "XTRIM", keys_[index], "MINID", "~", f"{floor[0]}-{floor[1]}"
            ),
        )
        for index, floor in floors.items()
    ]
    replies = await router.request_by_key(trims)
    return sum(int(reply) for reply in replies if not is_reply_error(reply))
