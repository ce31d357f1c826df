"""The `bench` command: one entry point, one module per subcommand.

Bad input from the user (a workload or driver file, a flag, an unreachable
server) is reported as one line on stderr with exit status 2. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from aioredismq.errors import ConfigError, ServerUnavailableError
from runner.commands import compare as compare_command
from runner.commands import csv as csv_command
from runner.commands import report as report_command
from runner.commands import run as run_command
from runner.commands import validate as validate_command

__all__ = ["main"]

logger = logging.getLogger(__name__)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Load-test Redis / Valkey Streams with OpenMessaging Benchmark workloads.
Reads OMB's workload and driver YAML files unchanged and writes OMB's result
JSON."""

# Subcommands in the order `bench --help` lists them.
COMMANDS = [
    run_command,
    validate_command,
    report_command,
    compare_command,
    csv_command,
]


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description=DESCRIPTION)
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (DEBUG)"
    )
    parser.add_argument(
        "-q", "--quiet", action="count", default=0, help="log warnings only"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
        sub.set_defaults(handler=command.main, command_parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
    configure_logging(args.verbose - args.quiet)
    try:
        status: int = args.handler(args)
    except (ConfigError, ServerUnavailableError) as err:
        print(f"bench {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"bench {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
