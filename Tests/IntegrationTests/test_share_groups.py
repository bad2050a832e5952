"""KIP-932 share groups with confluent-kafka's ShareConsumer (librdkafka 2.16, ShareGroupHeartbeat /
ShareFetch / ShareAcknowledge v1).

Several members share one partition and get disjoint records that together are all of them; a
released record comes back with a higher delivery count; the records of a member killed with
SIGKILL come back after the acquisition lock (group.share.record.lock.duration.ms) runs out; a
rejected record and a record released group.share.delivery.count.limit times are archived; a broker
restart, clean or kill -9, keeps what was acknowledged (`__share_group_state`); `petrel groups list` and
`describe` show the share group with its start offset. AlterShareGroupOffsets / DeleteShareGroupOffsets
v0 (hand-built frames: no installed client has them) move or drop a share-partition's state of an
empty group, persisted across restarts; `petrel groups reset-offsets` alters a share group.
"""

import json
import os
import socket
import struct
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from confluent_kafka import AcknowledgeType, ShareConsumer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from conftest import petrel_bin, petrel_only
import petrel_helpers as h

pytestmark = petrel_only("share groups are tested against Petrel")

LOCK_MS = 2000
SETS = {
    "group.share.min.record.lock.duration.ms": "1000",
    "group.share.record.lock.duration.ms": str(LOCK_MS),
    "group.share.heartbeat.interval.ms": "500",
    "group.share.delivery.count.limit": "3",
}


@pytest.fixture(scope="module")
def share_broker(tmp_path_factory):
    b = h.start_broker(tmp_path_factory, SETS, name="share-broker")
    yield b
    b.stop()


def names():
    tag = uuid.uuid4().hex[:8]
    return f"share-{tag}", f"sg-{tag}"


def start_at_earliest(bootstrap, group):
    """share.auto.offset.reset=earliest for the group (Kafka's default is latest)."""
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    a = h.admin(bootstrap)  # kept alive until the futures are done
    for future in a.incremental_alter_configs([resource]).values():
        future.result(timeout=10)


def share_consumer(bootstrap, group, topic, **extra):
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "socket.timeout.ms": 10000, "log_level": 3}
    conf.update(extra)
    c = ShareConsumer(conf)
    c.subscribe([topic])
    return c


def produce(bootstrap, topic, n, start=0):
    p = h.producer(bootstrap)
    for i in range(start, start + n):
        p.produce(topic, value=f"m{i}".encode(), partition=0)
    assert p.flush(10) == 0


def records(msgs):
    out = []
    for m in msgs:
        assert m.error() is None, m.error()
        out.append(m)
    return out


def test_members_share_one_partition(share_broker):
    bootstrap = share_broker.bootstrap
    topic, group = names()
    h.create_topic(bootstrap, topic, partitions=1)
    start_at_earliest(bootstrap, group)
    produce(bootstrap, topic, 200)
    members = [share_consumer(bootstrap, group, topic, **{"max.poll.records": 10}) for _ in range(3)]
    got = [[] for _ in members]
    deadline = time.time() + 20
    try:
        while sum(len(g) for g in got) < 200 and time.time() < deadline:
            for i, c in enumerate(members):
                got[i] += [m.offset() for m in records(c.poll(0.3))]
        for c in members:
            c.commit_sync()
    finally:
        for c in members:
            c.close()
    seen = [o for g in got for o in g]
    assert sorted(seen) == list(range(200)), "every record exactly once across the members"
    assert sum(1 for g in got if g) >= 2, f"the partition was shared: {[len(g) for g in got]}"


