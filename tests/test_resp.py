"""The pure-Python RESP2 reader, held against hiredis's on the same bytes."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import hiredis
import pytest

from aioredismq.resp import Reader

ROOT = Path(__file__).resolve().parent.parent


class Broken(Exception):
    """Protocol error class handed to both readers."""


class Failed(Exception):
    """Error-reply class handed to both readers."""


def encode(value: Any) -> bytes:
    """RESP2 bytes of a reply (a Failed instance is an error reply)."""
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, Failed):
        return b"-%b\r\n" % str(value).encode()
    if isinstance(value, bytes):
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    return b"*%d\r\n%b" % (len(value), b"".join(map(encode, value)))


def random_reply(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice("bbbiinea" if depth < 4 else "bbiine")
    if kind == "b":
        return rng.randbytes(rng.choice([0, 1, 2, 7, 100, 5000]))
    if kind == "i":
        return rng.randint(-(2**63), 2**63 - 1)
    if kind == "n":
        return None
    if kind == "e":
        return Failed(f"ERR number {rng.randint(0, 99)}")
    return [random_reply(rng, depth + 1) for _ in range(rng.randint(0, 6))]


def read_all(reader: Any, data: bytes, cuts: list[int]) -> list[Any]:
    """Feed `data` in pieces cut at `cuts`, collecting every whole reply."""
    replies = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        reader.feed(data[start:end])
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    return replies


def comparable(value: Any) -> Any:
    if isinstance(value, Exception):
        return (type(value).__name__, str(value))
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


@pytest.mark.parametrize("seed", range(20))
def test_same_replies_as_hiredis_whatever_the_cuts(seed: int) -> None:
    rng = random.Random(seed)
    replies = [random_reply(rng) for _ in range(30)]
    data = b"".join(map(encode, replies))
    cuts = sorted(rng.sample(range(1, len(data)), min(40, len(data) - 1)))
    ours = read_all(Reader(protocolError=Broken, replyError=Failed), data, cuts)
    theirs = read_all(
        hiredis.Reader(protocolError=Broken, replyError=Failed), data, cuts
    )
    assert comparable(ours) == comparable(theirs) == comparable(replies)


def test_simple_strings_nil_array_and_empty_array() -> None:
    reader = Reader(protocolError=Broken, replyError=Failed)
    reader.feed(b"+OK\r\n*-1\r\n*0\r\n:-12\r\n")
    assert [reader.gets() for _ in range(4)] == [b"OK", None, [], -12]
    assert reader.gets() is False
    assert not reader.has_data()


def test_one_byte_at_a_time_and_a_megabyte_bulk() -> None:
    payload = os.urandom(1 << 20)
    data = encode([b"id", [b"payload", payload, b"crlf", b"\r\n"]])
    reader = Reader(protocolError=Broken, replyError=Failed)
    assert read_all(reader, data[:200], list(range(1, 200))) == []
    assert reader.has_data()
    assert read_all(reader, data[200:], [65536 * i for i in range(1, 16)]) == [
        [b"id", [b"payload", payload, b"crlf", b"\r\n"]]
    ]


def test_feed_takes_an_offset_and_length_like_hiredis() -> None:
    reader = Reader(protocolError=Broken, replyError=Failed)
    reader.feed(b"xx:5\r\nyy", 2, 4)
    assert reader.gets() == 5


@pytest.mark.parametrize(
    "data",
    [
        b"?3\r\n",  # unknown type byte
        b":12a\r\n",  # not an integer
        b"$ 3\r\nabc\r\n",  # int() would take the space; RESP does not
        b"$3\r\nabcd\r\n",  # bulk string longer than announced
        b"*1_0\r\n",
    ],
)
def test_bytes_that_are_not_resp2_raise_the_protocol_error(data: bytes) -> None:
    reader = Reader(protocolError=Broken, replyError=Failed)
    reader.feed(data)
    with pytest.raises(Broken):
        reader.gets()
    with pytest.raises(Broken):  # and it stays broken
        reader.gets()


def test_a_header_line_without_end_is_refused() -> None:
    reader = Reader(protocolError=Broken, replyError=Failed)
    reader.feed(b"+" + b"x" * 70_000)
    with pytest.raises(Broken, match="too long"):
        reader.gets()


def test_connection_uses_the_python_reader_when_hiredis_is_missing(
    redis_url: str,
) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["hiredis"] = None  # makes `import hiredis` fail
        from aioredismq.connection import Connection, ConnectionSettings

        async def main(url):
            conn = await Connection.open(ConnectionSettings.from_url(url))
            print(type(conn._reader).__module__)
            print(await conn.execute("ECHO", b"\\xc3\\x28"))
            await conn.close()

        asyncio.run(main(sys.argv[1]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, redis_url],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["aioredismq.resp", "b'\\xc3('"]
