"""KIP-932 share groups with confluent-kafka's ShareConsumer (librdkafka 2.16, ShareGroupHeartbeat /
ShareFetch / ShareAcknowledge v1).

Several members share one partition and get disjoint records that together are all of them; a
released record comes back with a higher delivery count; the records of a member killed with
SIGKILL come back after the acquisition lock (group.share.record.lock.duration.ms) runs out; a
rejected record and a record released group.share.delivery.count.limit times are archived; a broker
restart, clean or kill -9, keeps what was acknowledged (`__share_group_state`); `petrel groups list` and
`describe` show the share group with its start offset.
"""

import json
import os
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