def test_released_record_is_redelivered(share_broker):
    bootstrap = share_broker.bootstrap
    topic, group = names()
    h.create_topic(bootstrap, topic, partitions=1)
    start_at_earliest(bootstrap, group)
    produce(bootstrap, topic, 5)
    c = share_consumer(bootstrap, group, topic, **{"share.acknowledgement.mode": "explicit"})
    try:
        first = []
        deadline = time.time() + 15
        while not first and time.time() < deadline:
            first = records(c.poll(1.0))
        assert first and first[0].offset() == 0
        assert all(m.delivery_count() == 1 for m in first)
        for m in first:
            c.acknowledge(m, AcknowledgeType.RELEASE if m.offset() == 2 else AcknowledgeType.ACCEPT)
        c.commit_sync()
        again = []
        deadline = time.time() + 10
        while not again and time.time() < deadline:
            again = records(c.poll(1.0))
        assert [(m.offset(), m.delivery_count()) for m in again if m.offset() == 2] == [(2, 2)]
        for m in again:
            c.acknowledge(m, AcknowledgeType.ACCEPT)
        c.commit_sync()
        assert not records(c.poll(1.5)), "accepted records are not delivered again"
    finally:
        c.close()


KILLED_MEMBER = textwrap.dedent("""
    import sys, time
    from confluent_kafka import ShareConsumer
    c = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "log_level": 3,
                       "share.acknowledgement.mode": "explicit"})
    c.subscribe([sys.argv[3]])
    deadline = time.time() + 20
    while time.time() < deadline:
        msgs = [m for m in c.poll(1.0) if m.error() is None]
        if msgs:
            print(" ".join(str(m.offset()) for m in msgs), flush=True)
            time.sleep(60)  # holds the records until SIGKILL
""")


def test_killed_members_records_come_back_after_the_lock(share_broker):
    bootstrap = share_broker.bootstrap
    topic, group = names()
    h.create_topic(bootstrap, topic, partitions=1)
    start_at_earliest(bootstrap, group)
    produce(bootstrap, topic, 4)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, bootstrap, group, topic], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        held = [int(x) for x in line.split()]
        assert held == [0, 1, 2, 3], line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    killed_at = time.time()
    c = share_consumer(bootstrap, group, topic)
    try:
        got = []
        deadline = time.time() + 15
        while len(got) < 4 and time.time() < deadline:
            got += records(c.poll(0.5))
        waited = time.time() - killed_at
        assert sorted(m.offset() for m in got) == [0, 1, 2, 3]
        assert all(m.delivery_count() == 2 for m in got), [m.delivery_count() for m in got]
        assert waited < LOCK_MS / 1000 + 8, f"redelivered {waited:.1f}s after the kill"
        c.commit_sync()
    finally:
        c.close()


def test_poison_records_are_archived(share_broker):
    bootstrap = share_broker.bootstrap
    topic, group = names()
    h.create_topic(bootstrap, topic, partitions=1)
    start_at_earliest(bootstrap, group)
    produce(bootstrap, topic, 3)
    c = share_consumer(bootstrap, group, topic, **{"share.acknowledgement.mode": "explicit"})
    deliveries = {}
    try:
        deadline = time.time() + 20
        quiet_since = None
        while time.time() < deadline:
            msgs = records(c.poll(0.5))
            for m in msgs:
                deliveries.setdefault(m.offset(), []).append(m.delivery_count())
                # 0 is rejected at once, 1 is released every time (poison), 2 is accepted.
                kind = {0: AcknowledgeType.REJECT, 1: AcknowledgeType.RELEASE}.get(m.offset(), AcknowledgeType.ACCEPT)
                c.acknowledge(m, kind)
            if msgs:
                c.commit_sync()
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.time()
            elif time.time() - quiet_since > 2.5:
                break
    finally:
        c.close()
    assert deliveries[0] == [1], "a rejected record is archived"
    assert deliveries[2] == [1]
    # group.share.delivery.count.limit=3: delivered three times, then archived.
    assert deliveries[1] == [1, 2, 3], deliveries


