"""A worker in its own process, driven through a pipe.

The child runs a `LocalWorker` on its own event loop (uvloop when
installed). Each call the coordinator makes is sent as `(seq, method, args)`
and answered with `(seq, "ok", value)` or `(seq, "error", exception)`. The
sequence number lets a call that was cancelled while waiting (a rate
controller stopped mid-adjustment, say) leave its late reply behind: the next
call recognises it and drops it instead of taking it for its own. If the
coordinator goes away the pipe closes and the child stops its load and exits,
so no worker outlives a run.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import pickle
import signal
import threading
from collections.abc import Sequence
from typing import Any

from aioredismq.errors import AioRedisMQError, WorkerError
from runner.protocol import (
    CountersStats,
    CumulativeLatencies,
    DriverSpec,
    PeriodStats,
    ProducerWorkAssignment,
    TopicSubscription,
    Worker,
)

__all__ = ["ProcessWorker"]

logger = logging.getLogger(__name__)

CALL_TIMEOUT_S = 600.0
EXIT_TIMEOUT_S = 10.0


def _child_main(
    conn: multiprocessing.connection.Connection, worker_id: str, log_level: int
) -> None:
    # Ctrl-C goes to the whole process group; the coordinator decides how the
    # run ends and tells the workers through the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=log_level, format=f"%(asctime)s {worker_id} %(levelname)s %(message)s"
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        asyncio.run(_serve(conn, worker_id))
    else:
        uvloop.run(_serve(conn, worker_id))


async def _serve(conn: multiprocessing.connection.Connection, worker_id: str) -> None:
    from runner.local_worker import LocalWorker

    worker = LocalWorker(worker_id)
    loop = asyncio.get_running_loop()
    requests: asyncio.Queue[tuple[int, str, tuple[Any, ...]] | None] = asyncio.Queue()

    def read_requests() -> None:
        # A thread with plain blocking reads: the event loop would make the
        # pipe non-blocking, and a request larger than the pipe's buffer (a
        # pool of random payloads is megabytes) would then fail mid-read.
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                request = None
            loop.call_soon_threadsafe(requests.put_nowait, request)
            if request is None or request[1] == "close":
                return

    reader = threading.Thread(target=read_requests, name="requests", daemon=True)
    reader.start()
    try:
        while (request := await requests.get()) is not None:
            seq, method, args = request
            try:
                value = await getattr(worker, method)(*args)
            except Exception as err:
                reply: tuple[int, str, Any] = (seq, "error", _portable(err))
            else:
                reply = (seq, "ok", value)
            try:
                _send_reply(conn, method, reply)
            except (BrokenPipeError, OSError):
                break
            if method == "close":
                break
    finally:
        await worker.stop_all()


def _send_reply(
    conn: multiprocessing.connection.Connection,
    method: str,
    reply: tuple[int, str, Any],
) -> None:
    try:
        data = pickle.dumps(reply)
    except Exception as err:  # noqa: BLE001 - any pickling failure is a bug here
        failure = WorkerError(f"{method} returned something that cannot be sent: {err}")
        data = pickle.dumps((reply[0], "error", failure))
    conn.send_bytes(data)


def _portable(err: Exception) -> Exception:
    """The error itself when it pickles, else a WorkerError with its text."""
    if isinstance(err, AioRedisMQError):
        return err
    return WorkerError(f"{type(err).__name__}: {err}")


class ProcessWorker(Worker):
    """Proxy for a `LocalWorker` running in a child process."""

    def __init__(self, worker_id: str, log_level: int = logging.INFO) -> None:
        self._id = worker_id
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_child_main,
            args=(child_conn, worker_id, log_level),
            name=f"bench-{worker_id}",
            daemon=True,
        )
        # Ctrl-C reaches the whole process group, and a child that has not yet
        # set its own handler would die in the middle of its imports with a
        # traceback. A child started with SIGINT ignored keeps it ignored:
        # Python installs its KeyboardInterrupt handler only over the default.
        if threading.current_thread() is not threading.main_thread():
            self._process.start()  # only the main thread may set handlers
        else:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                self._process.start()
            finally:
                signal.signal(signal.SIGINT, previous)
        child_conn.close()
        self._lock = asyncio.Lock()
        self._last_seq = 0

    @property
    def id(self) -> str:
        return self._id

    async def _call(self, method: str, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        async with self._lock:
            self._last_seq += 1
            seq = self._last_seq
            deadline_s = loop.time() + CALL_TIMEOUT_S
            try:
                self._conn.send((seq, method, args))
                while True:
                    wait_s = max(0.0, deadline_s - loop.time())
                    ready = await loop.run_in_executor(None, self._conn.poll, wait_s)
                    if not ready:
                        raise WorkerError(f"worker {self._id} did not answer {method}")
                    reply_seq, status, value = self._conn.recv()
                    if reply_seq == seq:
                        break
                    # The reply to an earlier call that was cancelled.
                    logger.debug("%s: dropped a late reply (%d)", self._id, reply_seq)
            except (EOFError, OSError, BrokenPipeError) as err:
                code = self._process.exitcode
                raise WorkerError(
                    f"worker {self._id} went away during {method} "
                    f"(exit code {code}; {type(err).__name__}: {err})"
                ) from err
        if status == "error":
            raise value
        return value

    async def initialize_driver(self, spec: DriverSpec) -> None:
        await self._call("initialize_driver", spec)

    async def create_topics(self, topics: int, partitions_per_topic: int) -> list[str]:
        names: list[str] = await self._call(
            "create_topics", topics, partitions_per_topic
        )
        return names

    async def create_producers(self, topics: Sequence[str]) -> None:
        await self._call("create_producers", list(topics))

    async def create_consumers(self, assignment: Sequence[TopicSubscription]) -> None:
        await self._call("create_consumers", list(assignment))

    async def probe_producers(self) -> None:
        await self._call("probe_producers")

    async def start_load(self, assignment: ProducerWorkAssignment) -> None:
        await self._call("start_load", assignment)

    async def adjust_publish_rate(self, publish_rate_per_s: float) -> None:
        await self._call("adjust_publish_rate", publish_rate_per_s)

    async def pause_consumers(self) -> None:
        await self._call("pause_consumers")

    async def resume_consumers(self) -> None:
        await self._call("resume_consumers")

    async def get_counters_stats(self) -> CountersStats:
        stats: CountersStats = await self._call("get_counters_stats")
        return stats

    async def get_period_stats(self) -> PeriodStats:
        stats: PeriodStats = await self._call("get_period_stats")
        return stats

    async def get_cumulative_latencies(self) -> CumulativeLatencies:
        stats: CumulativeLatencies = await self._call("get_cumulative_latencies")
        return stats

    async def reset_stats(self) -> None:
        await self._call("reset_stats")

    async def stop_producers(self) -> None:
        await self._call("stop_producers")

    async def stop_load(self) -> None:
        await self._call("stop_load")

    async def stop_all(self) -> None:
        await self._call("stop_all")

    async def delete_topics(self, topics: Sequence[str]) -> None:
        await self._call("delete_topics", list(topics))

    async def describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = await self._call("describe")
        return facts

    async def close(self) -> None:
        """Stop the child's load and wait for it to exit (kill if it hangs)."""
        if self._process.is_alive():
            try:
                await asyncio.wait_for(self._call("close"), EXIT_TIMEOUT_S)
            except (WorkerError, TimeoutError):
                pass
        self._conn.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._process.join, EXIT_TIMEOUT_S)
        if self._process.is_alive():
            logger.warning("worker %s did not exit; killing it", self._id)
            self._process.kill()
            await loop.run_in_executor(None, self._process.join)
