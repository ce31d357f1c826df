"""The live progress display of `bench run`.

The model (phases, elapsed and remaining time, what a frame shows) is
tested with a hand-driven clock and no terminal. Real runs then go through
the command line: with standard error piped (no display), and on a
pseudo-terminal, where a small terminal model replays what was written to
find what the screen finally shows.
"""

from __future__ import annotations

import dataclasses
import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rich.console import Console
from terminal import restore_ctrl_c
from test_bad_input import MARKER_VARIABLE, wait_for_no_leftovers

from aioredismq.connection import ConnectionSettings
from runner.benchmark import MEASURING, WARMING_UP, PeriodSummary, planned_durations
from runner.control import BUILDING_BACKLOG, DRAINING_BACKLOG
from runner.progress import (
    FAILED,
    ProgressBoard,
    clock_text,
    render_board,
)
from runner.server import free_port
from runner.workload import load_workload

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "workloads" / "smoke.yaml"
SHORT_RUN = ["--test-duration", "3s", "--warmup-duration", "1s", "--period", "1s"]
# One warm-up period and three measured ones.
STATS_LINES = 4
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} ")
STATS_LINE = re.compile(
    TIMESTAMP.pattern + r"INFO runner\.benchmark: Pub rate +(\d+\.\d) msg/s .*"
    r"\| Pub Delay Latency \(us\) avg: .* - Max: +\d+\.\d$"
)
SGR = re.compile(r"\x1b\[[0-9;]*m")
DISPLAYED_FIGURES = re.compile(
    r"pub ([\d,]+) msg/s, cons [\d,]+ msg/s, backlog [\d,]+, pub p99 [\d.,]+ ms"
)
TERMINAL_ROWS, TERMINAL_COLUMNS = 40, 120
RUN_TIMEOUT_S = 60.0


@dataclasses.dataclass
class FakeClock:
    now_s: float = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def figures(publish_rate_per_s: float = 2000.0) -> PeriodSummary:
    return PeriodSummary(
        publish_rate_per_s=publish_rate_per_s,
        consume_rate_per_s=1999.4,
        publish_error_rate_per_s=0.0,
        backlog_messages=12,
        publish_latency_p99_us=1530.0,
    )


# The model


def test_planned_durations_follow_the_workload() -> None:
    smoke = load_workload(SMOKE)
    assert planned_durations(smoke) == {WARMING_UP: 2.0, MEASURING: 6.0}
    assert planned_durations(smoke.with_durations(warmup_s=0)) == {MEASURING: 6.0}
    assert planned_durations(smoke.with_durations(test_s=None)) == {
        WARMING_UP: 2.0,
        MEASURING: None,
    }
    backlog = dataclasses.replace(smoke, consumer_backlog_size_gb=1)
    assert planned_durations(backlog) == {
        WARMING_UP: 2.0,
        BUILDING_BACKLOG: None,
        DRAINING_BACKLOG: None,
        MEASURING: 6.0,  # after the drain
    }
    assert list(planned_durations(backlog)) == [
        WARMING_UP, BUILDING_BACKLOG, DRAINING_BACKLOG, MEASURING
    ]  # fmt: skip


def test_phases_and_remaining_time() -> None:
    clock = FakeClock()
    run = ProgressBoard(clock).add("smoke on Redis", {WARMING_UP: 2.0, MEASURING: 6.0})
    assert (run.phase, run.running, run.finished) == ("waiting", False, False)
    assert run.remaining_s() == 8.0
    assert run.elapsed_s() == 0.0

    run.enter("creating topics")
    clock.advance(1.5)
    # Set-up phases are untimed: nothing of the planned time is used up.
    assert run.phase_planned_s() is None
    assert run.phase_remaining_s() is None
    assert run.remaining_s() == 8.0
    assert run.elapsed_s() == 1.5

    run.enter(WARMING_UP)
    clock.advance(0.5)
    assert run.phase_elapsed_s() == 0.5
    assert run.phase_remaining_s() == 1.5
    assert run.remaining_s() == 7.5
    clock.advance(3.0)  # the last period's read may run past the plan
    assert run.phase_remaining_s() == 0.0
    assert run.remaining_s() == 6.0

    run.enter(MEASURING)
    clock.advance(2.25)
    assert run.begun == {WARMING_UP, MEASURING}
    assert run.phase_remaining_s() == 3.75
    assert run.remaining_s() == 3.75
    assert run.elapsed_s() == 7.25

    run.enter("draining")
    assert run.remaining_s() == 0.0
    clock.advance(0.75)
    run.finish()
    clock.advance(10.0)
    assert (run.phase, run.running, run.finished) == ("done", False, True)
    # Finished: times stand still.
    assert run.elapsed_s() == 8.0
    assert run.phase_elapsed_s() == 0.0
    assert run.remaining_s() == 0.0


