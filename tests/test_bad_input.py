"""Bad input to `bench run`: one line, exit status 2, nothing left running.

Every case runs the real command line in a subprocess. The error cases are
started a few at a time from one module fixture, since each costs mostly
interpreter start-up, and none of them may get as far as starting a run.
Leftover processes are found by a fresh directory each run gets as TMPDIR:
its workers inherit it in their environment, and the embedded server, which
rewrites its environment and command line for its process title, works in a
directory made inside it. Both outlive the command itself, so a process
left behind is found even after it has been re-parented.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from terminal import restore_ctrl_c

from aioredismq.connection import ConnectionSettings
from runner.server import EmbeddedServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "workloads" / "smoke.yaml"
MARKER_VARIABLE = "AIOREDISMQ_TEST_RUN_MARKER"
# Log lines start with logging's asctime; anything else on stderr is the error.
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
ERROR_PREFIX = "bench run: error: "
# Long enough for a slow machine, far below what a started run would take.
ERROR_CASE_TIMEOUT_S = 20.0
# The resource tracker of a worker-spawning run exits a moment after it.
LEFTOVER_GRACE_S = 3.0


@dataclass(frozen=True)
class Finished:
    returncode: int
    stderr: str
    elapsed_s: float
    leftovers: list[str]


def processes_with_marker(marker: Path) -> dict[int, str]:
    """Live processes of the run marked `marker`: pid to command line."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cwd = Path(os.readlink(entry / "cwd"))
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone already, or not ours to read
            continue
        if needle in environ.split(b"\0") or cwd.is_relative_to(marker):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found[int(entry.name)] = command.strip()
    return found


