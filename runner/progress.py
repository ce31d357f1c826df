"""The live progress display of `bench run` on a terminal.

The model is a `ProgressBoard` holding one `RunProgress` per workload and
driver. The run tells it which phase begins and the figures of each stats
period; it works out elapsed and remaining times from the planned phase
durations with a clock it is given, so it is tested without a terminal or
real waiting.

`LiveDisplay` draws the board below the log with rich's `Live`, redrawn a few
times a second. While it is shown, the standard error descriptor is a pipe:
this process's log records, the worker processes' own log lines and anything
else writing to the descriptor it inherited arrive there, and one reader
thread prints each whole line above the display. So no line is cut into by
a redraw, and the workers log exactly as they do without the display.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from types import TracebackType
from typing import IO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from runner.benchmark import PeriodSummary

__all__ = [
    "DONE",
    "FAILED",
    "WAITING",
    "LiveDisplay",
    "ProgressBoard",
    "RunProgress",
    "clock_text",
    "render_board",
]

# States of a run besides the phase names the run reports.
WAITING = "waiting"
DONE = "done"
FAILED = "failed"

STDERR_FD = 2
REFRESH_PER_S = 4.0
# How long the end of the display waits for the last lines still in the pipe.
# Only a process that outlives its run holds the pipe open that long; its
# later lines go to the terminal without the display.
READER_JOIN_S = 2.0
BAR_WIDTH = 24
# The board keeps its height bounded, so a long list of runs cannot push the
# running one off the screen: only the most recent finished runs and the
# next waiting ones get a line each.
SHOWN_FINISHED = 3
SHOWN_WAITING = 3


def clock_text(seconds: float, *, round_up: bool = False) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on; whole seconds, rounded down
    (elapsed time) or up (remaining time, so 0:00 means over)."""
    whole = math.ceil(seconds) if round_up else math.floor(seconds)
    hours, rest = divmod(max(0, whole), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


@dataclass(slots=True)
class RunProgress:
    """Where one run (a workload on a driver) stands.

    `planned_s` maps each timed phase, in the order they come, to its
    planned length in seconds, or None where the end is not known in
    advance. Other phases last as long as their work does and count as 0
    in the remaining time, which is therefore a lower bound.

    The display thread reads a run while the run updates it: each update
    replaces values, never changes one in place, so a frame sees each field
    either before or after an update.
    """

    label: str
    planned_s: Mapping[str, float | None]
    clock: Callable[[], float] = time.monotonic
    phase: str = WAITING
    started_s: float | None = None
    phase_started_s: float | None = None
    finished_s: float | None = None
    latest: PeriodSummary | None = None
    #: Timed phases begun or passed so far (the current one included).
    begun: frozenset[str] = frozenset()

    @property
    def running(self) -> bool:
        return self.started_s is not None and self.finished_s is None

    @property
    def finished(self) -> bool:
        return self.finished_s is not None

    def enter(self, phase: str) -> None:
        """A phase begins (any name; those in `planned_s` are timed)."""
        now = self.clock()
        if self.started_s is None:
            self.started_s = now
        self.phase_started_s = now
        self.phase = phase
        if phase in self.planned_s:
            # Timed phases come in order: those before this one are over,
            # even one the run left out.
            order = list(self.planned_s)
            self.begun = self.begun | set(order[: order.index(phase) + 1])

    def record(self, summary: PeriodSummary) -> None:
        self.latest = summary

    def finish(self, status: str = DONE) -> None:
        now = self.clock()
        if self.started_s is None:
            self.started_s = now
        self.finished_s = now
        self.phase = status

    def elapsed_s(self) -> float:
        if self.started_s is None:
            return 0.0
        end = self.finished_s if self.finished_s is not None else self.clock()
        return end - self.started_s

    def phase_elapsed_s(self) -> float:
        if self.phase_started_s is None or not self.running:
            return 0.0
        return self.clock() - self.phase_started_s

    def phase_planned_s(self) -> float | None:
        """The current phase's planned length; None if untimed or unknown."""
        if not self.running:
            return None
        return self.planned_s.get(self.phase)

    def phase_remaining_s(self) -> float | None:
        planned = self.phase_planned_s()
        if planned is None:
            return None
        return max(0.0, planned - self.phase_elapsed_s())

    def remaining_s(self) -> float | None:
        """What is left of the timed phases: the rest of the current one and
        all of those not begun. None if one of them has no known end."""
        if self.finished:
            return 0.0
        total = 0.0
        if self.running and self.phase in self.planned_s:
            current = self.phase_remaining_s()
            if current is None:
                return None
            total += current
        for phase, planned in self.planned_s.items():
            if phase in self.begun:
                continue
            if planned is None:
                return None
            total += planned
        return total


@dataclass(slots=True)
class ProgressBoard:
    """Every run of one `bench run`, in the order they run."""

    clock: Callable[[], float] = time.monotonic
    runs: list[RunProgress] = field(default_factory=list)
    started_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.started_s = self.clock()

    def add(self, label: str, planned_s: Mapping[str, float | None]) -> RunProgress:
        run = RunProgress(label, dict(planned_s), self.clock)
        # A new list rather than an append: the display thread may be
        # iterating over the old one.
        self.runs = [*self.runs, run]
        return run

    def elapsed_s(self) -> float:
        return self.clock() - self.started_s

    def remaining_s(self) -> float | None:
        """The timed phases left over all runs; None if one has no known end."""
        total = 0.0
        for run in self.runs:
            remaining = run.remaining_s()
            if remaining is None:
                return None
            total += remaining
        return total


def render_board(board: ProgressBoard) -> RenderableType:
    """One frame of the display: a header line, then the runs."""
    runs = board.runs
    finished = [run for run in runs if run.finished]
    running = [run for run in runs if run.running]
    waiting = [run for run in runs if run.started_s is None]

    header = (
        f"bench run: {len(finished)} of {len(runs)} "
        f"run{'s' if len(runs) != 1 else ''} done, "
        f"{clock_text(board.elapsed_s())} elapsed"
    )
    header += _left_text(board.remaining_s())
    lines: list[RenderableType] = [_line(header, "bold")]

    width = max((len(run.label) for run in runs), default=0)
    if len(finished) > SHOWN_FINISHED:
        lines.append(_line(f"  ... {len(finished) - SHOWN_FINISHED} more done"))
    lines += [_finished_line(run, width) for run in finished[-SHOWN_FINISHED:]]
    for run in running:
        lines += list(_running_lines(run))
    for run in waiting[:SHOWN_WAITING]:
        line = f"  {WAITING:<7} {run.label:<{width}}"
        planned = run.remaining_s()
        if planned is not None:
            line += f"  planned {clock_text(planned, round_up=True)}"
        lines.append(_line(line, "dim"))
    if len(waiting) > SHOWN_WAITING:
        lines.append(_line(f"  ... {len(waiting) - SHOWN_WAITING} more waiting"))
    return Group(*lines)


def _left_text(remaining_s: float | None) -> str:
    """The ", at least m:ss left" of a line; nothing when unknown or when
    only untimed phases are left (set-up and drain phases are not counted,
    hence "at least")."""
    if remaining_s is None or remaining_s <= 0:
        return ""
    return f", at least {clock_text(remaining_s, round_up=True)} left"


def _line(text: str, style: str = "") -> Text:
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _finished_line(run: RunProgress, width: int) -> Text:
    style = "red" if run.phase == FAILED else "green"
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"  {run.phase:<7} ", style=style)
    line.append(f"{run.label:<{width}}  in {clock_text(run.elapsed_s())}")
    if run.latest is not None:
        line.append(f"  last: {_figures_text(run.latest)}", style="dim")
    return line


