"""A RESP2 reply reader in pure Python, interchangeable with hiredis's.

`Connection` parses replies with hiredis's C reader when it is installed;
this one takes its place when hiredis is missing, or when a connection is
opened with `ConnectionSettings(parser="python")`. Both are fed the bytes as
they arrive and hand back whole replies:

    reader = Reader(protocolError=ProtocolError, replyError=ErrorReply)
    reader.feed(b"*2\\r\\n$1\\r\\na\\r\\n")
    reader.gets()   # False: the reply is not complete yet
    reader.feed(b":7\\r\\n")
    reader.gets()   # [b"a", 7]

Bulk and simple strings come back as `bytes` (nothing is decoded), integers
as `int`, a nil bulk string or nil array as None. An error reply is returned
as a value, `replyError(text)`, so one failed command of a pipeline does not
hide the others; bytes that are not RESP2 raise `protocolError`.

Parsing resumes where it stopped: a reply that arrives in many pieces (a
megabyte payload, a read of thousands of entries) is walked once, not again
from its start on every piece.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Reader"]

_CRLF = b"\r\n"
_BULK = ord("$")
_ARRAY = ord("*")
_SIMPLE = ord("+")
_INTEGER = ord(":")
_ERROR = ord("-")
#: Longer than any header line (type byte, length, CR LF) a server sends.
MAX_HEADER_BYTES = 65536


class Reader:
    """Turns a byte stream of RESP2 replies into Python values.

    The keyword names are hiredis's, so either class can be built the same
    way.
    """

    def __init__(
        self,
        protocolError: type[Exception] = ValueError,  # noqa: N803
        replyError: type[Exception] = Exception,  # noqa: N803
    ) -> None:
        self._protocol_error = protocolError
        self._reply_error = replyError
        # Unparsed input from `_pos` on. It stays the `bytes` object fed when
        # a reply arrives whole (slicing it is then a single copy) and becomes
        # a bytearray only while a reply is split over several pieces.
        self._buf: bytes | bytearray = b""
        self._pos = 0
        # Arrays being filled, innermost last: (items so far, items expected).
        self._stack: list[tuple[list[Any], int]] = []
        self._broken: Exception | None = None

    def feed(self, data: bytes, offset: int = 0, length: int = -1) -> None:
        """Add received bytes (`data[offset:offset + length]`, all by default)."""
        if offset or length != -1:
            end = len(data) if length == -1 else offset + length
            data = bytes(data[offset:end])
        if not data:
            return
        buf = self._buf
        if self._pos >= len(buf):
            self._buf = data
            self._pos = 0
        elif isinstance(buf, bytearray):
            if self._pos:
                del buf[: self._pos]  # cheap: CPython moves the start, not the data
                self._pos = 0
            buf += data
        else:
            self._buf = bytearray(buf[self._pos :]) + data
            self._pos = 0

    def has_data(self) -> bool:
        """True while fed bytes remain that `gets` has not consumed."""
        return self._pos < len(self._buf)

    def gets(self) -> Any:
        """The next complete reply, or False when more bytes are needed."""
        if self._broken is not None:
            raise self._broken
        try:
            return self._next_reply()
        except self._protocol_error as err:
            self._broken = err
            raise

    def _next_reply(self) -> Any:
        try:
            return self._parse()
        except ValueError as err:  # int() of a length or integer that is not one
            raise self._protocol_error(f"bad integer in reply: {err}") from None

    def _parse(self) -> Any:
        buf = self._buf
        whole = type(buf) is bytes  # slices of bytes need no second copy
        size = len(buf)
        pos = self._pos
        stack = self._stack
        # The innermost array being filled lives in locals; outer ones wait
        # on the stack.
        items, expected = stack.pop() if stack else (None, 0)
        while True:
            end = buf.find(_CRLF, pos)
            if end == -1:
                if size - pos > MAX_HEADER_BYTES:
                    raise self._protocol_error("reply header line too long")
                break
            kind = buf[pos]
            if kind == _BULK:
                length = _integer(buf[pos + 1 : end])
                if length < 0:
                    value: Any = None
                    pos = end + 2
                else:
                    stop = end + 2 + length
                    if stop + 2 > size:
                        break
                    if buf[stop] != 13 or buf[stop + 1] != 10:
                        raise self._protocol_error("bulk string not followed by CR LF")
                    value = buf[end + 2 : stop]
                    if not whole:
                        value = bytes(value)
                    pos = stop + 2
            elif kind == _ARRAY:
                length = _integer(buf[pos + 1 : end])
                pos = end + 2
                if length > 0:
                    if items is not None:
                        stack.append((items, expected))
                    items, expected = [], length
                    continue
                value = None if length < 0 else []
            elif kind == _SIMPLE:
                value = bytes(buf[pos + 1 : end])
                pos = end + 2
            elif kind == _INTEGER:
                value = _integer(buf[pos + 1 : end])
                pos = end + 2
            elif kind == _ERROR:
                text = bytes(buf[pos + 1 : end]).decode(errors="replace")
                value = self._reply_error(text)
                pos = end + 2
            else:
                raise self._protocol_error(
                    f"Protocol error, got {chr(kind)!r} as reply type byte"
                )
            # Place the value in its array; a filled array is in turn a value
            # for the one around it, and the outermost one is the reply.
            while items is not None:
                items.append(value)
                if len(items) < expected:
                    break
                value = items
                items, expected = stack.pop() if stack else (None, 0)
            else:
                if pos >= size:
                    self._buf = b""
                    pos = 0
                self._pos = pos
                return value
        # Incomplete: keep what was parsed, resume from `pos` on the next call.
        if items is not None:
            stack.append((items, expected))
        self._pos = pos
        return False


def _integer(digits: bytes | bytearray) -> int:
    # int() would also take spaces, "+" and "_"; RESP has none of them.
    if not digits.isdigit() and not (digits[:1] == b"-" and digits[1:].isdigit()):
        raise ValueError(repr(bytes(digits)))
    return int(digits)