def wait_for_no_leftovers(marker: Path) -> list[str]:
    """What is still running after a grace period; it is then killed, so a
    failing test does not leave load or servers behind for the next one."""
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while (leftovers := processes_with_marker(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(marker, ignore_errors=True)
    return sorted(leftovers.values())


def start_bench(*args: str) -> tuple[subprocess.Popen[str], Path]:
    """`bench run` in a process group of its own, marked for finding leftovers."""
    marker = Path(tempfile.mkdtemp(prefix="bench-run-")).resolve()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(marker),
        MARKER_VARIABLE: str(marker),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "run", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=restore_ctrl_c,
    )
    return process, marker


def finish(
    process: subprocess.Popen[str], marker: Path, timeout_s: float
) -> tuple[str, list[str]]:
    """Its stderr and what it left running, once it exits or is killed.

    A process left behind holds the stderr pipe open, so a missing end of
    file is no sign the command still runs: that is judged by its status.
    """
    note = ""
    try:
        process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        if process.poll() is None:
            note = f"(still running after {timeout_s} s)\n"
    leftovers = wait_for_no_leftovers(marker)
    try:
        # Anything of its group still alive; re-parented ones stay in it.
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
    # A second call returns everything read, the first call's part included.
    _, stderr = process.communicate()
    return stderr + note, leftovers


def run_bench(*args: str, timeout_s: float = ERROR_CASE_TIMEOUT_S) -> Finished:
    started = time.monotonic()
    process, marker = start_bench(*args)
    stderr, leftovers = finish(process, marker, timeout_s)
    elapsed_s = time.monotonic() - started
    return Finished(process.returncode, stderr, elapsed_s, leftovers)


def error_lines(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not TIMESTAMP.match(line)
    ]


def write_driver(path: Path, redis_url: str, **extra: object) -> Path:
    settings = ConnectionSettings.from_url(redis_url)
    lines = [
        "name: Redis Test",
        "driverClass: driver.redis_streams.RedisStreamsDriver",
        f"redisHost: {settings.host}",
        f"redisPort: {settings.port}",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


# A workload that would pass every check; each workload case changes one thing.
VALID_WORKLOAD = {
    "name": "bad input",
    "topics": "1",
    "partitionsPerTopic": "1",
    "keyDistributor": "NO_KEY",
    "messageSize": "1024",
    "payloadFile": "payload/payload-1Kb.data",
    "subscriptionsPerTopic": "1",
    "consumerPerSubscription": "1",
    "producersPerTopic": "1",
    "producerRate": "100",
    "consumerBacklogSizeGB": "0",
    "testDurationMinutes": "1",
    "warmupDurationMinutes": "0",
}


def write_workload(path: Path, **changes: str) -> Path:
    fields = {**VALID_WORKLOAD, **changes}
    path.write_text("".join(f"{key}: {value}\n" for key, value in fields.items()))
    return path


@dataclass(frozen=True)
class Case:
    args: list[str]
    """Arguments after `run`."""
    expected: list[str]
    """Texts the error line must hold: file, field, value, what is allowed."""


@dataclass(frozen=True)
class Context:
    tmp: Path
    redis_url: str
    driver: Path
    """A good driver file pointing at the test server."""
    password_url: str
    """A server that wants a password none of the cases has."""

    def flags(self) -> list[str]:
        """Good flags that keep a run short, should a case wrongly get that far."""
        return [
            "-d",
            str(self.driver),
            "--test-duration",
            "1s",
            "--warmup-duration",
            "0",
        ]

    def output(self) -> list[str]:
        """Where a result goes, should a case wrongly run: not the
        repository, which is the working directory."""
        return ["-o", str(self.tmp / "wrongly-run.json")]


CASES: dict[str, Callable[[Context], Case]] = {}


def case(function: Callable[[Context], Case]) -> Callable[[Context], Case]:
    CASES[function.__name__] = function
    return function


# Workload files


@case
def workload_missing(ctx: Context) -> Case:
    path = ctx.tmp / "missing.yaml"
    return Case([*ctx.flags(), str(path)], [str(path), "no such file", "workload"])


@case
def workload_not_yaml(ctx: Context) -> Case:
    path = ctx.tmp / "not-yaml.yaml"
    path.write_text("topics: [1,\n")
    return Case([*ctx.flags(), str(path)], [str(path), "line", "expected valid YAML"])


@case
def workload_top_level_list(ctx: Context) -> Case:
    path = ctx.tmp / "list.yaml"
    path.write_text("- topics: 1\n- partitionsPerTopic: 1\n")
    return Case([*ctx.flags(), str(path)], [str(path), "'list'", "mapping"])


@case
def workload_key_given_twice(ctx: Context) -> Case:
    path = write_workload(ctx.tmp / "twice.yaml")
    path.write_text(path.read_text() + "producerRate: 5000\n")
    return Case(
        [*ctx.flags(), *ctx.output(), str(path)],
        [str(path), "duplicate key 'producerRate' on lines 10 and 14"],
    )


@case
def workload_number_yaml_reads_as_text(ctx: Context) -> Case:
    path = write_workload(ctx.tmp / "exponent.yaml", producerRate="5e3")
    return Case(
        [*ctx.flags(), *ctx.output(), str(path)],
        [f"{path}: producerRate: '5e3'", "a string", "write it as 5.0e+3"],
    )


@case
def workload_unknown_key_distributor(ctx: Context) -> Case:
    path = write_workload(ctx.tmp / "distributor.yaml", keyDistributor="ROUND_ROBIN")
    return Case(
        [*ctx.flags(), str(path)],
        [
            f"{path}: keyDistributor: 'ROUND_ROBIN'",
            "NO_KEY, KEY_ROUND_ROBIN, RANDOM_NANO",
        ],
    )


@case
def workload_negative_topics(ctx: Context) -> Case:
    path = write_workload(ctx.tmp / "negative.yaml", topics="-1")
    return Case([*ctx.flags(), str(path)], [f"{path}: topics: -1", "integer >= 1"])


@case
def workload_string_topics(ctx: Context) -> Case:
    path = write_workload(ctx.tmp / "string.yaml", topics='"3"')
    return Case([*ctx.flags(), str(path)], [f"{path}: topics: '3'", "integer >= 1"])


@case
def workload_too_many_topics(ctx: Context) -> Case:
    # Refused before anything is built: a worker would otherwise spend
    # minutes and gigabytes making 100 million topics' objects.
    path = write_workload(ctx.tmp / "many-topics.yaml", topics="100000000")
    return Case(
        [*ctx.flags(), str(path)],
        [f"{path}: topics: 100000000", "streams", "at most 1,000,000 in all"],
    )


@case
def workload_too_many_partitions(ctx: Context) -> Case:
    path = write_workload(ctx.tmp / "many-parts.yaml", partitionsPerTopic="2000000")
    return Case(
        [*ctx.flags(), str(path)],
        [f"{path}: partitionsPerTopic: 2000000", "at most 1,000,000 in all"],
    )


@case
def workload_too_many_consumers(ctx: Context) -> Case:
    path = write_workload(ctx.tmp / "many-cons.yaml", consumerPerSubscription="20000")
    return Case(
        [*ctx.flags(), str(path)],
        [f"{path}: consumerPerSubscription: 20000", "at most 10,000 in all"],
    )


@case
def workload_without_message_size(ctx: Context) -> Case:
    path = write_workload(ctx.tmp / "no-size.yaml")
    text = "".join(
        line
        for line in path.read_text().splitlines(keepends=True)
        if not line.startswith("messageSize:")
    )
    path.write_text(text)
    return Case(
        [*ctx.flags(), str(path)],
        [f"{path}: messageSize: no value (the key is missing)", "integer from 1"],
    )


@case
def workload_from_a_device(ctx: Context) -> Case:
    return Case(
        [*ctx.flags(), "/dev/zero"], ["/dev/zero", "not a regular file", "workload"]
    )


@case
def workload_backlog_without_rate(ctx: Context) -> Case:
    path = write_workload(
        ctx.tmp / "backlog.yaml", producerRate="0", consumerBacklogSizeGB="1"
    )
    return Case(
        [*ctx.flags(), str(path)],
        [f"{path}: consumerBacklogSizeGB: 1", "producerRate is 0", "expected 0"],
    )


@case
def workload_payload_wrong_size(ctx: Context) -> Case:
    payload = ctx.tmp / "small.data"
    payload.write_bytes(b"x" * 100)
    path = write_workload(ctx.tmp / "size.yaml", payloadFile=str(payload))
    return Case(
        [*ctx.flags(), str(path)],
        [f"{path}: payloadFile: {str(payload)!r}", "100 bytes", "exactly", "1024"],
    )


@case
def workload_payload_missing(ctx: Context) -> Case:
    path = write_workload(ctx.tmp / "nopayload.yaml", payloadFile="payload/none.data")
    return Case(
        [*ctx.flags(), str(path)],
        [
            f"{path}: payloadFile: 'payload/none.data'",
            f"no file at {ROOT / 'payload' / 'none.data'}",
            "1024",
        ],
    )


# Driver files


def driver_case(ctx: Context, driver: Path, expected: list[str]) -> Case:
    args = ["-d", str(driver), "--test-duration", "1s", "--warmup-duration", "0"]
    return Case([*args, *ctx.output(), str(SMOKE)], expected)


@case
def driver_missing(ctx: Context) -> Case:
    path = ctx.tmp / "no-driver.yaml"
    return driver_case(ctx, path, [str(path), "no such file", "driver YAML"])


@case
def driver_from_a_device(ctx: Context) -> Case:
    return driver_case(
        ctx, Path("/dev/zero"), ["/dev/zero", "not a regular file", "driver YAML"]
    )


@case
def driver_not_utf8(ctx: Context) -> Case:
    path = ctx.tmp / "latin1-driver.yaml"
    path.write_bytes(b"name: R\xe9dis\n")
    return driver_case(ctx, path, [str(path), "not UTF-8 text", "driver YAML"])


@case
def driver_not_yaml(ctx: Context) -> Case:
    path = ctx.tmp / "driver-not-yaml.yaml"
    path.write_text("name: Redis\ndriverClass: [x,\n")
    return driver_case(ctx, path, [str(path), "line", "expected valid YAML"])


@case
def driver_without_name(ctx: Context) -> Case:
    path = ctx.tmp / "driver-no-name.yaml"
    path.write_text("driverClass: driver.redis_streams.RedisStreamsDriver\n")
    return driver_case(
        ctx, path, [f"{path}: name: None", "the key is missing", "non-empty string"]
    )


@case
def driver_class_not_importable(ctx: Context) -> Case:
    path = ctx.tmp / "driver-foo.yaml"
    path.write_text("name: Foo\ndriverClass: foo.Bar\n")
    return driver_case(
        ctx, path, [f"{path}: driverClass: 'foo.Bar'", "importable", "Class"]
    )


@case
def driver_class_java_without_counterpart(ctx: Context) -> Case:
    java = "io.openmessaging.benchmark.driver.kafka.KafkaBenchmarkDriver"
    path = ctx.tmp / "driver-kafka.yaml"
    path.write_text(f"name: Kafka\ndriverClass: {java}\n")
    return driver_case(
        ctx,
        path,
        [
            f"{path}: driverClass: {java!r}",
            "io.openmessaging.benchmark.driver.redis.RedisBenchmarkDriver",
        ],
    )


@case
def driver_port_not_a_number(ctx: Context) -> Case:
    path = write_driver(ctx.tmp / "driver-port-abc.yaml", ctx.redis_url)
    path.write_text(path.read_text().replace("redisPort:", "redisPort: 'abc' #"))
    return driver_case(ctx, path, [f"{path}: redisPort: 'abc'", "1-65535"])


@case
def driver_port_out_of_range(ctx: Context) -> Case:
    path = write_driver(ctx.tmp / "driver-port-big.yaml", ctx.redis_url)
    path.write_text(path.read_text().replace("redisPort:", "redisPort: 70000 #"))
    return driver_case(ctx, path, [f"{path}: redisPort: 70000", "1-65535"])


@case
def driver_tls_key_without_tls(ctx: Context) -> Case:
    # Not a plaintext run that quietly leaves the key unused.
    path = write_driver(
        ctx.tmp / "driver-tls-off.yaml", ctx.redis_url, redisTlsCaFile="ca.pem"
    )
    return driver_case(
        ctx, path, [f"{path}: redisTlsCaFile: 'ca.pem'", "set redisTls: true"]
    )


@case
def driver_server_unreachable(ctx: Context) -> Case:
    port = free_port()
    path = write_driver(ctx.tmp / "driver-down.yaml", f"redis://127.0.0.1:{port}")
    return driver_case(
        ctx,
        path,
        [str(path), "redisPort", str(port), f"127.0.0.1:{port}", "start one there"],
    )


@case
def driver_wrong_password(ctx: Context) -> Case:
    path = write_driver(
        ctx.tmp / "driver-pass.yaml", ctx.password_url, redisPass="wrong-one"
    )
    return driver_case(ctx, path, [f"{path}: redisPass: '***'", "refused"])


# Flags


@case
def flag_test_duration_bad_unit(ctx: Context) -> Case:
    args = ["-d", str(ctx.driver), "--test-duration", "5x", str(SMOKE)]
    return Case(args, ["--test-duration: '5x'", "ms, s, m or h"])


@case
def flag_test_duration_zero(ctx: Context) -> Case:
    args = ["-d", str(ctx.driver), "--test-duration", "0", str(SMOKE)]
    return Case(args, ["--test-duration: '0'", "> 0"])


@case
def flag_period_zero(ctx: Context) -> Case:
    args = [*ctx.flags(), *ctx.output(), "--period", "0s", str(SMOKE)]
    return Case(args, ["--period: '0s'", "at least 100ms"])


@case
def flag_period_too_short(ctx: Context) -> Case:
    args = [*ctx.flags(), *ctx.output(), "--period", "5ms", str(SMOKE)]
    return Case(args, ["--period: '5ms'", "at least 100ms"])


@case
def flag_drivers_empty(ctx: Context) -> Case:
    # Not the embedded server in its place: that is what no -d at all means.
    args = ["-d", "", "--test-duration", "1s", "--warmup-duration", "0"]
    return Case(
        [*args, *ctx.output(), str(SMOKE)],
        ["--drivers: ''", "an empty one names no file"],
    )


@case
def flag_drivers_empty_in_a_list(ctx: Context) -> Case:
    drivers = f"{ctx.driver},"
    args = ["-d", drivers, "--test-duration", "1s", "--warmup-duration", "0"]
    return Case(
        [*args, *ctx.output(), str(SMOKE)], [f"--drivers: {drivers!r}", "empty"]
    )


@case
def flag_output_for_two_workloads(ctx: Context) -> Case:
    output = ctx.tmp / "two-workloads.json"
    second = write_workload(ctx.tmp / "second.yaml")
    args = [*ctx.flags(), "-o", str(output), str(SMOKE), str(second)]
    return Case(
        args,
        [f"--output: {str(output)!r}", "one run", "2 (2 workload files x 1 driver)"],
    )


@case
def flag_output_for_two_drivers(ctx: Context) -> Case:
    output = ctx.tmp / "two-drivers.json"
    args = ["-d", f"{ctx.driver},{ctx.driver}", "-o", str(output), str(SMOKE)]
    return Case(args, [f"--output: {str(output)!r}", "2 (1 workload file x 2 drivers)"])


@case
def flag_drain_timeout_not_a_duration(ctx: Context) -> Case:
    args = ["-d", str(ctx.driver), "--drain-timeout", "soon", str(SMOKE)]
    return Case(args, ["--drain-timeout: 'soon'", "ms, s, m or h"])


@case
def workload_key_one_typo_away(ctx: Context) -> Case:
    path = ctx.tmp / "typo-key.yaml"
    path.write_text(SMOKE.read_text().replace("producerRate:", "producerRat:"))
    return Case(
        ["-d", str(ctx.driver), str(path)],
        [str(path), "producerRat", "did you mean producerRate?"],
    )


@case
def flag_warmup_negative(ctx: Context) -> Case:
    args = ["-d", str(ctx.driver), "--warmup-duration", "-1", str(SMOKE)]
    return Case(args, ["--warmup-duration: '-1'", "ms, s, m or h"])


@case
def flag_workers_zero(ctx: Context) -> Case:
    args = ["-d", str(ctx.driver), "--workers", "0", str(SMOKE)]
    return Case(args, ["--workers: '0'", "1 to 64"])


@case
def flag_workers_too_many(ctx: Context) -> Case:
    args = ["-d", str(ctx.driver), "--workers", "65", str(SMOKE)]
    return Case(args, ["--workers: '65'", "1 to 64"])


@case
def flag_workers_not_a_number(ctx: Context) -> Case:
    args = ["-d", str(ctx.driver), "--workers", "two", str(SMOKE)]
    return Case(args, ["--workers: 'two'", "whole number", "1 to 64"])


@case
def flag_unknown(ctx: Context) -> Case:
    args = ["-d", str(ctx.driver), "--nope", str(SMOKE)]
    return Case(args, ["--nope", "bench run --help"])


@case
def flag_output_in_missing_directory(ctx: Context) -> Case:
    output = ctx.tmp / "no-such-dir" / "result.json"
    args = [*ctx.flags(), "-o", str(output), str(SMOKE)]
    return Case(args, [f"--output: {str(output)!r}", "existing", "directory"])


@case
def flag_output_empty(ctx: Context) -> Case:
    args = [*ctx.flags(), "-o", "", str(SMOKE)]
    return Case(args, ["--output: ''", "an empty path", "file name"])


@case
def flag_output_where_no_file_can_be_made(ctx: Context) -> Case:
    # Root passes a permission check on /proc, but no file can be made there.
    args = [*ctx.flags(), "-o", "/proc/result.json", str(SMOKE)]
    return Case(
        args, ["--output: '/proc/result.json'", "cannot create a file in /proc"]
    )


@pytest.fixture(scope="module")
def password_server() -> Iterator[str]:
    # The password is set once the server runs: the start-up check asks INFO
    # without logging in.
    with EmbeddedServer() as server:
        with socket.create_connection((server.host, server.port), 2) as sock:
            sock.sendall(b"CONFIG SET requirepass right-one\r\n")
            assert sock.recv(100) == b"+OK\r\n"
        yield server.url


@pytest.fixture(scope="module")
def finished(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, password_server: str
) -> dict[str, tuple[Case, Finished]]:
    tmp = tmp_path_factory.mktemp("bad-input")
    driver = write_driver(tmp / "driver.yaml", redis_url)
    ctx = Context(tmp, redis_url, driver, password_server)
    cases = {name: build(ctx) for name, build in CASES.items()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_bench, *c.args) for name, c in cases.items()}
        return {name: (cases[name], futures[name].result()) for name in cases}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_status_2(
    name: str, finished: dict[str, tuple[Case, Finished]]
) -> None:
    case, done = finished[name]
    assert "Traceback" not in done.stderr, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    (line,) = lines
    assert line.startswith(ERROR_PREFIX), line
    for text in case.expected:
        assert text in line, (text, line)
    assert done.returncode == 2, done.stderr
    assert done.leftovers == []
    # Nothing about a run may have started: no topics, no worker output.
    assert "creating topics" not in done.stderr
    assert "worker-" not in done.stderr


def test_password_is_not_shown(finished: dict[str, tuple[Case, Finished]]) -> None:
    _, done = finished["driver_wrong_password"]
    assert "wrong-one" not in done.stderr


def test_unreachable_server_fails_fast(
    finished: dict[str, tuple[Case, Finished]],
) -> None:
    _, done = finished["driver_server_unreachable"]
    assert done.elapsed_s < 5, done.elapsed_s


OMB_REDIS_DRIVER = """\
name: Redis
driverClass: io.openmessaging.benchmark.driver.redis.RedisBenchmarkDriver
redisHost: {host}
redisPort: {port}
jedisPoolMaxTotal: 8
jedisPoolMaxIdle: 8
"""


def test_omb_redis_driver_file_is_accepted(tmp_path: Path, redis_url: str) -> None:
    settings = ConnectionSettings.from_url(redis_url)
    driver = tmp_path / "redis.yaml"
    driver.write_text(OMB_REDIS_DRIVER.format(host=settings.host, port=settings.port))
    done = run_bench(
        "-d", str(driver),
        "-o", str(tmp_path / "result.json"),
        "--test-duration", "2s",
        "--warmup-duration", "0",
        "--period", "1s",
        str(SMOKE),
        timeout_s=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "result.json").exists()
    ignored = [
        line
        for line in done.stderr.splitlines()
        if "jedisPoolMaxTotal" in line and "jedisPoolMaxIdle" in line
    ]
    assert len(ignored) == 1, done.stderr
    assert str(driver) in ignored[0]
    assert done.leftovers == []


def test_results_to_devices(tmp_path: Path, redis_url: str) -> None:
    """A result to a device: /dev/full fails once the run is over, in one
    line; /dev/null takes it, and neither gets a sidecar beside it."""
    driver = write_driver(tmp_path / "driver.yaml", redis_url)
    short = ["--test-duration", "1s", "--warmup-duration", "0", "--period", "250ms"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        full, null = pool.map(
            lambda output: run_bench(
                "-d", str(driver), "-o", output, *short, str(SMOKE), timeout_s=60
            ),
            ["/dev/full", "/dev/null"],
        )
    assert "Traceback" not in full.stderr, full.stderr
    assert error_lines(full.stderr) == [
        f"{ERROR_PREFIX}/dev/full: cannot write the result (No space left on device)"
    ]
    assert full.returncode == 2
    assert null.returncode == 0, null.stderr
    assert error_lines(null.stderr) == []
    for done in (full, null):
        assert "creating topics" in done.stderr  # the run itself went ahead
        assert done.leftovers == []
    assert not Path("/dev/full.sidecar").exists()
    assert not Path("/dev/null.sidecar").exists()


@pytest.mark.parametrize(
    ("sent", "status", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["SIGINT", "SIGTERM"],
)
@pytest.mark.parametrize("whole_group", [False, True], ids=["process", "group"])
def test_ctrl_c_leaves_nothing_behind(
    tmp_path: Path, whole_group: bool, sent: signal.Signals, status: int, said: str
) -> None:
    """SIGINT to the command alone, or to its group as a terminal sends it;
    SIGTERM likewise, as a cancelled CI job or `kill` sends it."""
    process, marker = start_bench(
        "-o", str(tmp_path / "result.json"),
        "--test-duration", "60s",
        "--warmup-duration", "0",
        "--period", "1s",
        str(SMOKE),
    )  # fmt: skip
    # Wait until the load runs, so there are workers and a server to stop.
    deadline = time.monotonic() + 30
    running = False
    while time.monotonic() < deadline and process.poll() is None:
        commands = processes_with_marker(marker).values()
        if any("valkey-server" in c or "redis-server" in c for c in commands):
            running = True
            break
        time.sleep(0.1)
    if running:
        time.sleep(3)
        running = process.poll() is None
    if running:
        if whole_group:
            os.killpg(process.pid, sent)
        else:
            process.send_signal(sent)
    interrupted = time.monotonic()
    stderr, leftovers = finish(process, marker, timeout_s=10)
    assert running, stderr
    assert time.monotonic() - interrupted < 10 + LEFTOVER_GRACE_S
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr, stderr
    assert error_lines(stderr) == [f"bench run: {said}"], stderr
    assert leftovers == []
    assert not (tmp_path / "result.json").exists()
