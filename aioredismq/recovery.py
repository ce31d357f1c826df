"""Recovering stuck messages: claiming from dead consumers, dead letters.

A consumer that crashes leaves its entries pending in the group. Any live
member can take over entries idle longer than a threshold (XAUTOCLAIM, which
also counts a delivery). An entry delivered more often than a limit goes to
the partition's dead-letter stream, with where it came from, in the same
transaction as its ack: it is never both acked and lost, nor dead-lettered
twice. The dead-letter stream shares the partition's hash tag, so on a
cluster the transaction stays on one node.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aioredismq.connection import Connection, encode_command, raise_for_reply
from aioredismq.keys import dead_letter_key

__all__ = ["ClaimResult", "claim_idle", "dead_letter"]

logger = logging.getLogger(__name__)

#: Fields a dead-letter entry carries besides the original message's fields.
ORIGIN_FIELDS = (
    b"origin-partition",
    b"origin-id",
    b"origin-group",
    b"deliveries",
    b"last-error",
)


@dataclass(slots=True)
class ClaimResult:
    """What one sweep over one partition found."""

    #: Claimed entries that still hold data: `(id, fields, deliveries)`.
    entries: list[tuple[bytes, list[Any], int]] = field(default_factory=list)
    #: Pending ids whose data was trimmed or deleted (already out of the PEL
    #: on 7.0+; acked by the caller on older servers).
    tombstones: list[bytes] = field(default_factory=list)


async def claim_idle(
    conn: Connection,
    stream: str,
    group: str,
    consumer: str,
    min_idle_ms: int,
    *,
    count: int = 100,
    limit: int = 1000,
) -> ClaimResult:
    """Claim up to `limit` entries idle for `min_idle_ms`, following the cursor.

    XAUTOCLAIM scans like SCAN: a call may claim nothing and still return a
    cursor to continue from; the sweep ends at cursor 0-0 (or at `limit`).
    """
    result = ClaimResult()
    cursor = b"0-0"
    while True:
        reply = await conn.execute(
            "XAUTOCLAIM", stream, group, consumer, min_idle_ms, cursor, "COUNT", count
        )
        cursor, claimed = reply[0], reply[1]
        if len(reply) > 2 and reply[2]:
            result.tombstones.extend(reply[2])
        for entry_id, fields in claimed:
            if fields is None:  # servers before 7.0 return trimmed ids so
                result.tombstones.append(entry_id)
            else:
                result.entries.append((entry_id, fields, 0))
        if cursor == b"0-0" or len(result.entries) >= limit:
            break
    if result.entries:
        await _fill_deliveries(conn, stream, group, consumer, result.entries)
    return result


async def _fill_deliveries(
    conn: Connection,
    stream: str,
    group: str,
    consumer: str,
    entries: list[tuple[bytes, list[Any], int]],
) -> None:
    # XAUTOCLAIM does not say how often an entry was delivered; the extended
    # XPENDING form does, for a range of ids owned by this consumer.
    first, last = entries[0][0], entries[-1][0]
    rows = await conn.execute(
        "XPENDING", stream, group, first, last, len(entries) * 2, consumer
    )
    counts = {row[0]: int(row[3]) for row in rows}
    for i, (entry_id, fields, _) in enumerate(entries):
        entries[i] = (entry_id, fields, counts.get(entry_id, 1))


async def dead_letter(
    conn: Connection,
    topic: str,
    partition: int,
    stream: str,
    group: str,
    entries: Sequence[tuple[bytes, list[Any], int, str]],
) -> None:
    """Move entries `(id, fields, deliveries, last error)` to dead letters.

    Each entry's copy and its ack go in one MULTI/EXEC: either both happen or
    neither does.
    """
    target = dead_letter_key(topic, partition)
    commands = [encode_command("MULTI")]
    for entry_id, fields, deliveries, error in entries:
        origin = [
            b"origin-partition", b"%d" % partition,
            b"origin-id", entry_id,
            b"origin-group", group.encode(),
            b"deliveries", b"%d" % deliveries,
            b"last-error", error.encode(errors="replace"),
        ]  # fmt: skip
        commands.append(encode_command("XADD", target, "*", *fields, *origin))
        commands.append(encode_command("XACK", stream, group, entry_id))
    commands.append(encode_command("EXEC"))
    replies = await conn.request(b"".join(commands), len(commands))
    for reply in replies:
        raise_for_reply(reply)
    executed = replies[-1]
    if executed is None:
        raise RuntimeError("dead-letter transaction was aborted")
    for reply in executed:
        raise_for_reply(reply)
    logger.warning(
        "%d entries of %s moved to %s after too many deliveries",
        len(entries),
        stream,
        target,
    )
