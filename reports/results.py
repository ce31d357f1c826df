"""Reading result files for reports and comparisons: OMB's JSON and our sidecar.

A result file is OMB's `TestResult` JSON, written by `bench run` or by OMB's
Java tool. `bench run` also writes `<result>.sidecar` beside it with what OMB
has no field for (server, workers, settings, counters, start and end times);
results from OMB itself have none, so everything that reads a sidecar must
do without one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aioredismq.errors import ConfigError
from runner.result import TestResult, loads_result

__all__ = [
    "EXPECTED",
    "SIDECAR_SUFFIX",
    "ResultRun",
    "load_run",
    "load_runs",
    "read_result_file",
]

logger = logging.getLogger(__name__)

#: What `bench run` appends to a result's path for its sidecar.
SIDECAR_SUFFIX = ".sidecar"

EXPECTED = "expected an OMB result file (the JSON `bench run` or OMB writes)"


@dataclass(frozen=True, slots=True)
class ResultRun:
    """One result file, its sidecar if there is one, and how to name it."""

    path: Path
    result: TestResult
    sidecar: dict[str, Any] | None

    @property
    def started_at(self) -> str | None:
        """ISO time the run started, from the sidecar; None without one."""
        if self.sidecar is None:
            return None
        value = self.sidecar.get("startedAt")
        return value if isinstance(value, str) else None

    @property
    def label(self) -> str:
        """Driver and start time (file name when the start is unknown)."""
        when = self.started_at
        if when is not None:
            return f"{self.result.driver} @ {when[:19].replace('T', ' ')}"
        return f"{self.result.driver} ({self.path.name})"


def read_result_file(path: Path, required_keys: Iterable[str] = ()) -> TestResult:
    """Parse one OMB result file; ConfigError names the file and the fault."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(source, None, path.name, "no such file; " + EXPECTED) from err
    except OSError as err:
        raise ConfigError(
            source, None, path.name, f"cannot read it ({err.strerror}); {EXPECTED}"
        ) from err
    except UnicodeDecodeError as err:
        raise ConfigError(
            source, None, path.name, "not UTF-8 text; " + EXPECTED
        ) from err
    try:
        document = json.loads(text)
    except ValueError as err:
        raise ConfigError(
            source, None, str(err), "not valid JSON; " + EXPECTED
        ) from err
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise ConfigError(source, None, kind, "not a JSON object; " + EXPECTED)
    missing = [key for key in required_keys if key not in document]
    if missing:
        raise ConfigError(source, None, ", ".join(missing), "missing keys; " + EXPECTED)
    try:
        return loads_result(text)
    except (ValueError, TypeError, OverflowError) as err:
        raise ConfigError(
            source, None, str(err), "a value of the wrong type; " + EXPECTED
        ) from err


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    sidecar = Path(str(path) + SIDECAR_SUFFIX)
    try:
        document = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        # The result itself is intact; a report can go on without the extras.
        logger.warning("ignoring %s: %s", sidecar, err)
        return None
    if not isinstance(document, dict):
        logger.warning("ignoring %s: not a JSON object", sidecar)
        return None
    return document


def load_run(path: str | Path) -> ResultRun:
    """A result file and its sidecar (None when there is none or it is unreadable)."""
    path = Path(path)
    return ResultRun(path, read_result_file(path), _read_sidecar(path))


def load_runs(paths: Sequence[str | Path]) -> list[ResultRun]:
    """Every file in order; the first bad one stops with its ConfigError."""
    return [load_run(path) for path in paths]
