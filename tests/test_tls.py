"""TLS connections (`rediss://`), against a real redis-server with TLS on.

The bundled valkey-server is built without TLS, so these tests use
`redis-server` from PATH and a certificate made here with `openssl`; where
either is missing (or the server lacks TLS) they are skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_cli_run import ROOT, bench

from aioredismq.client import Client
from aioredismq.connection import Connection, ConnectionSettings
from aioredismq.errors import (
    ConfigError,
    RedisConnectionError,
    ServerUnavailableError,
)
from runner.server import EmbeddedServer, free_port


@dataclass(frozen=True)
class TlsServer:
    port: int
    cert: Path
    key: Path

    def url(self, query: str = "") -> str:
        return f"rediss://127.0.0.1:{self.port}" + (f"?{query}" if query else "")


def _make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: its own authority."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module", params=["no", "yes"], ids=["server-auth", "mutual"])
def tls_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServer]:
    if shutil.which("openssl") is None or shutil.which("redis-server") is None:
        pytest.skip("needs openssl and redis-server on PATH")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = _make_certificate(folder)
    tls_port = free_port()
    server = EmbeddedServer(
        "redis-server",
        extra_args=(
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(cert),
            "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert),
            "--tls-auth-clients", request.param,
        ),
    )  # fmt: skip
    try:
        server.start()
    except ServerUnavailableError as err:
        pytest.skip(f"redis-server without TLS support: {err}")
    try:
        yield TlsServer(tls_port, cert, key)
    finally:
        server.stop()


def _client_cert(server: TlsServer) -> str:
    # The certificate is its own authority, so it serves as the client's too.
    return f"&ssl_certfile={server.cert}&ssl_keyfile={server.key}"


async def test_round_trip_over_tls_with_the_servers_authority(
    tls_server: TlsServer,
) -> None:
    url = tls_server.url(f"ssl_ca_certs={tls_server.cert}" + _client_cert(tls_server))
    client = await Client.connect(url)
    try:
        topic = await client.create_topic("tls", 2)
        await client.producer(topic).send_many([b"one", b"two", b"three"])
        consumer = client.consumer(topic, "g", "c")
        got = []
        async with consumer:
            async for message in consumer:
                got.append(message.payload)
                if len(got) == 3:
                    break
        await client.delete_topic(topic)
    finally:
        await client.close()
    assert sorted(got) == [b"one", b"three", b"two"]


async def test_unknown_authority_is_refused(tls_server: TlsServer) -> None:
    settings = ConnectionSettings.from_url(tls_server.url() + "/0")
    with pytest.raises(ServerUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        await Connection.open(settings)


async def test_checks_can_be_turned_off_for_a_self_signed_server(
    tls_server: TlsServer,
) -> None:
    settings = ConnectionSettings.from_url(
        tls_server.url("ssl_cert_reqs=none" + _client_cert(tls_server))
    )
    assert settings.tls and not settings.tls_verify
    conn = await Connection.open(settings)
    try:
        assert await conn.execute("PING") == b"PONG"
    finally:
        await conn.close()


async def test_server_asking_for_a_client_certificate_refuses_one_without(
    tls_server: TlsServer, request: pytest.FixtureRequest
) -> None:
    if "mutual" not in request.node.callspec.id:
        pytest.skip("only the server that asks for client certificates")
    settings = ConnectionSettings.from_url(
        tls_server.url(f"ssl_ca_certs={tls_server.cert}")
    )
    # The handshake may finish on the client's side before the server's
    # refusal arrives; the refusal shows by the first command at the latest,
    # as TLS's alert or, when the server has already hung up, as a reset.
    with pytest.raises(RedisConnectionError, match="CERTIFICATE_REQUIRED|reset"):
        conn = await Connection.open(settings)
        try:
            await conn.execute("PING")
        finally:
            await conn.close()


def test_unreadable_files_name_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=r"connection: tls_ca_file: .*nope\.pem"):
        ConnectionSettings.from_url(
            f"rediss://h:1?ssl_ca_certs={missing}"
        ).tls_context()
    with pytest.raises(ConfigError, match=r"tls_cert_file: .*nope\.pem"):
        ConnectionSettings(tls=True, tls_cert_file=str(missing)).tls_context()
    with pytest.raises(ConfigError, match="ssl_cert_reqs: 'never'"):
        ConnectionSettings.from_url("rediss://h:1?ssl_cert_reqs=never")
    with pytest.raises(ConfigError, match="tls_key_file"):
        ConnectionSettings(tls=True, tls_key_file="k.pem")
    assert ConnectionSettings().tls_context() is None


def _tls_driver_file(path: Path, server: TlsServer, ca_file: Path) -> Path:
    path.write_text(
        "name: Redis TLS\n"
        "driverClass: driver.redis_streams.RedisStreamsDriver\n"
        f"redisHost: 127.0.0.1\nredisPort: {server.port}\nredisTls: true\n"
        f"redisTlsCaFile: {ca_file}\n"
        f"redisTlsCertFile: {server.cert}\nredisTlsKeyFile: {server.key}\n"
    )
    return path


def test_bench_runs_over_tls(tls_server: TlsServer, tmp_path: Path) -> None:
    driver = _tls_driver_file(tmp_path / "driver.yaml", tls_server, tls_server.cert)
    result = tmp_path / "result.json"
    done = bench(
        "run", "-d", str(driver), "-o", str(result), "--workers", "1",
        "--test-duration", "1s", "--warmup-duration", "0s", "--period", "1s",
        str(ROOT / "workloads" / "smoke.yaml"),
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(result.read_text())
    assert facts["publishRate"] and min(facts["publishRate"]) > 0
    counters = json.loads(Path(f"{result}.sidecar").read_text())["counters"]
    assert counters["messagesSent"] == counters["messagesReceived"] > 0


def test_bench_names_a_missing_authority_file(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    missing = tmp_path / "missing-ca.pem"
    driver = _tls_driver_file(tmp_path / "driver.yaml", tls_server, missing)
    done = bench("run", "-d", str(driver), "workloads/smoke.yaml", cwd=ROOT)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"bench run: error: {driver}: redisTlsCaFile: ")
    assert "missing-ca.pem" in line