@pytest.mark.parametrize("how", ["clean", "kill -9"])
def test_restart_keeps_acknowledged_state(tmp_path_factory, how):
    b = h.start_broker(tmp_path_factory, SETS, name="share-restart")
    try:
        bootstrap = b.bootstrap
        topic, group = names()
        h.create_topic(bootstrap, topic, partitions=1)
        start_at_earliest(bootstrap, group)
        produce(bootstrap, topic, 10)
        c = share_consumer(bootstrap, group, topic)
        got = []
        deadline = time.time() + 15
        while len(got) < 10 and time.time() < deadline:
            got += [m.offset() for m in records(c.poll(0.5))]
        c.commit_sync()
        c.close()
        assert sorted(got) == list(range(10))
        if how == "clean":
            b.restart()
        else:
            # The acknowledgements were answered after their snapshot was appended.
            port = b.port
            b.stop(signal.SIGKILL)
            b.start(port)
        bootstrap = b.bootstrap
        produce(bootstrap, topic, 5, start=10)
        c = share_consumer(bootstrap, group, topic)
        after = []
        try:
            deadline = time.time() + 15
            while len(after) < 5 and time.time() < deadline:
                after += [m.offset() for m in records(c.poll(0.5))]
            after += [m.offset() for m in records(c.poll(1.0))]
            c.commit_sync()
        finally:
            c.close()
        assert sorted(after) == list(range(10, 15)), "accepted records are not redelivered after a restart"
        out = subprocess.run([petrel_bin(), "groups", "list", "--bootstrap", bootstrap], capture_output=True, text=True, timeout=20)
        assert group in out.stdout and "share" in out.stdout, out.stdout + out.stderr
        out = subprocess.run([petrel_bin(), "groups", "describe", group, "--json", "--bootstrap", bootstrap],
                             capture_output=True, text=True, timeout=20)
        described = json.loads(out.stdout)
        assert described["groupProtocol"] == "share" and described["state"] == "Empty", described
        # DescribeShareGroupOffsets: everything up to 15 was accepted, nothing is left.
        assert [(o["topic"], o["partition"], o["committed"], o["lag"]) for o in described["offsets"]] == [(topic, 0, 15, 0)]
    finally:
        b.stop()


# --- AlterShareGroupOffsets (91) / DeleteShareGroupOffsets (92) v0: flexible, request header v2.

def _uvarint(n):
    out = b""
    while True:
        if n < 0x80:
            return out + bytes([n])
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7


def _cstr(text):
    data = text.encode()
    return _uvarint(len(data) + 1) + data


def _carray(items):
    return _uvarint(len(items) + 1) + b"".join(items)


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value[0] if len(value) == 1 else value

    def uvarint(self):
        shift = value = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def cstr(self):
        n = self.uvarint() - 1
        if n < 0:
            return None
        text = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return text

    def tags(self):
        assert self.uvarint() == 0


def _call(bootstrap, api_key, body):
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    frame = struct.pack(">hhi", api_key, 0, 91) + struct.pack(">h", 11) + b"share-admin" + b"\x00" + body
    with socket.create_connection((host, int(port)), timeout=15) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        data = s.recv(size, socket.MSG_WAITALL)
    r = _Reader(data)
    assert r.take(">i") == 91
    r.tags()  # response header v1
    return r


def _partitions(r):
    out = []
    for _ in range(r.uvarint() - 1):
        name = r.cstr()
        r.take(">16s")
        for _ in range(r.uvarint() - 1):
            index, code = r.take(">ih")
            r.cstr()
            r.tags()
            out.append((name, index, code))
        r.tags()
    return out


def alter_share_offsets(bootstrap, group, offsets):
    """offsets: {topic: {partition: start offset}} -> [(topic, partition, error code)]."""
    body = _cstr(group) + _carray([
        _cstr(topic) + _carray([struct.pack(">iq", p, o) + b"\x00" for p, o in parts.items()]) + b"\x00"
        for topic, parts in offsets.items()]) + b"\x00"
    r = _call(bootstrap, 91, body)
    assert r.take(">i") == 0  # throttle
    return _partitions(r)


def delete_share_offsets(bootstrap, group, topics):
    """-> (top-level error code, [(topic, partition, error code)])."""
    body = _cstr(group) + _carray([_cstr(t) + b"\x00" for t in topics]) + b"\x00"
    r = _call(bootstrap, 92, body)
    r.take(">i")
    code = r.take(">h")
    r.cstr()
    return code, _partitions(r)


