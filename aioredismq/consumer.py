"""Consuming in a consumer group: one reader task on its own connection.

Each round trip is one pipelined write: XACK of the entries handled since the
previous read, then one XREADGROUP over all of the reader's partitions. A
blocking read holds its connection, so the reader never shares it with
producers or admin calls.

On start the reader first drains this consumer's own pending history (ids it
was given before and never acked), then asks for new entries. A history entry
whose data was trimmed away comes back without fields: it is acked and counted
as a tombstone, never handed to the handler.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aioredismq.connection import (
    Connection,
    ConnectionSettings,
    encode_command,
    is_reply_error,
    raise_for_reply,
)
from aioredismq.errors import BusyGroupError, ConfigError, NoGroupError
from aioredismq.producer import FIELD_PAYLOAD, FIELD_TS
from aioredismq.topic import Topic

__all__ = ["Entry", "GroupConsumer", "create_group", "entry_payload_ts"]

logger = logging.getLogger(__name__)

#: One stream entry as the server sends it: `[id, [field, value, ...]]`.
Entry = list[Any]
#: Called with a partition index and the entries read from it, in order.
BatchHandler = Callable[[int, list[Entry]], Awaitable[None] | None]

_NEW = b">"


def entry_payload_ts(fields: list[bytes]) -> tuple[bytes, int]:
    """Payload and producer timestamp (µs) of an entry's field list.

    Entries written by `Producer` start with `ts_us` then `payload`; anything
    else is searched field by field. A missing timestamp reads as 0.
    """
    if len(fields) >= 4 and fields[0] == FIELD_TS and fields[2] == FIELD_PAYLOAD:
        return fields[3], int(fields[1])
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    return values.get(FIELD_PAYLOAD, b""), int(values.get(FIELD_TS, 0))


async def create_group(
    conn: Connection, stream_keys: Sequence[str], group: str, start_id: str = "0"
) -> None:
    """Create `group` on every stream (and the stream if missing).

    An existing group is left as it is: BUSYGROUP means another process won
    the race, and the start id never moves an existing group.
    """
    commands = [
        encode_command("XGROUP", "CREATE", key, group, start_id, "MKSTREAM")
        for key in stream_keys
    ]
    for reply in await conn.request(b"".join(commands), len(commands)):
        try:
            raise_for_reply(reply)
        except BusyGroupError:
            pass


class GroupConsumer:
    """A member of a consumer group reading some partitions of a topic.

    `handler(partition, entries)` runs once per partition per read; entries
    are acked in the next round trip after it returns (or after its awaitable
    completes). If it raises, that batch stays pending for recovery.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        topic: Topic,
        group: str,
        name: str,
        handler: BatchHandler,
        *,
        partitions: Sequence[int] | None = None,
        count: int = 100,
        block_ms: int = 100,
    ) -> None:
        if count < 1:
            raise ConfigError("consumer", "count", count, ">= 1")
        if block_ms < 1:
            raise ConfigError("consumer", "block_ms", block_ms, ">= 1")
        self.settings = settings
        self.topic = topic
        self.group = group
        self.name = name
        self.handler = handler
        self.partitions = list(
            range(topic.partitions) if partitions is None else partitions
        )
        self.count = count
        self.block_ms = block_ms
        self.delivered = 0
        self.acked = 0
        self.tombstones = 0
        self._keys = [topic.stream_keys[i] for i in self.partitions]
        self._index_of = {
            key.encode(): i for key, i in zip(self._keys, self.partitions, strict=True)
        }
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._running = asyncio.Event()
        self._running.set()

    async def start(self) -> None:
        """Ensure the group exists, connect and start reading."""
        self._conn = await Connection.open(self.settings)
        await create_group(self._conn, self._keys, self.group)
        self._task = asyncio.create_task(
            self._run(self._conn), name=f"reader {self.name}"
        )

    def pause(self) -> None:
        """Stop fetching after the current read; nothing is lost or acked."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    async def stop(self) -> None:
        """Stop reading, ack what was handled, close the connection.

        Entries read but not handled stay pending in the group.
        """
        self._stopping = True
        self._running.set()
        if self._task is not None:
            try:
                await self._task
            finally:
                self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _run(self, conn: Connection) -> None:
        # Cursor per stream: an id while draining own history, then ">".
        cursors: dict[str, bytes] = {key: b"0" for key in self._keys}
        acks: dict[str, list[bytes]] = {}
        while True:
            if not self._running.is_set() and not self._stopping:
                await self._flush_acks(conn, acks)
                await self._running.wait()
            commands = [self._ack_command(key, ids) for key, ids in acks.items()]
            acked = sum(len(ids) for ids in acks.values())
            acks = {}
            if self._stopping:
                if commands:
                    await self._send_checked(conn, commands)
                    self.acked += acked
                return
            commands.append(self._read_command(cursors))
            replies = await conn.request(b"".join(commands), len(commands))
            for reply in replies[:-1]:
                raise_for_reply(reply)
            self.acked += acked
            reply = replies[-1]
            if is_reply_error(reply):
                await self._on_read_error(conn, reply)
                continue
            if reply is None:
                continue
            await self._dispatch(reply, cursors, acks)

    async def _dispatch(
        self,
        reply: list[Any],
        cursors: dict[str, bytes],
        acks: dict[str, list[bytes]],
    ) -> None:
        returned: set[str] = set()
        for stream, entries in reply:
            key = stream.decode()
            returned.add(key)
            history = cursors[key] != _NEW
            if history:
                if not entries:
                    cursors[key] = _NEW
                    continue
                cursors[key] = entries[-1][0]
                live = [entry for entry in entries if entry[1] is not None]
                dead = len(entries) - len(live)
                if dead:
                    self.tombstones += dead
                    acks.setdefault(key, []).extend(
                        entry[0] for entry in entries if entry[1] is None
                    )
                entries = live
                if not entries:
                    continue
            self.delivered += len(entries)
            try:
                result = self.handler(self._index_of[stream], entries)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception(
                    "handler failed; %d entries of %s stay pending", len(entries), key
                )
                continue
            acks.setdefault(key, []).extend(entry[0] for entry in entries)
        # A history read that omits a stream means its history is empty.
        for key, cursor in cursors.items():
            if cursor != _NEW and key not in returned:
                cursors[key] = _NEW

    def _read_command(self, cursors: dict[str, bytes]) -> bytes:
        # Blocking only makes sense for new entries; a history read must
        # return at once.
        block = all(cursor == _NEW for cursor in cursors.values())
        args: list[bytes | str | int] = [
            "XREADGROUP",
            "GROUP",
            self.group,
            self.name,
            "COUNT",
            self.count,
        ]
        if block:
            args += ["BLOCK", self.block_ms]
        args.append("STREAMS")
        args.extend(self._keys)
        args.extend(cursors[key] for key in self._keys)
        return encode_command(*args)

    def _ack_command(self, key: str, ids: list[bytes]) -> bytes:
        return encode_command("XACK", key, self.group, *ids)

    async def _flush_acks(self, conn: Connection, acks: dict[str, list[bytes]]) -> None:
        commands = [self._ack_command(key, ids) for key, ids in acks.items()]
        if commands:
            await self._send_checked(conn, commands)
            self.acked += sum(len(ids) for ids in acks.values())
            acks.clear()

    async def _send_checked(self, conn: Connection, commands: list[bytes]) -> None:
        for reply in await conn.request(b"".join(commands), len(commands)):
            raise_for_reply(reply)

    async def _on_read_error(self, conn: Connection, reply: Any) -> None:
        try:
            raise_for_reply(reply)
        except NoGroupError:
            # The stream was deleted under the group; make it again, once per
            # occurrence, and give the server a moment before reading on.
            logger.warning(
                "group %s vanished from %s; recreating it", self.group, self.topic.name
            )
            await create_group(conn, self._keys, self.group)
            await asyncio.sleep(0.1)
