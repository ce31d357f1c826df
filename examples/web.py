"""Publishing from an async web handler.

A minimal HTTP/1.1 endpoint, `POST /publish`, publishes the request body and
answers with the new entry's id; the same script then posts three requests
to it and exits. The HTTP code is the least that works with the standard
library, only to have a handler to call from: in an application the web
framework does that part. What carries over is the queue side: one producer
made at startup and shared by every request, and `await producer.send(...)`
in the handler, which returns once the message is stored.

Run: python examples/web.py [--redis-url redis://host:port]
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from _server import fresh_topic, run

from aioredismq.client import Client
from aioredismq.errors import RedisError
from aioredismq.producer import Producer

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BODIES = [b'{"order": 1}', b'{"order": 2}', b'{"order": 3}']


# --- the HTTP part: an illustration, not a web server ----------------------


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    """Method, path and body of one request (no chunked bodies, no TLS)."""
    method, path, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return method, path, await reader.readexactly(length)


def response(status: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def post(port: int, body: bytes) -> tuple[str, bytes]:
    """POST `body` to /publish; the status line and the response body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /publish HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    raw = await reader.read()  # the server closes after one response
    writer.close()
    await writer.wait_closed()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), payload


# --- the queue part ----------------------------------------------------------


def publish_endpoint(producer: Producer) -> Handler:
    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            method, path, body = await read_request(reader)
            if (method, path) != ("POST", "/publish"):
                writer.write(response("404 Not Found", b"only POST /publish\n"))
            else:
                try:
                    # Concurrent requests share the producer: their sends
                    # made in the same loop tick go out as one write.
                    entry_id = await producer.send(body)
                except RedisError as err:
                    # Unreachable even after the producer's own retries, or
                    # the write was refused: tell the caller to try later.
                    unavailable = response("503 Service Unavailable", str(err).encode())
                    writer.write(unavailable)
                else:
                    writer.write(response("200 OK", entry_id))
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    return handle


async def main(url: str) -> None:
    async with await Client.connect(url) as client:
        # One partition keeps the returned ids unique (ids are per partition).
        topic = await fresh_topic(client, "examples.web", partitions=1)
        # Made once at startup, not per request: it uses the client's
        # connection, and sends from concurrent requests share round trips.
        producer = client.producer(topic)
        server = await asyncio.start_server(publish_endpoint(producer), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        print(f"listening on http://127.0.0.1:{port}/publish")

        replies = await asyncio.gather(*(post(port, body) for body in BODIES))
        for body, (status, entry_id) in zip(BODIES, replies, strict=True):
            print(f"POST {body.decode()} -> {status}, id {entry_id.decode()}")
        server.close()
        await server.wait_closed()

        # Check from the queue's side: the three bodies, under those ids.
        reader = client.subscriber(topic, start="0")
        stored = await reader.read()
        await reader.stop()
        for message in stored:
            print(f"stored {message.id.decode()}: {message.text()}")
        print(f"messages in the topic: {len(stored)}")
        assert {m.id for m in stored} == {entry_id for _, entry_id in replies}
        await client.delete_topic(topic)


if __name__ == "__main__":
    run(main, __doc__)