def share_offsets(bootstrap, group):
    out = subprocess.run([petrel_bin(), "groups", "describe", group, "--json", "--bootstrap", bootstrap],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stdout + out.stderr
    return [(o["topic"], o["partition"], o["committed"]) for o in json.loads(out.stdout)["offsets"]]


def consume(bootstrap, group, topic, want, seconds=15):
    c = share_consumer(bootstrap, group, topic)
    got = []
    try:
        deadline = time.time() + seconds
        while len(got) < want and time.time() < deadline:
            got += [m.offset() for m in records(c.poll(0.5))]
        c.commit_sync()
    finally:
        c.close()
    return got


NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND, UNKNOWN_TOPIC_OR_PARTITION = 68, 69, 3


def test_alter_and_delete_share_group_offsets(tmp_path_factory):
    b = h.start_broker(tmp_path_factory, SETS, name="share-offsets")
    try:
        bootstrap = b.bootstrap
        topic, group = names()
        h.create_topic(bootstrap, topic, partitions=1)
        start_at_earliest(bootstrap, group)
        produce(bootstrap, topic, 20)
        assert alter_share_offsets(bootstrap, "no-such-share-group", {topic: {0: 1}}) == [(topic, 0, GROUP_ID_NOT_FOUND)]

        # A member is in the group: both are refused, the state is untouched.
        c = share_consumer(bootstrap, group, topic)
        got = []
        try:
            deadline = time.time() + 15
            while len(got) < 20 and time.time() < deadline:
                got += [m.offset() for m in records(c.poll(0.5))]
            c.commit_sync()
            assert sorted(got) == list(range(20))
            assert alter_share_offsets(bootstrap, group, {topic: {0: 5}, "no-such-topic": {0: 1}}) == [
                (topic, 0, NON_EMPTY_GROUP), ("no-such-topic", 0, UNKNOWN_TOPIC_OR_PARTITION)]
            assert delete_share_offsets(bootstrap, group, [topic])[0] == NON_EMPTY_GROUP
        finally:
            c.close()
        assert share_offsets(bootstrap, group) == [(topic, 0, 20)]

        # Empty (the leave may take a moment): back to 15, and 15..19 are delivered again.
        deadline = time.time() + 10
        while (result := alter_share_offsets(bootstrap, group, {topic: {0: 15}})) != [(topic, 0, 0)] and time.time() < deadline:
            time.sleep(0.3)
        assert result == [(topic, 0, 0)]
        assert share_offsets(bootstrap, group) == [(topic, 0, 15)]
        assert sorted(consume(bootstrap, group, topic, 5)) == list(range(15, 20))

        # petrel groups reset-offsets alters a share group (AlterShareGroupOffsets); it survives kill -9.
        deadline = time.time() + 10
        while True:
            out = subprocess.run([petrel_bin(), "groups", "reset-offsets", group, "--topic", topic, "--to-offset", "12",
                                  "--execute", "--bootstrap", bootstrap], capture_output=True, text=True, timeout=20)
            if out.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.3)
        assert out.returncode == 0, out.stdout + out.stderr
        port = b.port
        b.stop(signal.SIGKILL)
        b.start(port)
        bootstrap = b.bootstrap
        assert share_offsets(bootstrap, group) == [(topic, 0, 12)]

        # Delete: the state is gone, also after a restart (a tombstone in __share_group_state).
        code, partitions = delete_share_offsets(bootstrap, group, [topic, "no-such-topic"])
        assert code == 0 and partitions == [(topic, 0, 0), ("no-such-topic", -1, UNKNOWN_TOPIC_OR_PARTITION)], (code, partitions)
        assert share_offsets(bootstrap, group) == []
        b.stop(signal.SIGKILL)
        b.start(port)
        bootstrap = b.bootstrap
        out = subprocess.run([petrel_bin(), "groups", "list", "--bootstrap", bootstrap], capture_output=True, text=True, timeout=20)
        assert out.returncode == 0 and group not in out.stdout, out.stdout + out.stderr
        # The next fetch starts per share.auto.offset.reset (earliest): from 0 again.
        start_at_earliest(bootstrap, group)
        assert sorted(consume(bootstrap, group, topic, 20)) == list(range(20))
    finally:
        b.stop()
