"""Bad input gets a clear error and loses nothing; the broker keeps serving everyone else."""

import socket
import struct
import time

import pytest

import petrel_helpers as h
from conftest import is_peer

pytestmark = pytest.mark.skipif(is_peer(), reason="Petrel's limits and error handling")


def _connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.settimeout(10)
    return s


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def _api_versions_v0(correlation_id: int) -> bytes:
    body = struct.pack(">hhih", 18, 0, correlation_id, 4) + b"test"
    return struct.pack(">i", len(body)) + body


def _read_frame(s: socket.socket) -> bytes:
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    return s.recv(size, socket.MSG_WAITALL)


def test_oversized_frame_closes_only_that_connection(broker_factory, topic_name):
    b = broker_factory(sets={"socket.request.max.bytes": "1048576"})
    h.create_topic(b.bootstrap, topic_name)
    other = _connect(b.bootstrap)
    bad = _connect(b.bootstrap)
    bad.sendall(struct.pack(">i", 200 * 1024 * 1024) + b"\x00" * 64)
    assert _closed(bad), "an oversized frame must close the connection"
    # The other connection still works, pipelined requests answered in order.
    other.sendall(_api_versions_v0(1) + _api_versions_v0(2))
    assert struct.unpack(">i", _read_frame(other)[:4])[0] == 1
    assert struct.unpack(">i", _read_frame(other)[:4])[0] == 2
    # And real clients are unaffected.
    h.produce_all(h.producer(b.bootstrap, acks="all"), topic_name, [{"value": b"still-here", "partition": 0}])
    got = h.consume_n(b.bootstrap, topic_name, 1)
    assert [m.value() for m in got] == [b"still-here"]
    other.close()


def test_garbage_and_unknown_apis_close_the_connection_without_harm(broker_factory, topic_name):
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name)
    h.produce_all(h.producer(b.bootstrap, acks="all"), topic_name, [{"value": b"v%d" % i, "partition": 0} for i in range(5)])
    for payload in [
        struct.pack(">i", 10) + struct.pack(">hhi", 999, 0, 7) + b"\x00\x00",  # unknown API key
        struct.pack(">i", 10) + struct.pack(">hhi", 0, 99, 7) + b"\x00\x00",   # Produce v99
        struct.pack(">i", 10) + b"\xff" * 10,                                   # garbage header
        struct.pack(">i", -5),                                                  # negative size
    ]:
        s = _connect(b.bootstrap)
        s.sendall(payload)
        assert _closed(s), payload
        s.close()
    # An ApiVersions from the future is answered in the v0 layout with UNSUPPORTED_VERSION (KIP-511).
    s = _connect(b.bootstrap)
    body = struct.pack(">hhih", 18, 99, 42, 4) + b"test" + b"\x00"  # header v2: empty tagged fields
    s.sendall(struct.pack(">i", len(body)) + body)
    frame = _read_frame(s)
    correlation, error = struct.unpack(">ih", frame[:6])
    assert (correlation, error) == (42, 35)
    s.close()
    time.sleep(0.2)
    got = h.consume_n(b.bootstrap, topic_name, 5)
    assert [m.value() for m in got] == [b"v%d" % i for i in range(5)]
