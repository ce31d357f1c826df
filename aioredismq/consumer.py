"""Consuming in a consumer group: one reader task on its own connection.

Each round trip is one pipelined write: XACK of the entries handled since the
previous read, then one XREADGROUP over all of the reader's partitions. A
blocking read holds its connection, so the reader never shares it with
producers or admin calls (a second connection serves acks of dead letters and
recovery sweeps).

On start, and after every reconnect, the reader first drains this consumer's
own pending history (ids it was given before and never acked), then asks for
new entries. A history entry whose data was trimmed away comes back without
fields: it is acked and counted as a tombstone, never handed to the handler.

A handler gets a partition's entries either as the server sends them
(`[id, [field, value, ...]]` lists) or, with `columns=True`, as a `Batch`:
ids, payloads and timestamps in flat lists, taken out of the reply while the
connection parses it. The second way is the cheaper one: a read of thousands
of entries is a few lists by the time any other code runs, instead of two
lists per entry for the garbage collector to walk.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from bisect import bisect_right
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, cast

from aioredismq.connection import (
    Connection,
    ConnectionSettings,
    encode_command,
    is_reply_error,
    raise_for_reply,
)
from aioredismq.errors import (
    AioRedisMQError,
    BusyGroupError,
    ConfigError,
    NoGroupError,
    RedisConnectionError,
    check_wholes,
)
from aioredismq.message import (
    FIELD_PAYLOAD,
    FIELD_TS,
    Message,
    parse_fields,
    producer_layout,
)
from aioredismq.recovery import claim_idle, dead_letter
from aioredismq.routing import Router, SingleNode
from aioredismq.topic import Topic, check_position

__all__ = [
    "AckMode",
    "Batch",
    "BatchHandler",
    "ColumnHandler",
    "ConsumerStats",
    "Entry",
    "GroupConsumer",
    "batch_payloads",
    "batch_payloads_ts",
    "create_group",
    "entry_payload_ts",
]

logger = logging.getLogger(__name__)

#: One stream entry as the server sends it: `[id, [field, value, ...]]`.
Entry = list[Any]
#: Called with a partition index, the entries read from it (in order), and
#: their delivery counts when known (None: first deliveries).
BatchHandler = Callable[[int, list[Entry], list[int] | None], Awaitable[None] | None]

_NEW = b">"
#: Reads kept in flight behind the one being handed over while a backlog is
#: read, so the server always has the next one to work on. Measured on
#: 200,000 backlogged 1 KiB entries (GroupConsumer, 16 streams, COUNT 100):
#: none 335k msg/s, 2 reads 415k, 3 reads 480k, 4 or 6 no more. Each holds
#: up to COUNT entries per stream in memory.
READS_AHEAD = 3
_FOUR = 4  # fields of a plain Producer entry: ts_us, <ts>, payload, <payload>
_ID = itemgetter(0)
_FIELDS = itemgetter(1)
_VALUE_1 = itemgetter(1)
_VALUE_3 = itemgetter(3)
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
# Last handler errors kept for dead letters; older ones are forgotten.
MAX_REMEMBERED_ERRORS = 10_000


class AckMode(enum.Enum):
    """When entries are acknowledged."""

    #: After the handler returns without raising (the default).
    AFTER_HANDLER = "after-handler"
    #: Only when the application calls `GroupConsumer.ack`.
    MANUAL = "manual"
    #: Never: reads use NOACK, so nothing is kept pending (at most once).
    NONE = "none"


def check_ack_mode(value: AckMode | str) -> AckMode:
    """The mode itself, or the mode its value names ("after-handler",
    "manual", "none"); ConfigError for anything else."""
    if isinstance(value, AckMode):
        return value
    try:
        return AckMode(value)
    except ValueError:
        allowed = "expected an AckMode or one of " + ", ".join(
            repr(mode.value) for mode in AckMode
        )
        raise ConfigError("consumer", "ack_mode", value, allowed) from None


class ConsumerStats:
    """Counters a consumer keeps; read them at any time."""

    __slots__ = (
        "delivered",
        "acked",
        "retried",
        "claimed",
        "dead_lettered",
        "tombstones",
        "failed",
    )

    def __init__(self) -> None:
        self.delivered = 0
        self.acked = 0
        self.retried = 0
        self.claimed = 0
        self.dead_lettered = 0
        self.tombstones = 0
        self.failed = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={value}" for name, value in self.as_dict().items())
        return f"ConsumerStats({counts})"


def entry_payload_ts(fields: list[bytes]) -> tuple[bytes, int]:
    """Payload and producer timestamp (µs) of an entry's field list.

    Entries written by `Producer` start with `ts_us` then `payload`; anything
    else is searched field by field. A missing timestamp reads as 0.
    """
    if len(fields) >= 4 and fields[0] == FIELD_TS and fields[2] == FIELD_PAYLOAD:
        return fields[3], int(fields[1])
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    return values.get(FIELD_PAYLOAD, b""), int(values.get(FIELD_TS, 0))


def batch_payloads(entries: list[Entry]) -> list[bytes]:
    """The payloads of a batch of entries, in order (b"" where none).

    Same result as `entry_payload_ts` per entry, at a fraction of the cost
    for entries written by `Producer`.
    """
    fields = list(map(_FIELDS, entries))
    if producer_layout(fields):
        return list(map(_VALUE_3, fields))
    return [entry_payload_ts(f)[0] for f in fields]


def batch_payloads_ts(entries: list[Entry]) -> tuple[list[bytes], list[int]]:
    """Payloads and producer timestamps (µs) of a batch of entries, in order."""
    fields = list(map(_FIELDS, entries))
    if producer_layout(fields):
        return list(map(_VALUE_3, fields)), list(map(int, map(_VALUE_1, fields)))
    pairs = [entry_payload_ts(f) for f in fields]
    return [p for p, _ in pairs], [ts for _, ts in pairs]


#: Called with one partition's entries of a read as a `Batch` (columns=True).
ColumnHandler = Callable[["Batch"], Awaitable[None] | None]


class Batch:
    """One partition's entries from one read, as columns, in stream order:
    `ids[i]`, `payloads[i]` and the i-th timestamp belong to one entry.

    `fields` holds every entry's whole field list, but only when some entry
    has more than Producer's timestamp and payload (a key, headers, another
    writer's layout); otherwise None. `deliveries`: how often each entry was
    delivered, when known (entries claimed by recovery); None for first
    deliveries.
    """

    __slots__ = ("partition", "ids", "payloads", "fields", "deliveries", "_stamps")

    def __init__(
        self,
        partition: int,
        ids: list[bytes],
        payloads: list[bytes],
        stamps: Sequence[bytes | int],
        fields: list[list[bytes]] | None = None,
        deliveries: list[int] | None = None,
    ) -> None:
        self.partition = partition
        self.ids = ids
        self.payloads = payloads
        self.fields = fields
        self.deliveries = deliveries
        # As the entries hold them (decimal digits) until asked for.
        self._stamps = stamps

    @classmethod
    def from_entries(
        cls, partition: int, entries: list[Entry], deliveries: list[int] | None = None
    ) -> Batch:
        """A batch of `[id, fields]` entries, none of them a tombstone."""
        return cls._of(partition, entries, list(map(_FIELDS, entries)), deliveries)

    @classmethod
    def _of(
        cls,
        partition: int,
        entries: list[Entry],
        fields: list[list[bytes]],
        deliveries: list[int] | None,
    ) -> Batch:
        ids = list(map(_ID, entries))
        count = len(fields)
        if list(map(len, fields)).count(_FOUR) == count:
            # Four fields each: one flat list, cut into columns by slicing.
            flat = list(chain.from_iterable(fields))
            if (
                flat[0::4].count(FIELD_TS) == count
                and flat[2::4].count(FIELD_PAYLOAD) == count
            ):
                return cls(partition, ids, flat[3::4], flat[1::4], None, deliveries)
        elif producer_layout(fields):  # with a key or headers after the payload
            return cls(
                partition,
                ids,
                list(map(_VALUE_3, fields)),
                list(map(_VALUE_1, fields)),
                fields,
                deliveries,
            )
        pairs = [entry_payload_ts(f) for f in fields]
        return cls(
            partition,
            ids,
            [payload for payload, _ in pairs],
            [stamp for _, stamp in pairs],
            fields,
            deliveries,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def timestamps_us(self) -> list[int]:
        """The producer's timestamps, µs (0 where an entry has none)."""
        return list(map(int, self._stamps))

    def entries(self) -> list[Entry]:
        """The batch as `[id, fields]` entries, as a plain handler gets them."""
        if self.fields is not None:
            return [[i, f] for i, f in zip(self.ids, self.fields, strict=True)]
        return [
            [i, [FIELD_TS, ts, FIELD_PAYLOAD, p]]
            for i, ts, p in zip(self.ids, self._stamps, self.payloads, strict=True)
        ]

    def messages(self) -> Iterator[Message]:
        """The batch as `Message`s, each made only when taken.

        For a plain batch the columns are all there is: a batch waiting for
        its turn holds a few lists, not one object per message.
        """
        counts = repeat(1) if self.deliveries is None else iter(self.deliveries)
        if self.fields is None:
            return map(
                Message,
                self.ids,
                repeat(self.partition),
                self.payloads,
                repeat(None),
                iter(dict, None),  # a new, empty headers dict each
                map(int, self._stamps),
                counts,
            )
        return map(parse_fields, self.ids, repeat(self.partition), self.fields, counts)