def _running_lines(run: RunProgress) -> Iterator[RenderableType]:
    """The label; the phase with its bar and times; the run's times; the
    latest figures. Each on its own line, so that 80 columns hold them."""
    yield _line(f"> {run.label}", "bold")
    indent = " " * 4
    planned = run.phase_planned_s()
    phase_elapsed = run.phase_elapsed_s()
    if planned is not None:
        bar: RenderableType | None = ProgressBar(
            total=planned, completed=min(phase_elapsed, planned), width=BAR_WIDTH
        )
        times = (
            f"{clock_text(phase_elapsed)} of {clock_text(planned)}, "
            f"{clock_text(max(0.0, planned - phase_elapsed), round_up=True)} left"
        )
    elif run.phase in run.planned_s:
        # A timed phase without a known end (a backlog to drain first, or
        # no test duration): a moving bar and the time so far.
        bar = ProgressBar(total=None, width=BAR_WIDTH)
        times = clock_text(phase_elapsed)
    else:
        bar = None
        times = clock_text(phase_elapsed)
    grid = Table.grid(padding=(0, 1))
    cells: list[RenderableType] = [indent[:-1], Text(run.phase, style="bold cyan")]
    cells += [bar] if bar is not None else []
    cells.append(times)
    for _ in cells:
        grid.add_column(no_wrap=True)
    grid.add_row(*cells)
    yield grid

    summary = f"{indent}run {clock_text(run.elapsed_s())} elapsed"
    yield _line(summary + _left_text(run.remaining_s()))
    if run.latest is not None:
        yield _line(indent + _figures_text(run.latest))