def test_skipped_warm_up_leaves_only_the_measured_phase() -> None:
    clock = FakeClock()
    run = ProgressBoard(clock).add("smoke on Redis", {MEASURING: 3.0})
    run.enter("creating topics")
    assert run.remaining_s() == 3.0
    run.enter(MEASURING)
    clock.advance(1.0)
    assert run.remaining_s() == 2.0


def test_an_unknown_end_makes_the_remaining_time_unknown() -> None:
    clock = FakeClock()
    board = ProgressBoard(clock)
    run = board.add("backlog on Redis", {WARMING_UP: 2.0, MEASURING: None})
    run.enter(WARMING_UP)
    clock.advance(1.0)
    # The warm-up's own end is known; the run's is not.
    assert run.phase_remaining_s() == 1.0
    assert run.remaining_s() is None
    run.enter(MEASURING)
    clock.advance(100.0)
    assert run.phase_remaining_s() is None
    assert run.remaining_s() is None
    assert board.remaining_s() is None
    run.finish()
    assert run.remaining_s() == 0.0
    assert board.remaining_s() == 0.0


def test_board_adds_up_its_runs() -> None:
    clock = FakeClock()
    board = ProgressBoard(clock)
    first = board.add("a on Redis", {WARMING_UP: 1.0, MEASURING: 3.0})
    second = board.add("b on Redis", {MEASURING: 5.0})
    assert board.remaining_s() == 9.0
    # Measuring begins: a warm-up not entered is passed all the same.
    first.enter(MEASURING)
    clock.advance(2.0)
    assert board.remaining_s() == 1.0 + 5.0
    assert board.elapsed_s() == 2.0
    # A run that fails early has nothing left either.
    first.finish(FAILED)
    assert first.phase == FAILED
    assert board.remaining_s() == 5.0
    second.enter(MEASURING)
    second.finish()
    assert board.remaining_s() == 0.0


@pytest.mark.parametrize(
    ("seconds", "round_up", "text"),
    [
        (0.0, False, "0:00"),
        (59.9, False, "0:59"),
        (59.1, True, "1:00"),
        (60.0, True, "1:00"),
        (3599.0, False, "59:59"),
        (3725.5, False, "1:02:05"),
        (-0.4, True, "0:00"),
    ],
)
def test_clock_text(seconds: float, round_up: bool, text: str) -> None:
    assert clock_text(seconds, round_up=round_up) == text


def frame_text(board: ProgressBoard) -> list[str]:
    console = Console(file=io.StringIO(), width=TERMINAL_COLUMNS, color_system=None)
    console.print(render_board(board))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    return [line.rstrip() for line in output.splitlines()]


def test_frame_shows_phase_times_and_figures() -> None:
    clock = FakeClock()
    board = ProgressBoard(clock)
    plan = {WARMING_UP: 1.0, MEASURING: 3.0}
    done, running, waiting = (board.add(f"{name} on Redis", plan) for name in "abc")
    done.enter(WARMING_UP)
    done.record(figures(1987.6))
    clock.advance(5.0)
    done.finish()
    running.enter(WARMING_UP)
    clock.advance(1.0)
    running.enter(MEASURING)
    running.record(figures())
    clock.advance(1.0)

    lines = frame_text(board)
    assert lines[0] == "bench run: 1 of 3 runs done, 0:07 elapsed, at least 0:06 left"
    assert lines[1] == (
        "  done    a on Redis  in 0:05  last: pub 1,988 msg/s, cons 1,999 msg/s, "
        "backlog 12, pub p99 1.5 ms"
    )
    assert lines[2] == "> b on Redis"
    assert lines[3].startswith("    measuring ")
    assert lines[3].endswith(" 0:01 of 0:03, 0:02 left")
    assert lines[4] == "    run 0:02 elapsed, at least 0:02 left"
    assert lines[5] == (
        "    pub 2,000 msg/s, cons 1,999 msg/s, backlog 12, pub p99 1.5 ms"
    )
    assert lines[6] == "  waiting c on Redis  planned 0:04"
    assert len(lines) == 7
    assert waiting.started_s is None