class _StreamRead:
    """What one read returned for one stream, taken apart while parsing."""

    __slots__ = ("stream", "last_id", "batch", "tombstones")

    def __init__(
        self,
        stream: bytes,
        last_id: bytes | None,
        batch: Batch | None,
        tombstones: list[bytes],
    ) -> None:
        self.stream = stream
        self.last_id = last_id
        self.batch = batch
        self.tombstones = tombstones


def _encode_ids(ids: list[bytes]) -> bytes:
    """`ids` as RESP bulk strings, grouped by length (XACK takes any order).

    Ids of one read share a length or fall into a few lengths (the sequence
    number after the millisecond counts up), so each length is one join
    rather than one formatting call per id, which was most of an ack's cost.
    """
    lengths = set(map(len, ids))
    if len(lengths) == 1:
        head = b"$%d\r\n" % lengths.pop()
        return head + (b"\r\n" + head).join(ids) + b"\r\n"
    ordered = sorted(ids, key=len)
    parts: list[bytes] = []
    start = 0
    for size in sorted(lengths):
        end = bisect_right(ordered, size, lo=start, key=len)
        head = b"$%d\r\n" % size
        parts.append(head + (b"\r\n" + head).join(ordered[start:end]) + b"\r\n")
        start = end
    return b"".join(parts)


