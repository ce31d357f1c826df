"""The front door: connect, manage topics, make producers and consumers.

async with await Client.connect("redis://localhost:6379") as client:
    topic = await client.create_topic("orders", partitions=4)
    producer = client.producer(topic)
    await producer.send(b"...", key="customer-17")

    async with client.consumer(topic, "billing", "worker-1") as consumer:
        async for message in consumer:
            ...  # acked when the loop asks for the next message
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
import logging
import operator
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self

from aioredismq import topic as topics
from aioredismq.cluster import ClusterConnections
from aioredismq.connection import (
    Connection,
    ConnectionSettings,
    encode_command,
    raise_for_reply,
)
from aioredismq.consumer import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    AckMode,
    Batch,
    ConsumerStats,
    GroupConsumer,
    check_ack_mode,
)
from aioredismq.errors import (
    ClosedError,
    ConfigError,
    RedisConnectionError,
    check_whole,
)
from aioredismq.keys import META_PREFIX, dead_letter_key
from aioredismq.message import Message, parse_entries, parse_fields
from aioredismq.producer import Producer
from aioredismq.recovery import ORIGIN_FIELDS
from aioredismq.routing import Router, SingleNode
from aioredismq.topic import Topic, check_position

__all__ = ["Client", "Consumer", "Subscriber"]

logger = logging.getLogger(__name__)

Handler = Callable[[Message], Awaitable[None]]

#: `Consumer.run` passes acks on to the reader at least this often.
ACK_CHUNK = 64
#: Messages a `Consumer` hands out, over all its handlers, before every
#: other task ready to run gets its turn: handlers that never suspend would
#: otherwise hold the event loop for a whole read (up to `prefetch` x
#: partitions messages).
TURN_MESSAGES = 64
_PARTITION = operator.attrgetter("partition")
_ENTRY_ID = re.compile(rb"\d+-\d+")
_MESSAGE_ID = operator.attrgetter("id")


def _pairs(flat: list[Any]) -> dict[str, Any]:
    return {
        (k.decode() if isinstance(k, bytes) else k): v
        for k, v in zip(flat[::2], flat[1::2], strict=True)
    }


class Client:
    """A connection to one server and everything made from it."""

    def __init__(
        self,
        settings: ConnectionSettings,
        conn: Connection,
        cluster: ClusterConnections | None = None,
    ) -> None:
        self.settings = settings
        self._conn = conn
        self._cluster = cluster
        self._owned: list[Consumer | Subscriber | Producer] = []
        self._closing = False

    @classmethod
    async def connect(
        cls, url: str = "redis://127.0.0.1:6379", **options: Any
    ) -> Client:
        """Connect to `redis://[user[:password]@]host[:port][/db]` or `rediss://`."""
        settings = ConnectionSettings.from_url(url, **options)
        return cls(settings, await Connection.open(settings))

    @classmethod
    async def connect_cluster(cls, seed_urls: Sequence[str], **options: Any) -> Client:
        """Connect to a Redis Cluster through any of its nodes' URLs."""
        if not seed_urls:
            raise ConfigError("cluster", "seed_urls", seed_urls, "give at least one")
        seeds = [ConnectionSettings.from_url(url, **options) for url in seed_urls]
        cluster = await ClusterConnections.connect(seeds)
        return cls(seeds[0], cluster.connection_for_key(META_PREFIX), cluster)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop consumers and subscribers, close producers, disconnect.

        They end together, each with up to `timeout_s` for what it still
        waits for (see `Producer.close` and `Consumer.stop`).
        """
        self._closing = True
        owned, self._owned = self._owned, []
        endings: list[Awaitable[None]] = []
        for item in owned:
            if isinstance(item, Producer):
                endings.append(item.close(timeout_s))
            elif isinstance(item, Consumer):
                endings.append(item.stop(timeout_s))
            else:
                endings.append(item.stop())
        # All at once: a server that stops answering costs each its timeout
        # in parallel, not one after the other.
        results = await asyncio.gather(*endings, return_exceptions=True)
        if self._cluster is not None:
            await self._cluster.close()
        else:
            await self._conn.close()
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connection(self) -> Connection:
        """The shared, pipelined connection (never used for blocking reads)."""
        return self._conn

    async def _admin(self) -> Router:
        if self._cluster is not None:
            return self._cluster
        # Reopened on first use after a loss; callers see one failed call at
        # most, not a client that stays broken.
        if self._conn.closed and not self._closing:
            self._conn = await Connection.open(self.settings)
        return SingleNode(self._conn)

    # topics

    async def create_topic(self, name: str, partitions: int) -> Topic:
        return await topics.create_topic(await self._admin(), name, partitions)

    async def topic(self, name: str) -> Topic:
        """A topic created before, by any process."""
        return await topics.open_topic(await self._admin(), name)

    async def delete_topic(self, topic: Topic) -> int:
        return await topics.delete_topic(await self._admin(), topic)

    async def list_topics(self) -> list[str]:
        if self._cluster is not None:
            nodes = await self._cluster.primaries()
        else:
            nodes = [(await self._admin()).connection_for_key(META_PREFIX)]
        names: list[str] = []
        for node in nodes:
            cursor = b"0"
            while True:
                cursor, keys = await node.execute(
                    "SCAN", cursor, "MATCH", META_PREFIX + "*", "COUNT", 1000
                )
                names += [k.decode()[len(META_PREFIX) :] for k in keys]
                if cursor == b"0":
                    break
        return sorted(names)

    async def _each_partition(
        self, topic: Topic, command: str, *args: str | int
    ) -> list[Any]:
        # "XINFO GROUPS" and the like: the subcommand goes before the key.
        head = command.split()
        router = await self._admin()
        return await router.request_by_key(
            [(key, encode_command(*head, key, *args)) for key in topic.stream_keys]
        )

    async def stream_lengths(self, topic: Topic) -> list[int]:
        """Entries per partition (XLEN)."""
        replies = await self._each_partition(topic, "XLEN")
        return [int(raise_for_reply(n)) for n in replies]

    async def trim(
        self, topic: Topic, *, maxlen: int | None = None, min_id: str | None = None
    ) -> int:
        """Trim every partition exactly (`MAXLEN` or `MINID`); entries removed."""
        if (maxlen is None) == (min_id is None):
            raise ConfigError("trim", "maxlen", maxlen, "give maxlen or min_id")
        rule: tuple[str, str | int] = (
            ("MAXLEN", maxlen) if maxlen is not None else ("MINID", str(min_id))
        )
        replies = await self._each_partition(topic, "XTRIM", *rule)
        return sum(int(raise_for_reply(n)) for n in replies)

    async def groups(self, topic: Topic) -> list[list[dict[str, Any]]]:
        """XINFO GROUPS of each partition, as dicts with str keys."""
        replies = await self._each_partition(topic, "XINFO GROUPS")
        return [
            [_pairs(g) for g in reply] if isinstance(reply, list) else []
            for reply in replies
        ]

    async def consumers(self, topic: Topic, group: str) -> list[list[dict[str, Any]]]:
        """XINFO CONSUMERS of a group on each partition."""
        replies = await self._each_partition(topic, "XINFO CONSUMERS", group)
        return [
            [_pairs(c) for c in reply] if isinstance(reply, list) else []
            for reply in replies
        ]

    async def pending(self, topic: Topic, group: str) -> list[int]:
        """How many entries are pending (delivered, not acked) per partition."""
        replies = await self._each_partition(topic, "XPENDING", group)
        return [int(r[0]) if isinstance(r, list) else 0 for r in replies]

    async def lag(self, topic: Topic, group: str) -> list[int | None]:
        """Entries not yet delivered to `group`, per partition.

        None where the server cannot tell (its `lag` is null after some trims
        and deletions, and servers before 7.0 do not report it): unknown is
        not zero.
        """
        lags: list[int | None] = []
        for partition_groups in await self.groups(topic):
            match = [g for g in partition_groups if g.get("name") == group.encode()]
            lag = match[0].get("lag") if match else None
            lags.append(None if lag is None else int(lag))
        return lags

    async def dead_letters(
        self, topic: Topic, count: int = 100
    ) -> list[tuple[Message, dict[str, bytes]]]:
        """The oldest dead letters of every partition, each with its origin
        (`origin-partition`, `origin-id`, `origin-group`, `deliveries`,
        `last-error`)."""
        router = await self._admin()
        names = [dead_letter_key(topic.name, i) for i in range(topic.partitions)]
        replies = await router.request_by_key(
            [
                (name, encode_command("XRANGE", name, "-", "+", "COUNT", count))
                for name in names
            ]
        )
        letters = []
        for partition, entries in enumerate(replies):
            for entry_id, fields in entries:
                values = dict(zip(fields[::2], fields[1::2], strict=True))
                origin = {f.decode(): values[f] for f in ORIGIN_FIELDS if f in values}
                letters.append((parse_fields(entry_id, partition, fields), origin))
        return letters

    # producers and consumers

    def _check_open(self) -> None:
        if self._closing:
            raise ClosedError("client is closed")

    def producer(self, topic: Topic, **options: Any) -> Producer:
        """A producer on the shared connection (see `Producer` for options)."""
        self._check_open()
        producer = Producer(self._cluster or self._conn, topic, **options)
        self._owned.append(producer)
        return producer

    def consumer(self, topic: Topic, group: str, name: str, **options: Any) -> Consumer:
        """A group member; start it with `async with` or `await start()`."""
        self._check_open()
        source = self._cluster or self.settings
        consumer = Consumer(source, topic, group, name, **options)
        self._owned.append(consumer)
        return consumer

    def subscriber(self, topic: Topic, **options: Any) -> Subscriber:
        """A reader outside any group: every message, from a position."""
        self._check_open()
        subscriber = Subscriber(self._cluster or self.settings, topic, **options)
        self._owned.append(subscriber)
        return subscriber


class _Running:
    """`async with x:` starts `x` and stops it on the way out."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class Consumer(_Running):
    """Messages of a consumer group, one at a time, to a loop or a handler.

    `prefetch` bounds what is fetched ahead of the handlers, per partition:
    one read asks for up to `prefetch` messages of each partition, and the
    next read is sent once fewer than `prefetch` x partitions are handed out
    and not yet acked, so it arrives while the handlers still have work
    (the server prepares one read while this process handles the last). At
    most 2 x `prefetch` x partitions messages are therefore in memory. (A
    bound on the whole topic would cut each read to a share of `prefetch`
    per partition, and the throughput with it.) `concurrency`
    bounds handlers running at once in `run`. Ack modes: after the handler
    (or loop body) finishes without error, manual (`await ack(message)`), or
    none (NOACK). A failed message stays pending; once idle `claim_idle_ms`
    (a minute by default) it is claimed and retried, by this member or any
    other, and after `max_deliveries` deliveries (10 by default) it goes to
    the partition's dead-letter stream, so no message stays pending for
    ever. The same sweep takes over messages of members that crashed. A
    handler that may take longer than `claim_idle_ms` needs a larger value,
    or its message is delivered again meanwhile; None turns recovery off
    (and with it the delivery limit).
    """

    def __init__(
        self,
        source: ConnectionSettings | Router,
        topic: Topic,
        group: str,
        name: str,
        *,
        ack_mode: AckMode | str = AckMode.AFTER_HANDLER,
        prefetch: int = 100,
        concurrency: int = 10,
        block_ms: int = 100,
        start_id: str = "0",
        claim_idle_ms: int | None = 60_000,
        claim_interval_ms: int = 1000,
        max_deliveries: int | None = 10,
    ) -> None:
        for option, value in (("prefetch", prefetch), ("concurrency", concurrency)):
            check_whole("consumer", option, value, 1)
        ack_mode = check_ack_mode(ack_mode)
        self.ack_mode = ack_mode
        self.concurrency = concurrency
        self._engine = GroupConsumer(
            source,
            topic,
            group,
            name,
            self._enqueue,
            columns=True,
            ack_mode=AckMode.NONE if ack_mode is AckMode.NONE else AckMode.MANUAL,
            max_unacked=prefetch * topic.partitions,
            count=prefetch,
            block_ms=block_ms,
            start_id=start_id,
            claim_idle_ms=claim_idle_ms,
            claim_interval_ms=claim_interval_ms,
            # Redeliveries come from recovery: without it there is no limit.
            max_deliveries=None if claim_idle_ms is None else max_deliveries,
            on_failure=self._engine_failed,
        )
        # Batches read and not yet handed out, each an iterator that makes
        # its messages as they are taken (see `Batch.messages`).
        self._ready: collections.deque[Iterator[Message]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._previous: Message | None = None
        # Messages still to hand out before the others' turn, and the
        # handlers waiting for it to pass (see `_give_turn`).
        self._turn_budget = TURN_MESSAGES
        self._turn_waiters: list[asyncio.Future[None]] = []
        self._handlers: set[asyncio.Task[None]] = set()
        # Each running handler task's handled messages not yet acked.
        self._gathered: list[list[Message]] = []
        self._stop_done = asyncio.Event()
        self._engine_stopped = False
        self._started = False
        self._stopped = asyncio.Event()
        # Set with `_stopped`; a plain attribute, read once per message.
        self._closing = False
        # What ended reading (an error retrying cannot get past), if anything.
        self._failure: BaseException | None = None

    @property
    def stats(self) -> ConsumerStats:
        return self._engine.stats

    def _enqueue(self, batch: Batch) -> None:
        self._ready.append(batch.messages())
        self._wake()

    def _take(self) -> Message | None:
        """The next message read, if one is ready (no waiting); none once
        `stop` has begun, so what was fetched and not handed out stays
        pending."""
        ready = self._ready
        while ready and not self._closing:
            message = next(ready[0], None)
            if message is not None:
                return message
            ready.popleft()
        return None

    async def _give_turn(self) -> None:
        """Wait until every task ready to run now has run once.

        The first handler to find the budget spent queues the new turn
        behind the tasks already waiting for the loop; handlers that find it
        spent meanwhile wait for that turn too, so between two turns at most
        `TURN_MESSAGES` messages are handled, however many handlers run.
        (One future each: a cancelled handler cancels only its own.)
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        if not self._turn_waiters:
            # Two hops: a timer or socket that became ready meanwhile is
            # turned into a task step only on the loop's next pass, so the
            # new turn comes one pass later than that, behind the step.
            loop.call_soon(loop.call_soon, self._new_turn)
        self._turn_waiters.append(waiter)
        await waiter

    def _new_turn(self) -> None:
        waiters, self._turn_waiters = self._turn_waiters, []
        self._turn_budget = TURN_MESSAGES
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _engine_failed(self, error: BaseException) -> None:
        """Reading ended with an error: hand nothing more out (what was
        fetched stays pending) and raise it from `run` and the iterator."""
        self._failure = error
        self._closing = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def start(self) -> None:
        if not self._started:
            self._started = True
            await self._engine.start()

    async def ack(self, message: Message) -> None:
        """Acknowledge a message (manual mode; harmless otherwise).

        Raises `ClosedError` after `stop`: the ack could no longer be sent,
        and ValueError for a message this consumer's topic cannot hold (one
        bad id would fail the acks sent with it).
        """
        partitions = self._engine.topic.partitions
        if not (
            isinstance(message.partition, int)
            and 0 <= message.partition < partitions
            and isinstance(message.id, bytes)
            and _ENTRY_ID.fullmatch(message.id)
        ):
            raise ValueError(
                f"no message to ack: id {message.id!r} of partition "
                f"{message.partition!r} (the topic has {partitions} partitions)"
            )
        self._ack(message)

    def _ack(self, message: Message) -> None:
        if self._engine_stopped:
            raise ClosedError("consumer is stopped; the message stays pending")
        if self.ack_mode is not AckMode.NONE:
            self._engine.ack_one(message.partition, message.id)

    def nack(self, message: Message, error: BaseException | str) -> None:
        """Give a message up for now: it stays pending and is retried later."""
        self._engine.fail(message.id, error)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        # A message is acked when the loop comes back for the next one, so a
        # loop left with `break` leaves its last message pending unless the
        # body acks it (at least once, rather than acking unfinished work).
        previous, self._previous = self._previous, None
        if (
            previous is not None
            and self.ack_mode is AckMode.AFTER_HANDLER
            and not self._stopped.is_set()
        ):
            self._ack(previous)
        self._turn_budget -= 1
        if self._turn_budget <= 0:
            await self._give_turn()
        message = self._take()  # what `_next` would return, without a coroutine
        if message is None:
            message = await self._next()
            if message is None:
                raise StopAsyncIteration
        self._previous = message
        return message

    async def _next(self) -> Message | None:
        # A plain deque and one shared waiter: a message ready costs no task
        # and no await, which is most of the per-message cost otherwise.
        while (message := self._take()) is None:
            if self._failure is not None:
                raise self._failure
            if self._stopped.is_set():
                return None
            if not self._started:
                await self.start()
                continue
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return message

    async def run(self, handler: Handler) -> None:
        """Handle messages until `stop`, up to `concurrency` at once.

        `concurrency` long-lived tasks each take the next message, await the
        handler and ack; no task is made per message. A lost connection or a
        busy server is waited out; an error retrying cannot get past (say, a
        partition's key replaced by another type) ends reading, lets running
        handlers finish and is raised here (the iterator raises it too). A
        handler that is not async is refused with TypeError at its first
        message, which stays pending.
        """
        await self.start()
        workers = [
            asyncio.create_task(self._work(handler), name=f"handler {i}")
            for i in range(self.concurrency)
        ]
        self._handlers.update(workers)
        try:
            _, rest = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            if rest and self._failure is None:
                # One failed (a handler that is not async): the others would
                # wait for messages for ever.
                for task in rest:
                    task.cancel()
            if rest:  # after a failed read they end once their handler has
                await asyncio.wait(rest)
        except asyncio.CancelledError:
            for task in workers:
                task.cancel()
            await asyncio.wait(workers)
            raise
        finally:
            self._handlers.difference_update(workers)
        # Handlers cut off by `stop`'s timeout end as cancelled; that is how
        # a stop ends `run`, not an error to raise. Every error is retrieved
        # (after a failed read each handler task ends with it), one raised.
        errors = [
            error
            for task in workers
            if not task.cancelled() and (error := task.exception()) is not None
        ]
        if self._failure is not None:
            raise self._failure
        if errors:
            raise errors[0]

    async def _work(self, handler: Handler) -> None:
        ready = self._ready
        ack_after = self.ack_mode is AckMode.AFTER_HANDLER
        checked = False  # whether the handler was seen to return an awaitable
        # Handled messages are acked together: before waiting for more (so
        # the reader's next round trip carries them), every ACK_CHUNK
        # messages, and when the worker ends, cut off by a stop included.
        handled: list[Message] = []
        self._gathered.append(handled)  # for a stop called by a handler
        try:
            while True:
                messages: Iterator[Message]
                if ready:
                    # The oldest batch, shared with the other workers: each
                    # takes its next message, no coroutine per message.
                    messages = ready[0]
                else:
                    if handled:
                        self._ack_handled(handled)
                        handled.clear()
                    first = await self._next()
                    if first is None:
                        return
                    messages = iter((first,))
                for message in messages:
                    while self._turn_budget <= 0:  # others used it meanwhile
                        await self._give_turn()
                    if self._closing:
                        return  # the rest stays pending (see `stop`)
                    self._turn_budget -= 1
                    try:
                        outcome = handler(message)
                        if not checked:
                            if not inspect.isawaitable(outcome):
                                self._closing = True  # the others take no more
                                raise _not_awaitable(outcome, handler)
                            checked = True
                        await outcome
                    except (asyncio.CancelledError, _NotAwaitableError):
                        raise
                    except Exception as err:
                        logger.warning("handler failed for %r: %s", message.id, err)
                        self.nack(message, err)
                    else:
                        if ack_after:
                            handled.append(message)
                            if len(handled) >= ACK_CHUNK:
                                self._ack_handled(handled)
                                handled.clear()
                if ready and ready[0] is messages:
                    ready.popleft()  # used up
        finally:
            self._gathered.remove(handled)
            if handled:
                self._ack_handled(handled)

    def _ack_handled(self, handled: list[Message]) -> None:
        if self._engine_stopped:
            return  # too late to send: they stay pending, as documented
        ack = self._engine.ack
        for partition, messages in itertools.groupby(handled, _PARTITION):
            ack(partition, list(map(_MESSAGE_ID, messages)))

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop reading; let running handlers finish (up to `timeout_s`).

        A server that stops answering delays it by up to `timeout_s` more
        for the reads in flight and as much for the last acks.

        Messages fetched but not handled, and handlers cut off by the
        timeout, are not acked: they stay pending in the group and come back
        on this consumer's next start or through another member's recovery.
        """
        caller = asyncio.current_task()
        if self._stopped.is_set():
            # A stop is under way or done: wait for it, unless called from a
            # handler, which that stop may itself be waiting for.
            if caller not in self._handlers:
                await self._stop_done.wait()
            return
        self._stopped.set()
        self._closing = True
        self._ready.clear()
        self._wake()
        self._engine.pause()
        try:
            # A handler that calls stop is not waited for: it waits for stop.
            others = self._handlers - {caller}
            if others:
                _, late = await asyncio.wait(others, timeout=timeout_s)
                for task in late:
                    task.cancel()
                if late:
                    await asyncio.wait(late)
            # What running handlers handled and have not passed on yet (the
            # caller's own, when a handler stops the consumer) is acked now.
            for handled in self._gathered:
                self._ack_handled(handled)
                handled.clear()
            await self._engine.stop(timeout_s)
        finally:
            self._engine_stopped = True
            self._stop_done.set()


class _NotAwaitableError(TypeError):
    """`run` was given a handler that is not async."""


def _not_awaitable(outcome: object, handler: object) -> _NotAwaitableError:
    # Its work is done (and would be done again on redelivery), but the
    # message cannot be acked as handled: stop here, loudly.
    return _NotAwaitableError(
        f"handler {handler!r} returned {type(outcome).__name__}, not an "
        "awaitable: pass an async function (async def)"
    )


class Subscriber(_Running):
    """Reads every message of a topic, outside any group (fan-out).

    Starts at `start`: "$" (only what is published from now on), "0" (from
    the beginning) or an entry id. "$" is resolved to the current last id
    once, at start, and a cursor per partition is kept from then on, so
    nothing published between two reads is missed. On a single server one
    blocking XREAD covers every partition, on its own connection; on a
    cluster, where one command may not span slots, each partition is read
    without blocking and an empty round waits `block_ms`.
    """

    def __init__(
        self,
        source: ConnectionSettings | Router,
        topic: Topic,
        *,
        start: str = "$",
        count: int = 100,
        block_ms: int = 100,
    ) -> None:
        for option, value in (("count", count), ("block_ms", block_ms)):
            check_whole("subscriber", option, value, 1)
        check_position("subscriber", "start", start)
        self._source = source
        self.topic = topic
        self.start_position = start
        self.count = count
        self.block_ms = block_ms
        self._router: Router | None = None
        self._own: Connection | None = None
        self._cursors: list[bytes] = []
        self._buffer: list[Message] = []
        self._stopped = False

    async def _open(self) -> Router:
        if self._stopped:
            raise ClosedError("subscriber is stopped")
        if self._router is None:
            if isinstance(self._source, ConnectionSettings):
                self._own = await Connection.open(self._source)
                router: Router = SingleNode(self._own)
            else:
                router = self._source
            if not self._cursors:  # else reconnected: go on from the cursors
                self._cursors = await self._start_cursors(router)
            self._router = router
        return self._router

    async def _start_cursors(self, router: Router) -> list[bytes]:
        if self.start_position != "$":
            return [self.start_position.encode()] * self.topic.partitions
        last = await router.request_by_key(
            [
                (key, encode_command("XREVRANGE", key, "+", "-", "COUNT", 1))
                for key in self.topic.stream_keys
            ]
        )
        return [reply[0][0] if reply else b"0-0" for reply in last]

    async def start(self) -> None:
        """Fix the start position now ("$" means: what is published after
        this call); otherwise the first `read` does it."""
        await self._open()

    async def read(self) -> list[Message]:
        """The next messages (waiting up to `block_ms`); may be empty.

        A lost connection is made again, with back-off, and reading goes on
        from the cursors, so nothing published meanwhile is missed (as long
        as the streams still hold it). After `stop` (even from another task,
        mid-read) it returns nothing.
        """
        backoff_s = BACKOFF_FIRST_S
        while not self._stopped:
            try:
                return await self._read()
            except ClosedError:
                if self._stopped:
                    return []
                raise
            except RedisConnectionError as err:
                if self._stopped:
                    return []
                logger.warning(
                    "subscriber of %s lost its connection (%s); reconnecting in "
                    "%.1f s", self.topic.name, err, backoff_s,
                )  # fmt: skip
                if self._own is not None:
                    own, self._own, self._router = self._own, None, None
                    await own.close()
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
        return []

    async def _read(self) -> list[Message]:
        router = await self._open()
        keys = self.topic.stream_keys
        if self._own is not None:
            reply = await self._own.execute(
                "XREAD", "COUNT", self.count, "BLOCK", self.block_ms, "STREAMS",
                *keys, *self._cursors,
            )  # fmt: skip
            streams = reply or []
        else:
            replies = await router.request_by_key(
                [
                    (
                        key,
                        encode_command(
                            "XREAD", "COUNT", self.count, "STREAMS", key, cursor
                        ),
                    )
                    for key, cursor in zip(keys, self._cursors, strict=True)
                ]
            )
            streams = [stream for reply in replies if reply for stream in reply]
            if not streams:
                await asyncio.sleep(self.block_ms / 1000)
        messages: list[Message] = []
        for stream, entries in streams:
            partition = keys.index(stream.decode())
            self._cursors[partition] = entries[-1][0]
            messages += parse_entries(partition, entries)
        return messages

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        while not self._buffer:
            if self._stopped:
                raise StopAsyncIteration
            self._buffer = await self.read()
        return self._buffer.pop(0)

    async def stop(self) -> None:
        self._stopped = True
        self._router = None
        if self._own is not None:
            await self._own.close()
            self._own = None
