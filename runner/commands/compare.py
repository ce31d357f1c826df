"""`bench compare`: being written; see the module that replaces this one."""

from __future__ import annotations

import argparse

NAME = "compare"
HELP = "compare candidate results with a baseline; gate CI"
DESCRIPTION = HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="*")


def main(args: argparse.Namespace) -> int:
    raise NotImplementedError("bench compare")
