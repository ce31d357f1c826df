"""Messages as they sit in a stream entry, and as consumers see them.

An entry written by `Producer` has the fields `ts_us` (producer wall clock,
microseconds), `payload`, then optionally `key` and one `h:<name>` field per
header. Field names and values are bytes end to end; nothing is decoded
unless a caller asks for text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FIELD_KEY",
    "FIELD_PAYLOAD",
    "FIELD_TS",
    "HEADER_PREFIX",
    "Message",
    "encode_fields",
    "parse_fields",
]

FIELD_TS = b"ts_us"
FIELD_PAYLOAD = b"payload"
FIELD_KEY = b"key"
HEADER_PREFIX = b"h:"


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def encode_fields(
    headers: Mapping[str | bytes, str | bytes] | None,
) -> list[bytes]:
    """Header fields as a flat `[name, value, ...]` list for XADD."""
    if not headers:
        return []
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
