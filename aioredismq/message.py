"""Messages as they sit in a stream entry, and as consumers see them.

An entry written by `Producer` has the fields `ts_us` (producer wall clock,
microseconds), `payload`, then optionally `key` and one `h:<name>` field per
header. Field names and values are bytes end to end; nothing is decoded
unless a caller asks for text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

__all__ = [
    "FIELD_KEY",
    "FIELD_PAYLOAD",
    "FIELD_TS",
    "HEADER_PREFIX",
    "Message",
    "encode_fields",
    "parse_entries",
    "parse_fields",
    "producer_layout",
]

FIELD_TS = b"ts_us"
FIELD_PAYLOAD = b"payload"
FIELD_KEY = b"key"
HEADER_PREFIX = b"h:"

_ID = itemgetter(0)
_FIELDS = itemgetter(1)
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_THIRD = itemgetter(2)
_FOURTH = itemgetter(3)


def _as_bytes(value: str | bytes) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    kind = type(value).__name__
    raise TypeError(f"a header name or value must be str or bytes, not {kind}")


def encode_fields(
    headers: Mapping[str | bytes, str | bytes] | None,
) -> list[bytes]:
    """Header fields as a flat `[name, value, ...]` list for XADD."""
    if not headers:
        return []
    if not isinstance(headers, Mapping):
        kind = type(headers).__name__
        raise TypeError(f"headers must be a mapping of names to values, not {kind}")
    flat: list[bytes] = []
    for name, value in headers.items():
        flat.append(HEADER_PREFIX + _as_bytes(name))
        flat.append(_as_bytes(value))
    return flat


@dataclass(slots=True)
class Message:
    """One delivered message.

    `deliveries` is how often the group has handed this entry out, this time
    included (1 for a first delivery; more after a crash or a failed handler).
    """

    id: bytes
    partition: int
    payload: bytes
    key: bytes | None = None
    headers: dict[bytes, bytes] = field(default_factory=dict)
    timestamp_us: int = 0
    deliveries: int = 1

    def text(self, encoding: str = "utf-8") -> str:
        """The payload as text; raises UnicodeDecodeError if it is not."""
        return self.payload.decode(encoding)


def parse_fields(
    entry_id: bytes, partition: int, fields: list[Any], deliveries: int = 1
) -> Message:
    """A `Message` from an entry's flat field list."""
    payload = b""
    key: bytes | None = None
    timestamp_us = 0
    headers: dict[bytes, bytes] = {}
    for name, value in zip(fields[::2], fields[1::2], strict=True):
        if name == FIELD_PAYLOAD:
            payload = value
        elif name == FIELD_TS:
            timestamp_us = int(value)
        elif name == FIELD_KEY:
            key = value
        elif name.startswith(HEADER_PREFIX):
            headers[name[len(HEADER_PREFIX) :]] = value
    return Message(entry_id, partition, payload, key, headers, timestamp_us, deliveries)


def producer_layout(fields: list[list[Any]]) -> bool:
    """True when every field list of a batch starts `ts_us, <ts>, payload,
    <payload>`, as `Producer` writes them.

    Checked with a few C-level passes over the whole batch rather than a
    Python loop per entry; the batch helpers use it to pick their fast path.
    """
    try:
        names = list(map(_FIRST, fields))
        names_2 = list(map(_THIRD, fields))
    except (IndexError, TypeError):
        return False
    count = len(fields)
    return names.count(FIELD_TS) == count and names_2.count(FIELD_PAYLOAD) == count


def parse_entries(
    partition: int, entries: list[Any], deliveries: list[int] | None = None
) -> list[Message]:
    """`Message`s from a batch of `[id, fields]` entries of one partition,
    with their delivery counts (None: all first deliveries).

    The same as `parse_fields` per entry; a batch of plain `Producer`
    entries (no key, no headers) is built without a Python loop per entry.
    """
    fields = list(map(_FIELDS, entries))
    counts: Iterable[int] = repeat(1)
    if deliveries is not None:
        if len(deliveries) != len(entries):
            raise ValueError(
                f"{len(deliveries)} delivery counts, {len(entries)} entries"
            )
        counts = deliveries
    if producer_layout(fields) and list(map(len, fields)).count(4) == len(fields):
        return list(
            map(
                Message,
                map(_ID, entries),
                repeat(partition),
                map(_FOURTH, fields),
                repeat(None),
                iter(dict, None),  # a new, empty headers dict each
                map(int, map(_SECOND, fields)),
                counts,
            )
        )
    return [
        parse_fields(entry[0], partition, entry[1], count)
        for entry, count in zip(entries, counts, strict=False)
    ]
