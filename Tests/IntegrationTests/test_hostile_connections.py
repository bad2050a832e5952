"""Hostile connections can't hurt the broker: stalled huge frames, the open-files limit,
partition counts meant to exhaust it. Raw sockets and real clients against the real binary."""

import os
import resource
import socket
import struct
import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewPartitions, NewTopic

import petrel_helpers as h
from conftest import is_peer

pytestmark = pytest.mark.skipif(is_peer(), reason="Petrel's limits")

MIB = 1024 * 1024


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 (1-based) of the whole line; after "pid (comm)" they are 12 and 13.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _connect(bootstrap: str, timeout: float = 10) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s


def _api_versions_v0(correlation_id: int) -> bytes:
    body = struct.pack(">hhih", 18, 0, correlation_id, 4) + b"test"
    return struct.pack(">i", len(body)) + body


def _answers_api_versions(bootstrap: str) -> bool:
    try:
        with _connect(bootstrap, timeout=5) as s:
            s.sendall(_api_versions_v0(7))
            size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
            body = s.recv(size, socket.MSG_WAITALL)
            return struct.unpack(">i", body[:4])[0] == 7
    except OSError:
        return False


def _produce_and_consume(bootstrap: str, topic: str, value: bytes) -> None:
    [msg] = h.produce_all(h.producer(bootstrap, acks="all", message_timeout_ms=10000), topic,
                          [{"value": value, "partition": 0}], timeout=10)
    got = h.consume_n(bootstrap, topic, 1, offset=msg.offset())
    assert [m.value() for m in got] == [value]


class _StalledUpload(threading.Thread):
    """Announces a 100 MiB request, sends up to ~99 MiB of it (as far as the broker reads), then
    stalls; records how much it sent and when the broker closed the connection."""

    def __init__(self, bootstrap: str, frame: int, send: int):
        super().__init__(daemon=True)
        self.sock = _connect(bootstrap)
        self.frame, self.send = frame, send
        self.sent = 0
        self.last_send = None
        self.closed_at = None
        self.stop = threading.Event()

    def run(self):
        s = self.sock
        chunk = b"\x00" * MIB
        try:
            s.settimeout(3)
            s.sendall(struct.pack(">i", self.frame))
            while self.sent < self.send:
                n = min(MIB, self.send - self.sent)
                s.sendall(chunk[:n])  # a timeout here means the broker stopped reading: stall
                self.sent += n
                self.last_send = time.monotonic()
        except socket.timeout:
            pass
        except OSError:
            self.closed_at = time.monotonic()
            return
        s.settimeout(0.2)
        while not self.stop.is_set():
            try:
                if s.recv(1) == b"":
                    self.closed_at = time.monotonic()
                    return
            except socket.timeout:
                continue
            except OSError:
                self.closed_at = time.monotonic()
                return


def test_stalled_huge_frames_are_bounded_by_queued_max_request_bytes(broker_factory, topic_name):
    budget = 128 * MIB
    timeout_ms = 2000
    b = broker_factory(sets={"queued.max.request.bytes": str(budget), "request.read.timeout.ms": str(timeout_ms)})
    h.create_topic(b.bootstrap, topic_name)
    _produce_and_consume(b.bootstrap, topic_name, b"before")
    pid = b.proc.pid
    baseline = _rss_bytes(pid)

    uploads = [_StalledUpload(b.bootstrap, frame=100 * MIB, send=99 * MIB) for _ in range(16)]
    peak = baseline
    start = time.monotonic()
    for u in uploads:
        u.start()
    served = False
    try:
        # Connections take turns with the budget, each then waiting out the read timeout: generous
        # on a loaded machine, and the loop ends as soon as all are closed.
        while time.monotonic() - start < 60:
            peak = max(peak, _rss_bytes(pid))
            if not served and time.monotonic() - start > 1.5:
                # A normal client is served while the uploads hold the budget.
                t0 = time.monotonic()
                _produce_and_consume(b.bootstrap, topic_name, b"during")
                served_in = time.monotonic() - t0
                served = True
            if all(u.closed_at is not None for u in uploads):
                break
            time.sleep(0.05)
        peak = max(peak, _rss_bytes(pid))
    finally:
        for u in uploads:
            u.stop.set()
    sent = sum(u.sent for u in uploads)
    print(f"baseline RSS {baseline / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB, clients sent {sent / MIB:.0f} MiB,"
          f" normal client served in {served_in:.2f}s")
    assert served
    # Memory: the budget, plus the one frame allowed to overdraw it, plus what one socket read burst
    # per connection may bring in past the limit: at most maxMessagesPerRead (16) reads of the
    # allocator's largest buffer (1 MiB) each, 16 connections (without the budget: ~1.6 GiB).
    limit = baseline + budget + 100 * MIB + 16 * 16 * MIB
    assert peak < limit, f"peak RSS {peak / MIB:.0f} MiB above {limit / MIB:.0f} MiB"
    # Every stalled connection is closed after the read timeout, not before.
    open_ones = [i for i, u in enumerate(uploads) if u.closed_at is None]
    assert not open_ones, f"connections {open_ones} were never closed"
    for u in uploads:
        if u.last_send is not None:
            assert u.closed_at - u.last_send >= timeout_ms / 1000 * 0.9, "closed before request.read.timeout.ms"
    assert "request.read.timeout.ms" in b.output()
    # The broker is still fine and the memory is given back to the budget (new uploads read on).
    _produce_and_consume(b.bootstrap, topic_name, b"after")
    assert _answers_api_versions(b.bootstrap)


