"""The `bench` command: one entry point, one module per subcommand.

Bad input from the user (a workload or driver file, a flag, an unreachable
server) is reported as one line on stderr with exit status 2. Anything else
is a bug and keeps its traceback.

Standard output is a stream like any other to the subcommands. A reader
that goes away (`bench report --json | head`) ends the output quietly and
the command carries on to its own exit status; standard output that cannot
take what is written (`> /dev/full`) is one line with exit status 2.

SIGTERM (a cancelled CI job, `kill`, `timeout`) ends a command as Ctrl-C
does: workers stopped, topics deleted, a private server stopped; the exit
status is then 143 instead of 130.

This module imports only the standard library; the subcommands, which take
a fifth of a second or more to load, are imported by `main`, so a Ctrl-C
while they load is an interruption like any later one, not a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn, TextIO, cast

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM

DESCRIPTION = """\
Load-test Redis / Valkey Streams with OpenMessaging Benchmark workloads.
Reads OMB's workload and driver YAML files unchanged and writes OMB's result
JSON."""


def configure_logging(verbosity: int, prefix: str = "") -> None:
    """Logging for the command line; the library modules never configure it."""
    level = logging.DEBUG if verbosity > 0 else logging.INFO
    if verbosity < 0:
        level = logging.WARNING
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


class _Parser(argparse.ArgumentParser):
    """Reports a bad flag in one line (argparse adds the whole usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        # --help's text is still in the buffer: written now, through the
        # watch that keeps a closed pipe quiet, not at the interpreter's end.
        with contextlib.suppress(OSError):
            sys.stdout.flush()
        super().exit(status, message)


def _commands() -> list[ModuleType]:
    """The subcommand modules, in the order `bench --help` lists them."""
    from runner.commands import compare, csv, report, run, validate

    return [run, validate, report, compare, csv]


def _add_verbosity_flags(parser: argparse.ArgumentParser, suffix: str = "") -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        dest=f"verbose{suffix}",
        help="log more (DEBUG)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0,
        dest=f"quiet{suffix}",
        help="log warnings only",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description=DESCRIPTION)
    _add_verbosity_flags(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in _commands():
        sub = subparsers.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # The same flags after the subcommand's name (`bench run -q ...`),
        # counted apart: a subcommand's defaults would otherwise overwrite
        # what was given before its name.
        _add_verbosity_flags(sub, "_after")
        command.add_arguments(sub)
        sub.set_defaults(handler=command.main, command_parser=sub)
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # argparse would report these as `bench: error:`; they were meant
        # for the subcommand, so its name and its --help are what helps.
        command_parser: argparse.ArgumentParser = args.command_parser
        command_parser.error(
            f"unrecognized arguments: {' '.join(unknown)}; "
            f"see {command_parser.prog} --help for the flags it takes"
        )
    return args


class _WatchedOutput:
    """Standard output as a command sees it: the stream itself, except that
    a reader gone away silences it, and any other failure is remembered, so
    that `main` can tell it from an OSError of anything else (a bug)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.error: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self.discard()
            return len(text)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self.discard()
        except OSError as err:
            self.error = err
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def discard(self) -> None:
        """Send the rest to /dev/null, as Python's documentation advises
        for a closed pipe: the interpreter's last flush would fail again."""
        try:
            descriptor = self.stream.fileno()
        except (OSError, ValueError):  # not a file: nothing to redirect
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, descriptor)
        finally:
            os.close(devnull)


class _Termination:
    """Turns SIGTERM into the interruption Ctrl-C makes, and remembers it."""

    def __init__(self) -> None:
        self.received = False

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True
        # Whoever handles Ctrl-C now (asyncio's runner cancels its main task
        # first, so the run cleans up) handles this too; where Ctrl-C is
        # ignored, as in a background job, the interruption is raised here.
        on_interrupt = signal.getsignal(signal.SIGINT)
        if callable(on_interrupt):
            on_interrupt(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    termination = _Termination()
    termination.install()
    stdout = sys.stdout
    if stdout is None:  # closed: print() writes nothing, nothing can fail
        return _main(argv, None, termination)
    watched = _WatchedOutput(stdout)
    sys.stdout = cast(TextIO, watched)
    try:
        return _main(argv, watched, termination)
    finally:
        sys.stdout = stdout


def _main(
    argv: Sequence[str] | None,
    watched: _WatchedOutput | None,
    termination: _Termination,
) -> int:
    name = "bench"
    try:
        from aioredismq.errors import ConfigError, ServerUnavailableError

        args = _parse(argv)
        name = f"bench {args.command}"
        configure_logging(
            args.verbose + args.verbose_after - args.quiet - args.quiet_after
        )
        try:
            status: int = args.handler(args)
            # Within the handling below: a short output is only written now.
            if watched is not None:
                watched.flush()
        except (ConfigError, ServerUnavailableError) as err:
            print(f"{name}: error: {err}", file=sys.stderr)
            return EXIT_USER_ERROR
        except OSError as err:
            if watched is None or err is not watched.error:
                raise
            reason = err.strerror or str(err)
            print(
                f"{name}: error: cannot write to standard output ({reason})",
                file=sys.stderr,
            )
            watched.discard()
            return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if termination.received:
            print(f"{name}: terminated", file=sys.stderr)
            return EXIT_TERMINATED
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
