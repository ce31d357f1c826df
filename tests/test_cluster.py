"""Cluster routing against a real three-primary cluster (see cluster_support)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
from cluster_support import node_command, slot_map

from aioredismq.cluster import MAX_REDIRECTS, ClusterConnections, key_slot
from aioredismq.connection import (
    Connection,
    ConnectionSettings,
    encode_command,
    is_reply_error,
    raise_for_reply,
)
from aioredismq.errors import (
    ClosedError,
    ClusterRedirectError,
    ReplyError,
    ServerUnavailableError,
)
from aioredismq.keys import dead_letter_key, stream_key
from runner.server import free_port

ENTRY_ID = re.compile(rb"\d+-\d+")


@pytest.fixture
async def cluster(
    cluster_seeds: list[ConnectionSettings],
) -> AsyncIterator[ClusterConnections]:
    for seed in cluster_seeds:
        node_command(seed.port, "FLUSHALL")
    connections = await ClusterConnections.connect(cluster_seeds)
    yield connections
    await connections.close()


def owner_port(seed: ConnectionSettings, key: str) -> int:
    """The port of the primary owning `key`, as the server itself says."""
    slot = key_slot(key)
    return next(
        port for first, last, port in slot_map(seed.port) if first <= slot <= last
    )


def node_id(port: int) -> str:
    return str(node_command(port, "CLUSTER", "MYID").decode())


@contextmanager
def slot_moved(ports: list[int], slot: int, source: int, target: int) -> Iterator[None]:
    """Give an empty `slot` to `target` on every node; give it back after."""
    # Telling every node directly, rather than waiting for gossip, makes the
    # move visible everywhere at once.
    for port in [target, source, *ports]:
        node_command(port, "CLUSTER", "SETSLOT", slot, "NODE", node_id(target))
    try:
        yield
    finally:
        node_command(target, "FLUSHALL")
        for port in [source, target, *ports]:
            node_command(port, "CLUSTER", "SETSLOT", slot, "NODE", node_id(source))


def test_key_slot_rules() -> None:
    assert key_slot("foo") == 12182
    assert key_slot("123456789") == 0x31C3  # the XMODEM check value, < 16384
    assert key_slot(b"foo") == key_slot("foo")
    # Only the first {...} counts, and only when something is inside it.
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("{user1000}.following") == key_slot("user1000")
    assert key_slot("foo{bar}{zap}") == key_slot("bar")
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")
    assert key_slot("foo{}{bar}") not in (key_slot("bar"), key_slot("{bar"))
    assert key_slot("{}") != key_slot("")


def test_key_slot_matches_server(cluster_seeds: list[ConnectionSettings]) -> None:
    port = cluster_seeds[0].port
    keys = ["foo", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{", "}{x}", ""]
    keys += [stream_key("orders", 7), dead_letter_key("orders", 7)]
    for key in keys:
        assert key_slot(key) == node_command(port, "CLUSTER", "KEYSLOT", key), key
    binary = b"\xff\x00{\x80\x01}tail"
    assert key_slot(binary) == node_command(port, "CLUSTER", "KEYSLOT", binary)


async def test_connect_finds_every_primary(
    cluster: ClusterConnections, cluster_seeds: list[ConnectionSettings]
) -> None:
    assert cluster.nodes == sorted((s.host, s.port) for s in cluster_seeds)
    seed = cluster_seeds[0]
    for key in ("foo", "bar", "{orders:3}"):
        assert cluster.settings_for_key(key).port == owner_port(seed, key)
        conn = cluster.connection_for_key(key)
        assert conn.settings.port == owner_port(seed, key)
    # A dead seed is skipped when a later one answers.
    dead = ConnectionSettings(port=free_port(), connect_timeout_s=1.0)
    again = await ClusterConnections.connect([dead, seed])
    try:
        assert again.nodes == cluster.nodes
    finally:
        await again.close()


async def test_connect_errors(settings: ConnectionSettings) -> None:
    with pytest.raises(ServerUnavailableError):
        await ClusterConnections.connect([ConnectionSettings(port=free_port())])
    # A server that is not in cluster mode says so.
    with pytest.raises(ReplyError, match="(?i)cluster"):
        await ClusterConnections.connect([settings])


async def test_xadd_routed_over_all_nodes(
    cluster: ClusterConnections, cluster_seeds: list[ConnectionSettings]
) -> None:
    keys = [f"stream-{i}" for i in range(100)]
    assert {cluster.settings_for_key(key).port for key in keys} == {
        seed.port for seed in cluster_seeds
    }
    # Key i gets i % 3 + 1 entries, interleaved, in one call.
    commands = [
        (key, encode_command("XADD", key, "*", "n", round_))
        for round_ in range(3)
        for i, key in enumerate(keys)
        if i % 3 >= round_
    ]
    replies = await cluster.request_by_key(commands)
    assert all(isinstance(r, bytes) and ENTRY_ID.fullmatch(r) for r in replies)
    for i, key in enumerate(keys):
        port = owner_port(cluster_seeds[0], key)
        assert node_command(port, "XLEN", key) == i % 3 + 1
        entries = node_command(port, "XRANGE", key, "-", "+")
        assert [fields[b"n"] for _, fields in entries] == [
            str(n).encode() for n in range(i % 3 + 1)
        ]
    lengths = await cluster.request_by_key(
        [(k, encode_command("XLEN", k)) for k in keys]
    )
    assert lengths == [i % 3 + 1 for i in range(100)]


async def test_b07_two_streams_in_different_slots(cluster: ClusterConnections) -> None:
    streams = ["orders", "payments"]
    assert key_slot("orders") != key_slot("payments")
    setup = [
        (s, encode_command("XGROUP", "CREATE", s, "g", "$", "MKSTREAM"))
        for s in streams
    ]
    assert await cluster.request_by_key(setup) == [b"OK", b"OK"]
    produce = [
        (s, encode_command("XADD", s, "*", "payload", f"{s}-{n}"))
        for n in range(100)
        for s in streams
    ]
    assert not any(map(is_reply_error, await cluster.request_by_key(produce)))

    # One XREADGROUP over both keys is what fails on a cluster...
    naive = encode_command(
        "XREADGROUP", "GROUP", "g", "c", "STREAMS", *streams, ">", ">"
    )
    (reply,) = await cluster.connection_for_key("orders").request(naive, 1)
    assert is_reply_error(reply) and str(reply).startswith("CROSSSLOT")

    # ...so reads go one per slot, routed by key, still in one call.
    reads = [
        (
            s,
            encode_command(
                "XREADGROUP", "GROUP", "g", "c", "COUNT", 500, "STREAMS", s, ">"
            ),
        )
        for s in streams
    ]
    got: dict[str, list[bytes]] = {}
    for reply in await cluster.request_by_key(reads):
        assert not is_reply_error(reply), reply
        [(name, entries)] = raise_for_reply(reply)
        got[name.decode()] = [fields[1] for _, fields in entries]
    assert got == {s: [f"{s}-{n}".encode() for n in range(100)] for s in streams}


async def test_moved_refreshes_the_map(
    cluster: ClusterConnections, cluster_seeds: list[ConnectionSettings]
) -> None:
    ports = [seed.port for seed in cluster_seeds]
    key = "moving-key"
    source = owner_port(cluster_seeds[0], key)
    target = next(port for port in ports if port != source)
    with slot_moved(ports, key_slot(key), source, target):
        assert cluster.settings_for_key(key).port == source  # map is stale now
        (reply,) = await cluster.request_by_key(
            [(key, encode_command("XADD", key, "*", "f", "v"))]
        )
        assert ENTRY_ID.fullmatch(reply)
        assert cluster.settings_for_key(key).port == target
        assert node_command(target, "XLEN", key) == 1


async def test_ask_goes_to_the_importing_node(
    cluster: ClusterConnections, cluster_seeds: list[ConnectionSettings]
) -> None:
    ports = [seed.port for seed in cluster_seeds]
    key = "asked-key"
    slot = key_slot(key)
    source = owner_port(cluster_seeds[0], key)
    target = next(port for port in ports if port != source)
    node_command(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(source))
    node_command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(target))
    conn = await Connection.open(ConnectionSettings(port=target))
    try:
        (reply,) = await cluster.request_by_key(
            [(key, encode_command("XADD", key, "*", "f", "v"))]
        )
        assert ENTRY_ID.fullmatch(reply)
        # ASK is one-off: the slot still belongs to the source.
        assert cluster.settings_for_key(key).port == source
        asking = encode_command("ASKING")
        found = await conn.request(asking + encode_command("XLEN", key), 2)
        assert found == [b"OK", 1]
        await conn.request(asking + encode_command("DEL", key), 2)
    finally:
        await conn.close()
        for port in (source, target):
            node_command(port, "CLUSTER", "SETSLOT", slot, "STABLE")


async def test_endless_redirects_raise(
    cluster: ClusterConnections, cluster_seeds: list[ConnectionSettings]
) -> None:
    # The source sends ASK to a node that is not importing the slot, which
    # answers MOVED back to the source: a loop only the bound ends.
    ports = [seed.port for seed in cluster_seeds]
    key = "ping-pong"
    slot = key_slot(key)
    source = owner_port(cluster_seeds[0], key)
    target = next(port for port in ports if port != source)
    node_command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(target))
    try:
        command = encode_command("XADD", key, "*", "f", "v")
        with pytest.raises(ClusterRedirectError, match=f"after {MAX_REDIRECTS}") as err:
            await cluster.request_by_key(
                [("other", encode_command("PING")), (key, command)]
            )
        assert err.value.retriable
    finally:
        node_command(source, "CLUSTER", "SETSLOT", slot, "STABLE")


async def test_dead_letter_and_ack_in_one_transaction(
    cluster: ClusterConnections,
) -> None:
    partition, dead = stream_key("orders", 1), dead_letter_key("orders", 1)
    assert key_slot(partition) == key_slot(dead)
    await cluster.request_by_key(
        [
            (
                partition,
                encode_command("XGROUP", "CREATE", partition, "g", "$", "MKSTREAM"),
            ),
            (partition, encode_command("XADD", partition, "*", "payload", "bad")),
        ]
    )
    read = encode_command("XREADGROUP", "GROUP", "g", "c", "STREAMS", partition, ">")
    [[[_, [(entry_id, fields)]]]] = await cluster.request_by_key([(partition, read)])

    conn = cluster.connection_for_key(partition)
    assert conn is cluster.connection_for_key(dead)
    transaction = [
        encode_command("MULTI"),
        encode_command("XADD", dead, "*", "id", entry_id, *fields),
        encode_command("XACK", partition, "g", entry_id),
        encode_command("EXEC"),
    ]
    replies = await conn.request(b"".join(transaction), len(transaction))
    assert replies[:3] == [b"OK", b"QUEUED", b"QUEUED"]
    dead_id, acked = raise_for_reply(replies[3])
    assert ENTRY_ID.fullmatch(dead_id) and acked == 1
    lengths = await cluster.request_by_key(
        [
            (dead, encode_command("XLEN", dead)),
            (partition, encode_command("XPENDING", partition, "g")),
        ]
    )
    assert lengths[0] == 1 and lengths[1][0] == 0


async def test_closed_cluster_refuses_requests(
    cluster_seeds: list[ConnectionSettings],
) -> None:
    connections = await ClusterConnections.connect(cluster_seeds)
    await connections.close()
    with pytest.raises(ClosedError):
        await connections.request_by_key([("k", encode_command("GET", "k"))])


def test_unknown_node_host_means_the_reached_host() -> None:
    # CLUSTER SLOTS gives NULL, "" or "?" for a node that knows no name for
    # itself; the client then uses the host it asked.
    connections = ClusterConnections([ConnectionSettings(host="10.1.2.3", port=1)])
    connections._apply_slot_map(
        [
            [0, 99, [None, 7000, b"a"]],
            [100, 199, [b"", 7001, b"b"]],
            [200, 16383, [b"?", 7002, b"c"], [b"10.9.9.9", 7003, b"d"]],
        ],
        "10.1.2.3",
    )
    assert connections.nodes == [
        ("10.1.2.3", 7000),
        ("10.1.2.3", 7001),
        ("10.1.2.3", 7002),
    ]
    assert connections.settings_for_key("foo").host == "10.1.2.3"
