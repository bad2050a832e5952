"""Kafka's connection quotas against the real binary with raw sockets: `max.connections`,
`max.connections.per.ip` (+ overrides) close over-limit connections right after accept, and
`connections.max.idle.ms` closes silent ones; the broker keeps serving everyone else."""

import socket
import struct
import time
import urllib.request

import pytest

import petrel_helpers as h
from conftest import _free_port, is_peer

pytestmark = pytest.mark.skipif(is_peer(), reason="Petrel's connection limits")


def _settle() -> None:
    """The harness's readiness probe (connect, close) holds a slot until the broker sees its EOF."""
    time.sleep(0.5)


def _connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.settimeout(10)
    return s


def _api_versions(s: socket.socket, correlation_id: int) -> bool:
    """True if the connection answers an ApiVersions v0; False if the broker closed it."""
    body = struct.pack(">hhih", 18, 0, correlation_id, 4) + b"test"
    try:
        s.sendall(struct.pack(">i", len(body)) + body)
        head = s.recv(4, socket.MSG_WAITALL)
        if len(head) < 4:
            return False
        size = struct.unpack(">i", head)[0]
        payload = s.recv(size, socket.MSG_WAITALL)
        return struct.unpack(">i", payload[:4])[0] == correlation_id
    except (ConnectionResetError, BrokenPipeError):
        return False


def _closed_by_peer(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def _metric(port: int, line_prefix: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{line_prefix} not in scrape")


def test_max_connections_per_ip(broker_factory):
    mport = _free_port()
    b = broker_factory({"max.connections.per.ip": "3", "metrics.listen": f"127.0.0.1:{mport}"})
    _settle()
    held = [_connect(b.bootstrap) for _ in range(3)]
    for i, s in enumerate(held):
        assert _api_versions(s, i + 1)
    extra = _connect(b.bootstrap)  # the kernel accepts; the broker closes it unread
    assert _closed_by_peer(extra, 5), "the 4th connection from 127.0.0.1 was not closed"
    extra.close()
    # The held ones still work; closing one frees a slot.
    assert _api_versions(held[0], 10)
    held.pop().close()
    deadline = time.monotonic() + 5
    while True:
        s = _connect(b.bootstrap)
        if _api_versions(s, 11):
            held.append(s)
            break
        s.close()
        assert time.monotonic() < deadline, "no slot after closing a connection"
        time.sleep(0.05)
    assert _metric(mport, 'petrel_connections_refused_total{reason="max.connections.per.ip"}') >= 1
    assert _metric(mport, "petrel_active_connections") == 3
    for s in held:
        s.close()


def test_max_connections_per_ip_overrides(broker_factory):
    b = broker_factory({"max.connections.per.ip": "1", "max.connections.per.ip.overrides": "127.0.0.1:4"})
    _settle()
    held = [_connect(b.bootstrap) for _ in range(4)]
    for i, s in enumerate(held):
        assert _api_versions(s, i + 1), "the override allows 4 connections from 127.0.0.1"
    extra = _connect(b.bootstrap)
    assert _closed_by_peer(extra, 5)
    for s in held + [extra]:
        s.close()


def test_max_connections_and_real_client(broker_factory, topic_name):
    b = broker_factory({"max.connections": "4"})
    _settle()
    held = [_connect(b.bootstrap) for _ in range(4)]
    for i, s in enumerate(held):
        assert _api_versions(s, i + 1)
    extra = _connect(b.bootstrap)
    assert _closed_by_peer(extra, 5), "the 5th connection was not closed"
    extra.close()
    # Free the slots: a real client (which needs a couple of connections) works again.
    for s in held:
        s.close()
    time.sleep(0.2)
    h.create_topic(b.bootstrap, topic_name)
    h.produce_all(h.producer(b.bootstrap), topic_name, [{"value": b"ok"}])
    assert h.kv(h.consume_n(b.bootstrap, topic_name, 1)) == [(None, b"ok")]


def test_idle_connections_are_closed(broker_factory):
    b = broker_factory({"connections.max.idle.ms": "1000"})
    idle = _connect(b.bootstrap)
    busy = _connect(b.bootstrap)
    start = time.monotonic()
    closed_at = None
    n = 0
    while time.monotonic() - start < 4:
        n += 1
        assert _api_versions(busy, n), "a connection with traffic every 200 ms was closed"
        if closed_at is None and _closed_by_peer(idle, 0.2):
            closed_at = time.monotonic() - start
    assert closed_at is not None, "the idle connection was not closed within 4 s"
    assert 0.8 <= closed_at <= 2.5, closed_at
    idle.close()
    busy.close()