def test_frames_above_the_limit_or_negative_still_close_only_that_connection(broker_factory):
    b = broker_factory(sets={"queued.max.request.bytes": str(128 * MIB)})
    for size in (200 * MIB, -5):
        bad = _connect(b.bootstrap)
        bad.sendall(struct.pack(">i", size) + b"\x00" * 16)
        assert bad.recv(1) == b""
        bad.close()
    assert _answers_api_versions(b.bootstrap)


def test_accept_backs_off_at_the_open_files_limit(broker_factory, topic_name):
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name)
    pid = b.proc.pid
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 16, hard))
    clients = []
    try:
        for _ in range(64):  # more than the free descriptors; the rest wait in the listen backlog
            clients.append(_connect(b.bootstrap))
        time.sleep(1.0)
        assert len(os.listdir(f"/proc/{pid}/fd")) >= in_use + 14, "the broker never reached its open-files limit"
        cpu0, t0 = _cpu_seconds(pid), time.monotonic()
        time.sleep(2.0)
        busy = (_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        print(f"broker CPU at the open-files limit: {busy * 100:.1f}% of a core")
        assert busy < 0.10, f"broker uses {busy * 100:.0f}% of a core while it cannot accept"
        assert "open-files limit reached" in b.output()
    finally:
        for c in clients:
            c.close()
    # Once descriptors are free again it accepts and serves (backoff is at most 1 s).
    deadline = time.monotonic() + 10
    while not _answers_api_versions(b.bootstrap):
        assert time.monotonic() < deadline, "broker did not serve again after connections closed"
        time.sleep(0.2)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
    _produce_and_consume(b.bootstrap, topic_name, b"after-emfile")


def _create_topics_v2(bootstrap: str, name: str, partitions: int) -> int:
    """Sends CreateTopics v2 for one topic; returns its error code."""
    topic = struct.pack(">h", len(name)) + name.encode() + struct.pack(">ihii", partitions, 1, 0, 0)
    body = struct.pack(">hhih", 19, 2, 5, 4) + b"test" + struct.pack(">i", 1) + topic + struct.pack(">i?", 10000, False)
    with _connect(bootstrap) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        resp = s.recv(size, socket.MSG_WAITALL)
    correlation, _throttle, count, name_len = struct.unpack(">iiih", resp[:14])
    assert correlation == 5 and count == 1 and resp[14:14 + name_len] == name.encode()
    return struct.unpack(">h", resp[14 + name_len:16 + name_len])[0]


def _policy_error(futures: dict, name: str) -> KafkaError:
    with pytest.raises(KafkaException) as e:
        futures[name].result(10)
    return e.value.args[0]


def test_partition_caps_per_request_and_per_broker(broker_factory):
    b = broker_factory(sets={"max.partitions.per.request": "100", "max.broker.partitions": "120"})
    a = h.admin(b.bootstrap)

    # One request may not add up to more than max.partitions.per.request: the whole request fails.
    fs = a.create_topics([NewTopic("cap-a", 60, 1), NewTopic("cap-b", 41, 1)], request_timeout=10)
    for name in ("cap-a", "cap-b"):
        err = _policy_error(fs, name)
        assert err.code() == KafkaError.POLICY_VIOLATION, err
        assert "Excessively large number of partitions per request" in err.str()
    # 2^31-1 partitions (hand-built CreateTopics v2: clients refuse to send it) is refused at once.
    t0 = time.monotonic()
    assert _create_topics_v2(b.bootstrap, "cap-huge", 2**31 - 1) == 44  # POLICY_VIOLATION
    assert time.monotonic() - t0 < 5
    assert not {"cap-a", "cap-b", "cap-huge"} & set(a.list_topics(timeout=10).topics)

    # The broker-wide cap.
    a.create_topics([NewTopic("cap-a", 100, 1)], request_timeout=10)["cap-a"].result(10)
    err = _policy_error(a.create_topics([NewTopic("cap-b", 30, 1)], request_timeout=10), "cap-b")
    assert err.code() == KafkaError.POLICY_VIOLATION and "max.broker.partitions=120" in err.str(), err
    a.create_topics([NewTopic("cap-b", 20, 1)], request_timeout=10)["cap-b"].result(10)

    # CreatePartitions: the same caps on the partitions added.
    err = _policy_error(a.create_partitions([NewPartitions("cap-b", 21)], request_timeout=10), "cap-b")
    assert err.code() == KafkaError.POLICY_VIOLATION and "max.broker.partitions" in err.str(), err
    err = _policy_error(a.create_partitions([NewPartitions("cap-a", 201)], request_timeout=10), "cap-a")
    assert err.code() == KafkaError.POLICY_VIOLATION and "per request" in err.str(), err
    md = a.list_topics(timeout=10).topics
    assert len(md["cap-a"].partitions) == 100 and len(md["cap-b"].partitions) == 20
