"""Small helpers for the background tasks every part here runs."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has finished unwinding.

    Waiting matters: a task cancelled and left behind is what produces
    "Task was destroyed but it is pending" when the loop closes. If the task
    had already failed, its exception is raised here rather than lost.
    """
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
