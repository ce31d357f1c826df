"""The `bench` entry point itself: standard output, logging flags, Ctrl-C.

`bench validate` stands in for every subcommand here: it is quick, needs no
server, and writes to standard output, one line per workload file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from terminal import restore_ctrl_c

from runner import cli

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "workloads" / "smoke.yaml"
TIMEOUT_S = 30
# Enough copies of one file for its lines to fill the output buffer many
# times over, so that the writes fail inside the command, not at its end.
MANY_COPIES = 300


def python(*args: str, stdout: int | None = None) -> subprocess.Popen[str]:
    """Python as a shell starts it: standard output buffered, written when
    the buffer fills and at the end, whatever the test run's setting."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONUNBUFFERED", None)
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=restore_ctrl_c,
    )


def validate_into_closed_pipe(*paths: str) -> tuple[int, str]:
    """`bench validate PATHS | (a reader that is already gone)`."""
    process = python("-m", "runner.cli", "validate", *paths, stdout=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=TIMEOUT_S)
    return process.returncode, stderr


@pytest.mark.parametrize("copies", [1, MANY_COPIES], ids=["at-exit", "mid-output"])
def test_a_reader_gone_away_ends_the_output_quietly(copies: int) -> None:
    status, stderr = validate_into_closed_pipe(*[str(SMOKE)] * copies)
    assert stderr == ""
    assert status == 0


def test_a_reader_gone_away_keeps_the_commands_status(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics: -1\n")
    status, stderr = validate_into_closed_pipe(*[str(SMOKE)] * MANY_COPIES, str(bad))
    assert stderr.splitlines() == [
        f"bench validate: error: {bad}: topics: -1 is not allowed; "
        "expected an integer >= 1"
    ]
    assert status == 2


@pytest.mark.parametrize("copies", [1, MANY_COPIES], ids=["at-exit", "mid-output"])
def test_a_full_standard_output_is_one_line_and_status_2(copies: int) -> None:
    with open("/dev/full", "w") as full:
        process = python(
            "-m", "runner.cli", "validate", *[str(SMOKE)] * copies, stdout=full.fileno()
        )
        _, stderr = process.communicate(timeout=TIMEOUT_S)
    assert stderr.splitlines() == [
        "bench validate: error: cannot write to standard output "
        "(No space left on device)"
    ]
    assert process.returncode == 2


def test_help_into_a_closed_pipe_is_quiet() -> None:
    process = python("-m", "runner.cli", "run", "--help", stdout=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=TIMEOUT_S)
    assert stderr == ""
    assert process.returncode == 0


@pytest.mark.parametrize(
    ("argv", "verbosity"),
    [
        (["validate"], 0),
        (["validate", "-q"], -1),
        (["-q", "validate"], -1),
        (["-v", "validate", "--verbose"], 2),
        (["-v", "validate", "-q"], 0),
        (["run", "-q", "--no-progress"], -1),
    ],
)
def test_verbosity_flags_count_before_and_after_the_subcommand(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    verbosity: int,
) -> None:
    given: list[int] = []
    monkeypatch.setattr(cli, "configure_logging", given.append)
    monkeypatch.chdir(ROOT)
    # A workload that is refused, so `run` stops before it starts anything.
    workload = "workloads/none.yaml" if argv[0] == "run" else str(SMOKE)
    cli.main([*argv, workload])
    assert given == [verbosity], capsys.readouterr().err


def test_ctrl_c_while_the_subcommands_load_is_an_interruption() -> None:
    """SIGINT arrives while `bench` imports its subcommands: a Ctrl-C in the
    first fraction of a second. An import hook sends it at that moment."""
    code = f"""
import os, signal, sys

class InterruptOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == "runner.commands.run":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, InterruptOnImport())
from runner import cli
sys.exit(cli.main(["validate", {str(SMOKE)!r}]))
"""
    process = python("-c", code, stdout=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    assert stderr.splitlines() == ["bench: interrupted"]
    assert stdout == ""
    assert process.returncode == 130