def test_frame_height_stays_bounded() -> None:
    clock = FakeClock()
    board = ProgressBoard(clock)
    runs = [board.add(f"w{i} on Redis", {MEASURING: 1.0}) for i in range(12)]
    for run in runs[:6]:
        run.enter(MEASURING)
        run.finish()
    runs[6].enter("creating topics")
    lines = frame_text(board)
    assert lines[1] == "  ... 3 more done"
    assert [line.split()[1] for line in lines[2:5]] == ["w3", "w4", "w5"]
    assert lines[5:8] == [
        "> w6 on Redis",
        "    creating topics 0:00",
        "    run 0:00 elapsed, at least 0:01 left",
    ]
    assert [line.split()[1] for line in lines[8:11]] == ["w7", "w8", "w9"]
    assert lines[11] == "  ... 2 more waiting"
    assert len(lines) == 12


# Real runs


@dataclasses.dataclass(frozen=True)
class Finished:
    returncode: int
    output: str
    """Standard error (on a terminal: everything written to it)."""
    stdout: str = ""
    leftovers: tuple[str, ...] = ()
    result_written: bool = False


def marked_environment() -> tuple[dict[str, str], Path]:
    """An environment whose processes can be found afterwards (see
    test_bad_input), with a terminal type that allows cursor movement."""
    marker = Path(tempfile.mkdtemp(prefix="bench-progress-")).resolve()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(marker),
        MARKER_VARIABLE: str(marker),
        "TERM": "xterm-256color",
    }
    for name in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_INTERACTIVE"):
        env.pop(name, None)
    return env, marker


def bench_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner.cli", "run", *args]


def run_piped(*args: str) -> Finished:
    env, marker = marked_environment()
    done = subprocess.run(
        bench_command(*args),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    leftovers = tuple(wait_for_no_leftovers(marker))
    return Finished(done.returncode, done.stderr, done.stdout, leftovers)


def run_on_terminal(
    *args: str,
    interrupt_when: Callable[[str], bool] | None = None,
    cwd: Path = ROOT,
) -> Finished:
    """`bench run` with a pseudo-terminal as stdin, stdout and stderr.

    `interrupt_when` is asked about the output so far; once it says yes,
    the run's process group gets SIGINT, as from Ctrl-C at a terminal.
    """
    env, marker = marked_environment()
    master, slave = pty.openpty()
    size = struct.pack("HHHH", TERMINAL_ROWS, TERMINAL_COLUMNS, 0, 0)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
    process = subprocess.Popen(
        bench_command(*args),
        cwd=cwd,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=restore_ctrl_c,
    )
    os.close(slave)
    received = bytearray()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    interrupted = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: no process holds the terminal any more
                    data = b""
                if not data:
                    break
                received += data
            if interrupt_when is not None and not interrupted:
                if interrupt_when(received.decode(errors="replace")):
                    os.killpg(process.pid, signal.SIGINT)
                    interrupted = True
    finally:
        os.close(master)
        try:
            returncode = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            returncode = process.wait()
    leftovers = tuple(wait_for_no_leftovers(marker))
    return Finished(returncode, received.decode(), leftovers=leftovers)


TOKEN = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])|\r|\n|[^\x1b\r\n]+|\x1b")


