"""Every error aioredismq and its benchmark harness raise.

    AioRedisMQError
    ├── ConfigError               bad input from a user: a file, a field, a flag
    │   ├── WorkloadError         a workload YAML file
    │   ├── DriverConfigError     a driver YAML file
    │   └── OutputFileError       an output file that cannot be written
    ├── ResultValueError          a result file's value of the wrong type or
    │                             range (also a ValueError; no file name)
    ├── RedisError                the server or the way to it
    │   ├── RedisConnectionError  cannot reach or lost the server (retriable)
    │   │   ├── ServerUnavailableError  nothing answers at the address given
    │   │   └── ReplyTimeoutError  no reply within socket_timeout_s
    │   ├── ReplyError            the server answered a command with an error
    │   │   ├── NoGroupError      the stream or its consumer group is gone
    │   │   ├── BusyGroupError    the consumer group already exists
    │   │   ├── ServerBusyError   the server cannot take it now (retriable)
    │   │   └── ClusterRedirectError  a cluster kept redirecting a command
    │   └── ProtocolError         a reply that does not parse
    ├── ClosedError               a producer, consumer or client used after close
    ├── CapacityTimeoutError      a producer stayed full past capacity_timeout_s
    └── WorkerError               a benchmark worker process failed

Callers that retry ask `err.retriable` instead of testing classes one by one.
`ConfigError` and `ServerUnavailableError` are what the `bench` command reports
as one line with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AioRedisMQError",
    "BusyGroupError",
    "CapacityTimeoutError",
    "ClosedError",
    "ClusterRedirectError",
    "ConfigError",
    "DriverConfigError",
    "NoGroupError",
    "OutputFileError",
    "ProtocolError",
    "RedisConnectionError",
    "RedisError",
    "ReplyError",
    "ReplyTimeoutError",
    "ResultValueError",
    "ServerBusyError",
    "ServerUnavailableError",
    "WorkerError",
    "WorkloadError",
    "check_misspelt_keys",
    "check_whole",
    "check_wholes",
    "reply_error",
]


class AioRedisMQError(Exception):
    """Root of every error raised here."""

    #: True when the same call may succeed if tried again later.
    retriable: bool = False


class ConfigError(AioRedisMQError):
    """A value a user gave is not allowed.

    The message names where the value came from (`source`, usually a file
    path or a flag), the field, the value and what is allowed, in one line:

        workloads/x.yaml: keyDistributor: 'ROUND_ROBIN' is not allowed;
        expected one of NO_KEY, KEY_ROUND_ROBIN, RANDOM_NANO
    """

    def __init__(
        self,
        source: str,
        field: str | None,
        value: object,
        allowed: str,
    ) -> None:
        self.source = source
        self.field = field
        self.value = value
        self.allowed = allowed
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {value!r} is not allowed; {allowed}")

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        # Keeps the error intact when it crosses from a worker process.
        return type(self), (self.source, self.field, self.value, self.allowed)


class WorkloadError(ConfigError):
    """A workload file is missing, malformed or holds a value not allowed."""


class DriverConfigError(ConfigError):
    """A driver file is missing, malformed or holds a value not allowed."""


class OutputFileError(ConfigError):
    """An output file (result, sidecar, report, comparison) cannot be written.

    Reads `<path>: cannot write the <what> (<reason>)`.
    """

    def __init__(self, path: str, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(path, None, path, f"cannot write the {what} ({reason})")
        Exception.__init__(self, f"{path}: cannot write the {what} ({reason})")

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.source, self.what, self.reason)


class ResultValueError(AioRedisMQError, ValueError):
    """A value in an OMB result's JSON is of the wrong type or out of range.

    Raised while parsing text, where the file is not known: it carries the
    key (`publishRate`, or `publishRate[2]` for one item), the value and what
    is allowed, and whoever read the file turns it into a ConfigError.
    """

    def __init__(self, key: str, value: object, expected: str) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(f"{key}: {value!r} is not allowed; {expected}")

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.key, self.value, self.expected)


class RedisError(AioRedisMQError):
    """Something went wrong talking to the server."""


class RedisConnectionError(RedisError):
    """The connection could not be made or was lost."""

    retriable = True


class ServerUnavailableError(RedisConnectionError):
    """Nothing answers at the address given."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(
            f"cannot reach a Redis server at {address}: {reason}; "
            "start one there, or give another address"
        )

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.address, self.reason)


class ReplyTimeoutError(RedisConnectionError):
    """A reply did not come within the connection's `socket_timeout_s`.

    Blocking reads are allowed their block time on top, so this means a
    server or network that stopped answering, not an idle stream. The
    connection is closed: replies still on their way could no longer be told
    apart. Trying again, on a new connection, may work.
    """


class ReplyError(RedisError):
    """The server answered a command with an error reply."""


class NoGroupError(ReplyError):
    """NOGROUP: the stream key or its consumer group does not exist."""

    retriable = True


class BusyGroupError(ReplyError):
    """BUSYGROUP: the consumer group already exists."""


class ServerBusyError(ReplyError):
    """The server cannot take the command now, though it may soon: LOADING
    (reading its data at start), BUSY (a script running), TRYAGAIN,
    MASTERDOWN, CLUSTERDOWN, READONLY (a failover made it a replica)."""

    retriable = True


#: Error codes of a server that may take the same command a moment later.
BUSY_CODES = ("LOADING", "BUSY ", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY")


class ClusterRedirectError(ReplyError):
    """A cluster still answered MOVED or ASK after the allowed redirects.

    Usually slots are being resharded; the map settles, so retrying later helps.
    """

    retriable = True


class ProtocolError(RedisError):
    """A reply from the server could not be parsed."""


class ClosedError(AioRedisMQError):
    """The object was used after it was closed."""


class CapacityTimeoutError(AioRedisMQError):
    """A producer stayed full (`max_in_flight` unacknowledged) for longer
    than its `capacity_timeout_s`.

    Not a connection error: the server may be perfectly reachable, only
    slower than the senders. Retrying later may help; so may a larger
    `max_in_flight` or fewer senders.
    """

    retriable = True


class WorkerError(AioRedisMQError):
    """A benchmark worker process failed or went away."""


def check_whole(source: str, option: str, value: object, low: int) -> None:
    """Refuse anything but an integer (not a bool) of at least `low`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(source, option, value, f"expected an integer >= {low}")


def check_wholes(source: str, *options: tuple[str, object, int]) -> None:
    """`check_whole` for each (option, value, low) whose value is not None."""
    for option, value, low in options:
        if value is not None:
            check_whole(source, option, value, low)


def check_misspelt_keys(
    source: str,
    given: Iterable[str],
    known: Iterable[str],
    error: type[ConfigError] = ConfigError,
) -> None:
    """Refuse a key that looks like a typo of a known one.

    Unknown keys are otherwise ignored, as OMB ignores them, so a misspelt
    `producerRat` would silently run with the default rate; one letter away
    from a known key is taken as a typo and stops the run instead.
    """
    known_keys = list(known)
    for key in given:
        if key in known_keys:
            continue
        close = difflib.get_close_matches(key, known_keys, n=1, cutoff=0.85)
        if close:
            raise error(source, key, key, f"unknown key; did you mean {close[0]}?")


def reply_error(message: str) -> ReplyError:
    """Build the most specific error for an error reply's text."""
    if message.startswith("NOGROUP"):
        return NoGroupError(message)
    if message.startswith("BUSYGROUP"):
        return BusyGroupError(message)
    if message.startswith(BUSY_CODES):
        return ServerBusyError(message)
    return ReplyError(message)