async def create_group(
    conn: Connection | Router,
    stream_keys: Sequence[str],
    group: str,
    start_id: str = "0",
) -> None:
    """Create `group` on every stream (and the stream if missing).

    An existing group is left as it is: BUSYGROUP means another process won
    the race, and the start id never moves an existing group.
    """
    router = SingleNode(conn) if isinstance(conn, Connection) else conn
    commands = [
        (key, encode_command("XGROUP", "CREATE", key, group, start_id, "MKSTREAM"))
        for key in stream_keys
    ]
    for reply in await router.request_by_key(commands):
        try:
            raise_for_reply(reply)
        except BusyGroupError:
            pass


class _ReadsAhead:
    """Reads sent before the one being parsed was handed over (see
    `GroupConsumer._may_read_ahead`), oldest first, with how many acks went
    with each. All go on the reader's one connection, so the server answers
    them in the order sent: one stream's entries reach the handler in
    stream order. Whatever ends the reading, none is left unawaited.

    Known cost: with more than one read waiting, a connection parses each
    piece of a reply as it arrives (it cannot hold the pieces back, see
    `aioredismq.connection`), and the half-built replies make the garbage
    collector work harder: about a seventh more client CPU per message
    (1.0 -> 1.14 us for 1 KiB) for two fifths more throughput. A
    second connection would avoid that, but the server may then answer the
    two connections' reads in either order, so it would need the order
    restored before handing entries over.
    """

    def __init__(self) -> None:
        self._reads: deque[tuple[asyncio.Future[list[Any]], int]] = deque()

    def __len__(self) -> int:
        return len(self._reads)

    def add(self, sent: tuple[asyncio.Future[list[Any]], int]) -> None:
        self._reads.append(sent)

    async def next_replies(self) -> tuple[list[Any], int]:
        future, acked = self._reads[0]
        replies = await future
        self._reads.popleft()
        return replies, acked

    def abandon(self) -> None:
        for future, _ in self._reads:
            future.add_done_callback(_retrieve)
        self._reads.clear()


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Take a read's outcome that nobody awaits any more, so its error (the
    connection was closed under it) is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()