def _figures_text(summary: PeriodSummary) -> str:
    text = (
        f"pub {summary.publish_rate_per_s:,.0f} msg/s, "
        f"cons {summary.consume_rate_per_s:,.0f} msg/s, "
        f"backlog {summary.backlog_messages:,}, "
        f"pub p99 {summary.publish_latency_p99_us / 1000:,.1f} ms"
    )
    if summary.publish_error_rate_per_s > 0:
        text += f", errors {summary.publish_error_rate_per_s:,.1f}/s"
    return text


class LiveDisplay:
    """Shows a board on the terminal behind the standard error while in use.

    Leaving it normally keeps the last frame (each run's final state); an
    exception (a user error, Ctrl-C, a bug) removes it, so only the log and
    the error line stay.
    """

    def __init__(
        self, board: ProgressBoard, refresh_per_s: float = REFRESH_PER_S
    ) -> None:
        self._board = board
        self._refresh_per_s = refresh_per_s
        self._terminal: IO[str] | None = None
        self._reader: threading.Thread | None = None
        self._live: Live | None = None

    def __enter__(self) -> LiveDisplay:
        # multiprocessing's resource tracker, started with the first worker,
        # lives as long as this process: started now it keeps the terminal as
        # its standard error, rather than holding the pipe open past the end.
        resource_tracker.ensure_running()
        sys.stderr.flush()
        self._terminal = os.fdopen(
            os.dup(STDERR_FD),
            "w",
            encoding=sys.stderr.encoding,
            errors="backslashreplace",
        )
        console = Console(file=self._terminal)
        self._live = Live(
            console=console,
            get_renderable=lambda: render_board(self._board),
            refresh_per_second=self._refresh_per_s,
            # Standard error is caught at the descriptor; standard output
            # only when it shares the terminal (not when redirected).
            redirect_stdout=sys.stdout.isatty(),
            redirect_stderr=False,
        )
        read_fd, write_fd = os.pipe()
        self._reader = threading.Thread(
            target=self._print_lines,
            args=(read_fd, console),
            name="progress log lines",
            daemon=True,
        )
        try:
            try:
                os.dup2(write_fd, STDERR_FD)
            finally:
                os.close(write_fd)
            self._reader.start()
            self._live.start(refresh=True)
        except BaseException:
            # Even a Ctrl-C this early gives the terminal back.
            if self._reader.ident is None:
                os.close(read_fd)
            self._close(failed=True)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(failed=exc_type is not None)

    def _close(self, *, failed: bool) -> None:
        assert self._terminal is not None and self._reader is not None
        assert self._live is not None
        sys.stderr.flush()
        # Back to the terminal: the pipe ends once every process that
        # inherited it (workers, the embedded server) has exited.
        os.dup2(self._terminal.fileno(), STDERR_FD)
        if self._reader.ident is not None:
            self._reader.join(READER_JOIN_S)
        if failed:
            self._live.transient = True
        self._live.stop()
        if not self._reader.is_alive():
            self._terminal.close()

    @staticmethod
    def _print_lines(read_fd: int, console: Console) -> None:
        encoding = sys.stderr.encoding
        with os.fdopen(read_fd, "rb") as pipe:
            for raw in pipe:
                line = raw.decode(encoding, errors="replace").rstrip("\r\n")
                # soft_wrap: the line as written, wrapped by the terminal
                # alone, so a copied log line is still one line.
                console.print(
                    line, markup=False, highlight=False, emoji=False, soft_wrap=True
                )