def final_screen(output: str) -> list[str]:
    """The lines a terminal shows once `output` is written to it.

    Enough of a terminal for what the runs write: text, carriage return,
    line feed, cursor up, erase line, colours and cursor visibility. Lines
    are not wrapped; rich keeps its own lines within the width, and a log
    line wrapped by a real terminal is one line here.
    """
    lines = [""]
    row = col = 0
    for match in TOKEN.finditer(output):
        token = match.group()
        params, command = match.group(1) or "", match.group(2) or ""
        if token == "\r":
            col = 0
        elif token == "\n":
            row += 1
            if row == len(lines):
                lines.append("")
        elif not token.startswith("\x1b"):
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + len(token) :]
            col += len(token)
        elif command == "A":
            row = max(0, row - int(params or "1"))
        elif command == "K" and params == "2":
            lines[row] = ""
        elif command != "m" and not (command in ("h", "l") and params[:1] == "?"):
            # Anything but colours and cursor visibility is a surprise.
            raise AssertionError(f"control sequence not modelled: {token!r}")
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.rstrip() for line in lines]


def not_logged(lines: list[str]) -> list[str]:
    return [line for line in lines if line.strip() and not TIMESTAMP.match(line)]


def driver_file(path: Path, name: str, host: str, port: int) -> Path:
    path.write_text(
        f"name: {name}\n"
        "driverClass: driver.redis_streams.RedisStreamsDriver\n"
        f"redisHost: {host}\nredisPort: {port}\n"
    )
    return path


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> dict[str, Finished]:
    """Every real run, started together: most of each is waiting."""
    tmp = tmp_path_factory.mktemp("progress")
    nowhere = driver_file(tmp / "nowhere.yaml", "Nowhere", "127.0.0.1", free_port())
    server = ConnectionSettings.from_url(redis_url)
    drivers = ",".join(
        str(driver_file(tmp / f"{name}.yaml", name, server.host, server.port))
        for name in ("First", "Second")
    )

    def start(
        name: str, *args: str, terminal: bool = True, interrupt: bool = False
    ) -> Finished:
        result = tmp / f"{name}.json"
        command = [*args, "-o", str(result), str(SMOKE)]
        if not terminal:
            done = run_piped(*command)
        else:
            done = run_on_terminal(
                *command,
                interrupt_when=(lambda text: "Pub rate" in text) if interrupt else None,
            )
        return dataclasses.replace(done, result_written=result.exists())

    def start_two_runs(*args: str) -> Finished:
        # -o takes one run's result: these go to a folder of their own, with
        # the payload path of the workload made absolute to allow that.
        folder = tmp / "two-runs"
        folder.mkdir()
        payload = ROOT / "payload" / "payload-1Kb.data"
        workload = folder / SMOKE.name
        workload.write_text(
            SMOKE.read_text().replace('"payload/payload-1Kb.data"', f'"{payload}"')
        )
        done = run_on_terminal(*args, str(workload), cwd=folder)
        results = sorted(folder.glob("smoke-*.json"))
        return dataclasses.replace(done, result_written=len(results) == 2)

    long_run = ["--test-duration", "60s", "--warmup-duration", "0", "--period", "1s"]
    brief_run = ["--test-duration", "1s", "--warmup-duration", "0", "--period", "1s"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {
            "piped": pool.submit(start, "piped", *SHORT_RUN, terminal=False),
            "terminal": pool.submit(start, "terminal", *SHORT_RUN),
            "no_progress": pool.submit(
                start, "no_progress", "--no-progress", *SHORT_RUN
            ),
            "unreachable": pool.submit(
                start, "unreachable", "-d", str(nowhere), *SHORT_RUN
            ),
            "interrupted": pool.submit(start, "interrupted", *long_run, interrupt=True),
            "two_drivers": pool.submit(start_two_runs, "-d", drivers, *brief_run),
        }
        return {name: future.result() for name, future in futures.items()}


def test_piped_run_has_no_display(runs: dict[str, Finished]) -> None:
    done = runs["piped"]
    assert done.returncode == 0, done.output
    assert "\x1b" not in done.output
    assert not_logged(done.output.splitlines()) == []
    assert done.stdout == ""
    assert done.result_written
    stats = [line for line in done.output.splitlines() if "Pub rate" in line]
    assert len(stats) == STATS_LINES
    assert all(STATS_LINE.match(line) for line in stats), stats
    assert done.leftovers == ()


def test_no_progress_flag_turns_the_display_off(runs: dict[str, Finished]) -> None:
    done = runs["no_progress"]
    assert done.returncode == 0, done.output
    assert "\x1b" not in done.output
    lines = done.output.replace("\r\n", "\n").splitlines()
    assert not_logged(lines) == []
    assert sum("Pub rate" in line for line in lines) == STATS_LINES
    assert done.result_written


def test_terminal_run_shows_phases_and_rates(runs: dict[str, Finished]) -> None:
    done = runs["terminal"]
    assert done.returncode == 0, done.output
    assert done.result_written
    frames = SGR.sub("", done.output)
    # The timed phases last long enough to be drawn (set-up and drain phases
    # may be over between two frames).
    assert re.search(r"> smoke on Redis\s+warming up ", frames)
    assert re.search(
        r"> smoke on Redis\s+measuring .* 0:0\d of 0:03, 0:0\d left", frames
    )
    # Each period's publish rate, as logged, is shown in the display too
    # (the log rounds to 0.1, the display to 1 from the unrounded rate).
    shown = [
        int(match.group(1).replace(",", ""))
        for match in DISPLAYED_FIGURES.finditer(frames)
    ]
    logged = [
        float(match.group(1))
        for line in final_screen(done.output)
        if (match := STATS_LINE.match(line))
    ]
    assert len(logged) == STATS_LINES
    for rate in logged:
        assert any(abs(rate - figure) <= 0.55 for figure in shown), (rate, shown)
    assert done.leftovers == ()


def test_log_lines_stay_whole_above_the_display(runs: dict[str, Finished]) -> None:
    screen = final_screen(runs["terminal"].output)
    stats = [line for line in screen if "Pub rate" in line]
    assert len(stats) == STATS_LINES
    assert all(STATS_LINE.match(line) for line in stats), stats
    assert any(line.endswith("INFO runner.benchmark: measuring") for line in screen)
    # What is not a log line is the last frame, once, at the bottom.
    frame = not_logged(screen)
    assert re.fullmatch(r"bench run: 1 of 1 run done, \d:\d\d elapsed", frame[0])
    assert frame[1].startswith("  done    smoke on Redis  in 0:")
    assert "last: pub " in frame[1]
    assert screen[-2:] == frame
    assert len(frame) == 2


def test_user_error_removes_the_display(runs: dict[str, Finished]) -> None:
    done = runs["unreachable"]
    assert done.returncode == 2, done.output
    assert "Traceback" not in done.output
    # The display was up when the server check failed ...
    assert "bench run: 0 of 1 run done" in SGR.sub("", done.output)
    # ... and only the error line is left of what is not the log.
    (line,) = not_logged(final_screen(done.output))
    assert line.startswith("bench run: error: cannot reach a Redis server at ")
    assert "nowhere.yaml" in line
    assert not done.result_written
    assert done.leftovers == ()


def test_ctrl_c_removes_the_display_and_leaves_nothing(
    runs: dict[str, Finished],
) -> None:
    done = runs["interrupted"]
    assert done.returncode == 130, done.output
    assert "Traceback" not in done.output
    assert re.search(r"> smoke on Redis\s+measuring ", SGR.sub("", done.output))
    assert not_logged(final_screen(done.output)) == ["bench run: interrupted"]
    assert done.leftovers == ()
    assert not done.result_written


def test_each_run_gets_its_own_lines(runs: dict[str, Finished]) -> None:
    done = runs["two_drivers"]
    assert done.returncode == 0, done.output
    assert done.result_written
    frames = SGR.sub("", done.output)
    # While the first runs, the second waits below it.
    assert re.search(
        r"> smoke on First\s+measuring .*\n(.*\n){1,2}  waiting smoke on Second ",
        frames,
    )
    assert re.search(r"  done    smoke on First .*\n> smoke on Second\s", frames)
    frame = not_logged(final_screen(done.output))
    assert frame[0].startswith("bench run: 2 of 2 runs done, ")
    assert [line.split()[:4] for line in frame[1:]] == [
        ["done", "smoke", "on", "First"],
        ["done", "smoke", "on", "Second"],
    ]