class GroupConsumer:
    """A member of a consumer group reading some partitions of a topic.

    `handler(partition, entries, deliveries)` runs once per partition per
    read; with `columns=True` it is `handler(batch)` instead (see `Batch`).
    In `AckMode.AFTER_HANDLER` the entries are acked in the next round
    trip after it returns (or after its awaitable completes); if it raises,
    they stay pending and come back through recovery. With `claim_idle_ms`
    set, a sweep every `claim_interval_ms` claims entries idle that long from
    any member (crashed ones included); an entry delivered more than
    `max_deliveries` times goes to the dead-letter stream instead.
    `max_unacked` bounds what is handed out and not yet acked (prefetch).
    """

    def __init__(
        self,
        source: ConnectionSettings | Router,
        topic: Topic,
        group: str,
        name: str,
        handler: BatchHandler | ColumnHandler,
        *,
        columns: bool = False,
        partitions: Sequence[int] | None = None,
        count: int = 100,
        block_ms: int = 100,
        ack_mode: AckMode | str = AckMode.AFTER_HANDLER,
        max_unacked: int | None = None,
        start_id: str = "0",
        claim_idle_ms: int | None = None,
        claim_interval_ms: int = 1000,
        max_deliveries: int | None = None,
        side: Connection | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        check_wholes(
            "consumer",
            ("count", count, 1),
            ("block_ms", block_ms, 1),
            ("max_unacked", max_unacked, 1),
            ("claim_idle_ms", claim_idle_ms, 1),
            ("claim_interval_ms", claim_interval_ms, 1),
            ("max_deliveries", max_deliveries, 1),
        )
        if max_deliveries is not None and claim_idle_ms is None:
            allowed = "set claim_idle_ms too: redeliveries come from recovery"
            raise ConfigError("consumer", "max_deliveries", max_deliveries, allowed)
        check_position("consumer", "start_id", start_id)
        ack_mode = check_ack_mode(ack_mode)
        # A single server: one reader over every partition (one XREADGROUP
        # may name many streams). A cluster: one reader per partition, since
        # one command may not span hash slots.
        self._settings: ConnectionSettings | None = None
        self._router: Router | None = None
        if isinstance(source, ConnectionSettings):
            self._settings = source
        else:
            self._router = source
        self.topic = topic
        self.group = group
        self.name = name
        self.handler = handler
        self.columns = columns
        self._on_entries = None if columns else cast(BatchHandler, handler)
        self._on_batch = cast(ColumnHandler, handler) if columns else None
        self.partitions = list(
            range(topic.partitions) if partitions is None else partitions
        )
        self.count = count
        self.block_ms = block_ms
        self.ack_mode = ack_mode
        self.max_unacked = max_unacked
        self.start_id = start_id
        self.claim_idle_ms = claim_idle_ms
        self.claim_interval_ms = claim_interval_ms
        self.max_deliveries = max_deliveries
        self.stats = ConsumerStats()
        self._keys = [topic.stream_keys[i] for i in self.partitions]
        self._index_of = {
            key.encode(): i for key, i in zip(self._keys, self.partitions, strict=True)
        }
        self._acks: dict[str, list[bytes]] = {}
        self._ack_heads: dict[str, bytes] = {}
        self._unacked = 0
        self._capacity = asyncio.Event()
        self._capacity.set()
        # Readers waiting for room, each with its read ready to send.
        self._read_on_room: list[Callable[[], None]] = []
        self._errors: dict[bytes, str] = {}
        # A single server's connection for everything but the blocking reads
        # (group creation, final acks, sweeps): shared when given, since many
        # consumers in one process would otherwise hold one each.
        self._side: Connection | None = None
        self._shared_side = side
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._running = asyncio.Event()
        self._running.set()
        #: The error that ended reading or recovery before `stop`, if any.
        self.failure: BaseException | None = None
        self._on_failure = on_failure

    # lifecycle

    async def start(self) -> None:
        """Ensure the group exists, connect and start reading (and sweeping)."""
        if self._settings is not None:
            if self._shared_side is not None:
                self._router = SingleNode(self._shared_side)
            else:
                self._side = await Connection.open(self._settings)
                self._router = SingleNode(self._side)
            readers = [(self._settings, self._keys)]
        else:
            assert self._router is not None
            readers = [(self._router.settings_for_key(k), [k]) for k in self._keys]
        try:
            await create_group(self._router, self._keys, self.group, self.start_id)
        except BaseException:
            if self._side is not None:
                side, self._side = self._side, None
                await side.close()
            raise
        for settings, keys in readers:
            self._tasks.append(
                asyncio.create_task(
                    self._read_forever(settings, keys), name=f"reader {self.name}"
                )
            )
        if self.claim_idle_ms is not None:
            self._tasks.append(
                asyncio.create_task(self._sweep_forever(), name=f"sweeper {self.name}")
            )
        for task in self._tasks:
            task.add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A reader or the sweeper ended on its own: an error it cannot get
        past (connection losses and busy servers it waits out)."""
        if task.cancelled() or self._stopping:
            return
        error = task.exception()
        if error is None:
            return
        logger.error("consumer %s: %s ended: %s", self.name, task.get_name(), error)
        if self.failure is None:
            self.failure = error
            if self._on_failure is not None:
                self._on_failure(error)

    def pause(self) -> None:
        """Stop fetching once the reads in flight are in (they are handed
        over); nothing is lost or acked."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop reading, ack what was handled, close every connection.

        Entries read but not handled (or not acked, in manual mode) stay
        pending in the group, for this consumer's next start or for recovery.
        A server that stops answering is waited for up to `timeout_s` for the
        reads in flight, and as long again for the last acks; then they are
        given up (their entries stay pending).
        """
        self._stopping = True
        self._running.set()
        self._capacity.set()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            if task.get_name().startswith("sweeper"):
                task.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(timeout_s, 0))
            if late:
                logger.warning(
                    "consumer %s: no answer from the server within %s s; "
                    "reads in flight given up", self.name, timeout_s,
                )  # fmt: skip
                for task in late:
                    task.cancel()
                await asyncio.wait(late)
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if isinstance(error, Exception) and error is not self.failure:
                logger.warning(
                    "consumer %s stopped with an error: %s", self.name, error
                )
        try:
            if self._acks and self._router is not None:
                async with asyncio.timeout(max(timeout_s, 0)):
                    await self._flush_acks(self._router)
        except TimeoutError:
            logger.warning(
                "consumer %s: no answer to its last acks within %s s",
                self.name, timeout_s,
            )  # fmt: skip
        except AioRedisMQError as err:
            # Those entries stay pending: handled again after recovery.
            logger.warning(
                "consumer %s could not send its last acks: %s", self.name, err
            )
        finally:
            if self._side is not None:
                await self._side.close()
                self._side = None

    # acknowledgements

    def ack(self, partition: int, ids: Sequence[bytes]) -> None:
        """Acknowledge entries; sent with the next round trip."""
        if not ids:
            return
        self._acks.setdefault(self.topic.stream_keys[partition], []).extend(ids)
        if self.ack_mode is AckMode.MANUAL:
            self._release(len(ids))

    def ack_one(self, partition: int, entry_id: bytes) -> None:
        """`ack(partition, [entry_id])`, without the list: the per-message path."""
        key = self.topic.stream_keys[partition]
        acks = self._acks.get(key)
        if acks is None:
            self._acks[key] = [entry_id]
        else:
            acks.append(entry_id)
        if self.ack_mode is AckMode.MANUAL:
            self._unacked -= 1
            if self.max_unacked is None or self._unacked < self.max_unacked:
                self._room()

    def fail(self, entry_id: bytes, error: BaseException | str) -> None:
        """Record why handling failed; a dead letter carries the last reason."""
        self.stats.failed += 1
        if len(self._errors) >= MAX_REMEMBERED_ERRORS:
            self._errors.pop(next(iter(self._errors)))
        self._errors[entry_id] = str(error) or type(error).__name__
        if self.ack_mode is AckMode.MANUAL:
            self._release(1)

    def _release(self, count: int) -> None:
        self._unacked -= count
        if self.max_unacked is None or self._unacked < self.max_unacked:
            self._room()

    def _take_ack_commands(
        self, keys: Sequence[str] | None = None
    ) -> tuple[list[tuple[str, bytes]], int]:
        """XACK commands for the buffered acks of `keys` (None: all keys)."""
        wanted = self._acks.keys() if keys is None else keys
        taken = {key: self._acks.pop(key) for key in list(wanted) if key in self._acks}
        commands = [(key, self._ack_command(key, ids)) for key, ids in taken.items()]
        return commands, sum(len(ids) for ids in taken.values())

    def _ack_command(self, key: str, ids: list[bytes]) -> bytes:
        # Ids come from the server as bytes; encoding them directly is a
        # measurable share of consuming when done through the generic path.
        head = self._ack_heads.get(key)
        if head is None:
            words = (b"XACK", key.encode(), self.group.encode())
            head = b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words)
            self._ack_heads[key] = head
        return b"*%d\r\n%b%b" % (3 + len(ids), head, _encode_ids(ids))

    async def _flush_acks(
        self, target: Connection | Router, keys: Sequence[str] | None = None
    ) -> None:
        commands, count = self._take_ack_commands(keys)
        if commands:
            router = SingleNode(target) if isinstance(target, Connection) else target
            for reply in await router.request_by_key(commands):
                raise_for_reply(reply)
            self.stats.acked += count

    # reading

    async def _read_forever(
        self, settings: ConnectionSettings, keys: list[str]
    ) -> None:
        backoff_s = BACKOFF_FIRST_S
        while not self._stopping:
            try:
                conn = await Connection.open(settings)
            except RedisConnectionError as err:
                logger.warning(
                    "consumer %s cannot connect (%s); retrying in %.1f s",
                    self.name,
                    err,
                    backoff_s,
                )
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
                continue
            try:
                await self._read(conn, keys)
                return
            except AioRedisMQError as err:
                # A lost connection or a busy server is waited out; anything
                # else ends reading (see `_task_ended`).
                if self._stopping and err.retriable:
                    return
                if not err.retriable:
                    raise
                logger.warning(
                    "consumer %s: %s; reading again in %.1f s",
                    self.name, err, backoff_s,
                )  # fmt: skip
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
            finally:
                await conn.close()

    async def _read(self, conn: Connection, keys: list[str]) -> None:
        ahead = _ReadsAhead()
        try:
            await self._read_on(conn, keys, ahead)
        finally:
            ahead.abandon()

    async def _read_on(
        self, conn: Connection, keys: list[str], ahead: _ReadsAhead
    ) -> None:
        # Cursor per stream: an id while draining own history, then ">".
        cursors: dict[str, bytes] = {key: b"0" for key in keys}
        nogroup_backoff_s = BACKOFF_FIRST_S
        while True:
            if not ahead:
                if not self._running.is_set() and not self._stopping:
                    await self._flush_acks(conn, keys)
                    await self._running.wait()
                if self.max_unacked is not None:
                    await self._wait_for_room(conn, keys, cursors, ahead)
                if self._stopping and not ahead:
                    await self._flush_acks(conn, keys)
                    return
                if not ahead:
                    ahead.add(self._send_read(conn, keys, cursors))
            replies, acked = await ahead.next_replies()
            for reply in replies[:-1]:
                raise_for_reply(reply)
            self.stats.acked += acked
            if self._stopping:
                # What a read returns once stopping stays pending, unhandled;
                # the loop takes the replies of reads still ahead (their acks
                # count), then flushes the last acks and returns.
                continue
            reply = replies[-1]
            if is_reply_error(reply):
                await self._on_read_error(conn, reply, nogroup_backoff_s, keys)
                nogroup_backoff_s = min(nogroup_backoff_s * 2, BACKOFF_MAX_S)
                continue
            nogroup_backoff_s = BACKOFF_FIRST_S
            if reply is not None:
                if self._may_read_ahead(reply, cursors):
                    while len(ahead) < READS_AHEAD:
                        # Without BLOCK: one that finds nothing returns at
                        # once, and the next read waits as usual.
                        ahead.add(self._send_read(conn, keys, cursors, False))
                await self._dispatch(reply, cursors)
            # A history read that returned nothing for a stream is done.
            if reply is None or len(reply) < len(cursors):
                returned = {stream.decode() for stream in self._streams_of(reply)}
                for key, cursor in cursors.items():
                    if cursor != _NEW and key not in returned:
                        cursors[key] = _NEW

    async def _wait_for_room(
        self,
        conn: Connection,
        keys: list[str],
        cursors: dict[str, bytes],
        ahead: _ReadsAhead,
    ) -> None:
        """Wait while `max_unacked` entries are handed out and not acked.

        The ack that makes room sends the next read itself: handlers that
        never suspend keep the loop busy, and a read left to this task's
        turn would go out only after several of them have run, with the
        server idle meanwhile.
        """
        assert self.max_unacked is not None

        def send_read() -> None:
            if ahead or self._stopping or not self._running.is_set():
                return
            try:
                ahead.add(self._send_read(conn, keys, cursors))
            except RedisConnectionError:
                pass  # this task finds the connection lost on its own

        while self._unacked >= self.max_unacked and not self._stopping:
            self._capacity.clear()
            # Waiting from here: room may come while the handled acks go out
            # (and handlers may keep the loop until all they hold is done).
            self._read_on_room.append(send_read)
            try:
                await self._flush_acks(conn, keys)
                if ahead or self._unacked < self.max_unacked:
                    return
                await self._capacity.wait()
            finally:
                if send_read in self._read_on_room:
                    self._read_on_room.remove(send_read)

    def _room(self) -> None:
        """Fewer than `max_unacked` are handed out: read again."""
        if self._read_on_room:
            waiting, self._read_on_room = self._read_on_room, []
            for send_read in waiting:
                send_read()
        self._capacity.set()

    def _send_read(
        self,
        conn: Connection,
        keys: list[str],
        cursors: dict[str, bytes],
        block: bool = True,
    ) -> tuple[asyncio.Future[list[Any]], int]:
        """Send the buffered acks of `keys` and a read; the future gets their
        replies, the read's last (returned with how many ids were acked)."""
        keyed, acked = self._take_ack_commands(keys)
        commands = [command for _, command in keyed]
        commands.append(self._read_command(cursors, block))
        convert = self._take_apart if self.columns else None
        return conn.request(b"".join(commands), len(commands), convert), acked

    def _may_read_ahead(self, reply: list[Any], cursors: dict[str, bytes]) -> bool:
        """Whether to keep `READS_AHEAD` reads in flight behind this one.

        The server then prepares the next entries while this process parses
        and hands over these, instead of each waiting for the other in turn.
        Only when it pays and changes nothing a handler can see: some stream
        returned a full
        COUNT (more is waiting), the history is drained (the next cursors do
        not depend on this reply), nothing bounds what is handed out
        (`max_unacked`), and the consumer is neither pausing nor stopping.
        Acks of this reply then go with a later read.
        """
        if (
            self.max_unacked is not None
            or self._stopping
            or not self._running.is_set()
            or any(cursor != _NEW for cursor in cursors.values())
        ):
            return False
        count = self.count
        if self.columns:
            return any(
                len(read.tombstones) + (len(read.batch.ids) if read.batch else 0)
                >= count
                for read in reply
            )
        return any(len(entries) >= count for _, entries in reply)

    def _streams_of(self, reply: list[Any] | None) -> list[bytes]:
        if not reply:
            return []
        if self.columns:
            return [read.stream for read in reply]
        return [stream for stream, _ in reply]

    def _take_apart(self, reply: Any) -> Any:
        """A read's reply as `_StreamRead`s (run by the connection on each
        reply as it is parsed; acks' counts, errors and None stay as they
        are)."""
        if type(reply) is list:
            return [self._stream_read(s, entries) for s, entries in reply]
        return reply

    def _stream_read(self, stream: bytes, entries: list[Entry]) -> _StreamRead:
        if not entries:
            return _StreamRead(stream, None, None, [])
        last_id = entries[-1][0]
        tombstones: list[bytes] = []
        fields = list(map(_FIELDS, entries))
        if None in fields:
            tombstones = [entry[0] for entry in entries if entry[1] is None]
            entries = [entry for entry in entries if entry[1] is not None]
            if not entries:
                return _StreamRead(stream, last_id, None, tombstones)
            fields = list(map(_FIELDS, entries))
        batch = Batch._of(self._index_of[stream], entries, fields, None)
        return _StreamRead(stream, last_id, batch, tombstones)

    async def _dispatch(self, reply: list[Any], cursors: dict[str, bytes]) -> None:
        if self.columns:
            await self._dispatch_batches(reply, cursors)
            return
        for stream, entries in reply:
            key = stream.decode()
            if cursors[key] != _NEW:
                if not entries:
                    cursors[key] = _NEW
                    continue
                cursors[key] = entries[-1][0]
                entries = self._drop_tombstones(key, entries)
                if not entries:
                    continue
            await self._hand_over(self._index_of[stream], key, entries, None)

    async def _dispatch_batches(
        self, reads: list[_StreamRead], cursors: dict[str, bytes]
    ) -> None:
        for read in reads:
            key = read.stream.decode()
            if cursors[key] != _NEW:
                if read.last_id is None:
                    cursors[key] = _NEW
                    continue
                cursors[key] = read.last_id
            if read.tombstones:
                self.stats.tombstones += len(read.tombstones)
                self._acks.setdefault(key, []).extend(read.tombstones)
            if read.batch is not None:
                await self._hand_over_batch(key, read.batch)

    async def _hand_over_batch(self, key: str, batch: Batch) -> None:
        assert self._on_batch is not None
        count = len(batch.ids)
        self.stats.delivered += count
        if self.ack_mode is AckMode.MANUAL:
            self._unacked += count
        try:
            result = self._on_batch(batch)
            if inspect.isawaitable(result):
                await result
        except Exception as err:
            logger.exception(
                "handler failed; %d entries of %s stay pending", count, key
            )
            for entry_id in batch.ids:
                self.fail(entry_id, err)
            return
        if self.ack_mode is AckMode.AFTER_HANDLER:
            acks = self._acks.get(key)
            if acks is None:
                self._acks[key] = batch.ids.copy()
            else:
                acks += batch.ids

    def _drop_tombstones(self, key: str, entries: list[Entry]) -> list[Entry]:
        live = [entry for entry in entries if entry[1] is not None]
        if len(live) < len(entries):
            dead = [entry[0] for entry in entries if entry[1] is None]
            self.stats.tombstones += len(dead)
            self._acks.setdefault(key, []).extend(dead)
        return live

    async def _hand_over(
        self,
        partition: int,
        key: str,
        entries: list[Entry],
        deliveries: list[int] | None,
    ) -> None:
        if self._on_entries is None:
            batch = Batch.from_entries(partition, entries, deliveries)
            await self._hand_over_batch(key, batch)
            return
        self.stats.delivered += len(entries)
        if self.ack_mode is AckMode.MANUAL:
            self._unacked += len(entries)
        try:
            result = self._on_entries(partition, entries, deliveries)
            if inspect.isawaitable(result):
                await result
        except Exception as err:
            logger.exception(
                "handler failed; %d entries of %s stay pending", len(entries), key
            )
            for entry in entries:
                self.fail(entry[0], err)
            return
        if self.ack_mode is AckMode.AFTER_HANDLER:
            acks = self._acks.get(key)
            if acks is None:
                self._acks[key] = list(map(_ID, entries))
            else:
                acks += map(_ID, entries)

    def _read_command(self, cursors: dict[str, bytes], block: bool = True) -> bytes:
        # Blocking only makes sense for new entries; a history read must
        # return at once.
        block = block and all(cursor == _NEW for cursor in cursors.values())
        args: list[bytes | str | int] = [
            "XREADGROUP", "GROUP", self.group, self.name, "COUNT", self.count,
        ]  # fmt: skip
        if block:
            args += ["BLOCK", self.block_ms]
        if self.ack_mode is AckMode.NONE:
            args.append("NOACK")
        args.append("STREAMS")
        args.extend(cursors)
        args.extend(cursors.values())
        return encode_command(*args)

    async def _on_read_error(
        self, conn: Connection, reply: Any, backoff_s: float, keys: list[str]
    ) -> None:
        try:
            raise_for_reply(reply)
        except NoGroupError:
            # The stream (and its groups) was deleted or expired. Make the
            # group again from the start of the stream, waiting longer each
            # time it keeps vanishing so a missing key is not hammered; only
            # the first time in a row is worth a warning.
            log = logger.warning if backoff_s == BACKOFF_FIRST_S else logger.debug
            log(
                "group %s is gone from topic %s; recreating it in %.1f s",
                self.group, self.topic.name, backoff_s,
            )  # fmt: skip
            await asyncio.sleep(backoff_s)
            await create_group(conn, keys, self.group, "0")

    # recovery

    async def _sweep_forever(self) -> None:
        assert self.claim_idle_ms is not None
        while not self._stopping:
            await asyncio.sleep(self.claim_interval_ms / 1000)
            try:
                await self.sweep()
            except RedisConnectionError as err:
                logger.warning("recovery sweep failed (%s); trying again later", err)
                if self._side is not None and self._side.closed:
                    assert self._settings is not None
                    try:
                        self._side = await Connection.open(self._settings)
                        self._router = SingleNode(self._side)
                    except RedisConnectionError:
                        pass
            except NoGroupError:
                pass  # the reader recreates the group
            except AioRedisMQError as err:
                if not err.retriable:
                    raise
                logger.warning("recovery sweep failed (%s); trying again later", err)

    async def sweep(self) -> None:
        """Claim entries idle past `claim_idle_ms`; dead-letter the worn out."""
        router, min_idle_ms = self._router, self.claim_idle_ms
        if router is None or min_idle_ms is None:
            return
        # Acks wait for the reader's next round trip; send them first, or an
        # entry handled a moment ago would look idle and be claimed again.
        await self._flush_acks(router)
        for partition, key in zip(self.partitions, self._keys, strict=True):
            conn = router.connection_for_key(key)
            found = await claim_idle(
                conn, key, self.group, self.name, min_idle_ms, count=self.count
            )
            if found.tombstones:
                self.stats.tombstones += len(found.tombstones)
                await conn.execute("XACK", key, self.group, *found.tombstones)
            if not found.entries:
                continue
            self.stats.claimed += len(found.entries)
            worn = [
                e
                for e in found.entries
                if self.max_deliveries is not None and e[2] > self.max_deliveries
            ]
            if worn:
                await dead_letter(
                    conn,
                    self.topic.name,
                    partition,
                    key,
                    self.group,
                    [
                        (
                            entry_id,
                            fields,
                            deliveries,
                            self._errors.pop(entry_id, "unknown (not handled here)"),
                        )
                        for entry_id, fields, deliveries in worn
                    ],
                )
                self.stats.dead_lettered += len(worn)
            retry = [e for e in found.entries if e not in worn]
            if retry:
                self.stats.retried += len(retry)
                await self._hand_over(
                    partition, key, [[e[0], e[1]] for e in retry], [e[2] for e in retry]
                )
