"""What every example needs before its own code: a server and a clean topic.

`run(main, __doc__)` parses `--redis-url`. With it, the example talks to that
server; without it, a private `valkey-server` is started on a free port for
the length of the run and stopped afterwards, so nothing needs installing or
cleaning up.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aioredismq.client import Client
from aioredismq.errors import ConfigError, ServerUnavailableError
from aioredismq.topic import Topic
from runner.server import EmbeddedServer

__all__ = ["fresh_topic", "run"]


def run(
    main: Callable[[str], Coroutine[Any, Any, None]], description: str | None
) -> None:
    """Run `main(url)` against `--redis-url` or a server started for it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--redis-url",
        help="use this server (default: start a private valkey-server)",
    )
    args = parser.parse_args()
    # The library reports retries and dead letters as log warnings; show them
    # on stderr, marked, so they read as part of the story.
    logging.basicConfig(level=logging.WARNING, format="  [log] %(message)s")
    if args.redis_url:
        try:
            asyncio.run(main(args.redis_url))
        except (ConfigError, ServerUnavailableError) as err:
            # A wrong address is a usage problem, not a bug: one line, no
            # traceback.
            sys.exit(f"error: {err}")
        return
    with EmbeddedServer() as server:
        print(f"started {server.describe()}")
        asyncio.run(main(server.url))
    print("server stopped")


async def fresh_topic(client: Client, name: str, partitions: int) -> Topic:
    """Create `name`, first deleting whatever an earlier run left behind.

    Leftovers matter: messages from a run that was interrupted would be
    counted again, and `create_topic` refuses a different partition count.
    """
    if name in await client.list_topics():
        await client.delete_topic(await client.topic(name))
    return await client.create_topic(name, partitions)
