"""KIP-848 consumer groups (group.protocol=consumer) with confluent-kafka / librdkafka.

Members join and leave while a producer writes, the broker restarts mid-consumption (membership
is persisted, so members keep their ids, epochs and partitions across SIGTERM and kill -9), classic and
consumer-protocol members meet in one group id, and `petrel groups describe` names the protocol.
Every member commits synchronously after each poll and in its revocation callback, so a record is
delivered twice only if a commit was lost; the tests assert every produced record was consumed and
that committed offsets never went backwards.
"""

import json
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from conftest import petrel_bin, petrel_only
import petrel_helpers as h

FAST = {"group.consumer.heartbeat.interval.ms": "500", "group.initial.rebalance.delay.ms": "0"}
PARTITIONS = 6


class Member:
    """A consumer-protocol member that commits synchronously after each batch and on revocation."""

    def __init__(self, bootstrap, group, topic, name, ledger, **extra):
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                "auto.offset.reset": "earliest", "enable.auto.commit": False, "client.id": name,
                "socket.timeout.ms": 10000}
        conf.update(extra)
        self.name = name
        self.c = Consumer(conf)
        self.ledger = ledger
        self.seen = []
        self.assigned = set()
        self.events = []  # (callback, partitions) in order: a rebalance shows up here
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _on_assign(self, c, parts):
        self.events.append(("assign", sorted(p.partition for p in parts)))
        self.assigned |= {p.partition for p in parts}

    def _on_revoke(self, c, parts):
        self.events.append(("revoke", sorted(p.partition for p in parts)))
        self.commit()
        self.assigned -= {p.partition for p in parts}

    def _on_lost(self, c, parts):
        self.events.append(("lost", sorted(p.partition for p in parts)))
        self.assigned -= {p.partition for p in parts}

    def commit(self):
        try:
            done = self.c.commit(asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() in (KafkaError._NO_OFFSET,):
                return
            # A commit refused during a rebalance/restart (stale epoch, unknown member, coordinator
            # moving) is retried by the next batch; at-least-once covers the gap.
            self.ledger.refused.append((self.name, str(e)))
            return
        for tp in done or []:
            if tp.error is None and tp.offset >= 0:
                self.ledger.commit(tp.partition, tp.offset)

    def poll(self, timeout=0.1):
        msgs = self.c.consume(num_messages=200, timeout=timeout)
        got = False
        for m in msgs:
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            self.seen.append(m.value())
            got = True
        if got:
            self.commit()

    def close(self):
        self.c.close()


class Ledger:
    def __init__(self):
        self.last = {}
        self.regressions = []
        self.refused = []

    def commit(self, partition, offset):
        prev = self.last.get(partition, -1)
        if offset < prev:
            self.regressions.append((partition, prev, offset))
        self.last[partition] = max(prev, offset)


def start_producer(bootstrap, topic, count, duration_s):
    """Writes `count` unique values round-robin over the partitions across ~duration_s seconds."""
    values = [f"r-{i:06d}".encode() for i in range(count)]
    done = threading.Event()

    def run():
        p = h.producer(bootstrap, acks="all", linger_ms=5)
        step = max(1, count // 50)
        for i in range(0, count, step):
            for j in range(i, min(count, i + step)):
                p.produce(topic, value=values[j], partition=j % PARTITIONS)
            p.poll(0)
            time.sleep(duration_s / 50)
        assert p.flush(30) == 0
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return values, done, t


def drive(members, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for m in members:
            m.poll(0.05)


def drain(members, values, done, timeout=25.0, gone=()):
    """Poll until the producer finished and every value was seen by `members` or the members that
    already left (`gone`), or timeout."""
    want = set(values)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        drive(members, 0.3)
        seen = set().union(*[set(m.seen) for m in list(members) + list(gone)])
        if done.is_set() and want <= seen:
            return
    seen = set().union(*[set(m.seen) for m in list(members) + list(gone)])
    missing = want - seen
    raise AssertionError(f"missing {len(missing)} of {len(want)} records after {timeout}s "
                         f"(e.g. {sorted(missing)[:3]}); assignments {[(m.name, sorted(m.assigned)) for m in members]}; "
                         f"positions {[(m.name, [(tp.partition, tp.offset) for tp in m.c.position(m.c.assignment())]) for m in members]}; "
                         f"librdkafka assignment {[(m.name, sorted(tp.partition for tp in m.c.assignment())) for m in members]}; "
                         f"producer done {done.is_set()}")


def log_ends(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    finally:
        c.close()


def settle_commits(bootstrap, group, topic, members, timeout=15.0):
    """Until the group's committed offsets reach the log end (members commit after every batch)."""
    ends = log_ends(bootstrap, topic)
    deadline = time.monotonic() + timeout
    committed = {}
    while time.monotonic() < deadline:
        drive(members, 0.3)
        for m in members:
            m.commit()
        committed = h.committed_offsets(bootstrap, group, topic, PARTITIONS)
        if committed == ends:
            return
    raise AssertionError(f"committed {committed} != log end {ends}")


@petrel_only()
def test_members_join_and_leave_under_load(broker_factory, topic_name):
    b = broker_factory(sets=FAST)
    h.create_topic(b.bootstrap, topic_name, partitions=PARTITIONS)
    group = f"kip848-{uuid.uuid4().hex[:8]}"
    ledger = Ledger()
    values, done, producer = start_producer(b.bootstrap, topic_name, 6000, 8.0)

    m1 = Member(b.bootstrap, group, topic_name, "m1", ledger)
    members = [m1]
    drive(members, 2.0)
    m2 = Member(b.bootstrap, group, topic_name, "m2", ledger)
    members.append(m2)
    drive(members, 2.0)
    m3 = Member(b.bootstrap, group, topic_name, "m3", ledger)
    members.append(m3)
    drive(members, 3.0)
    # Three members share the six partitions.
    assert sorted(len(m.assigned) for m in members) == [2, 2, 2], [sorted(m.assigned) for m in members]
    assert set().union(*[m.assigned for m in members]) == set(range(PARTITIONS))

    # One leaves mid-stream; the others take its partitions over.
    m2.close()
    members.remove(m2)
    producer.join(30)
    drain(members, values, done, gone=[m2])
    drive(members, 2.0)
    assert set().union(*[m.assigned for m in members]) == set(range(PARTITIONS))
    settle_commits(b.bootstrap, group, topic_name, members)

    all_seen = m1.seen + m2.seen + m3.seen
    assert set(all_seen) == set(values)
    duplicates = len(all_seen) - len(set(all_seen))
    assert ledger.regressions == [], ledger.regressions
    # Every member commits before it gives a partition up, so nothing is read twice.
    assert duplicates == 0, f"{duplicates} duplicates; refused commits: {ledger.refused[:5]}"

    out = subprocess.run([petrel_bin(), "groups", "describe", group, "--bootstrap", b.bootstrap],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "consumer protocol" in out.stdout and "2 member(s)" in out.stdout, out.stdout
    for m in members:
        m.close()


@petrel_only("restart on the same data dir is Petrel-specific")
def test_broker_restart_mid_consumption(broker_factory, topic_name):
    b = broker_factory(sets=FAST)
    h.create_topic(b.bootstrap, topic_name, partitions=PARTITIONS)
    group = f"kip848-restart-{uuid.uuid4().hex[:8]}"
    ledger = Ledger()
    values = [f"v-{i:05d}".encode() for i in range(1200)]
    h.produce_values(b.bootstrap, topic_name, {p: values[p::PARTITIONS] for p in range(PARTITIONS)})

    members = [Member(b.bootstrap, group, topic_name, f"m{i}", ledger) for i in (1, 2)]
    drive(members, 3.0)
    assert sorted(len(m.assigned) for m in members) == [3, 3]
    before = h.committed_offsets(b.bootstrap, group, topic_name, PARTITIONS)

    b.restart()
    second = [f"w-{i:05d}".encode() for i in range(600)]
    h.produce_values(b.bootstrap, topic_name, {p: second[p::PARTITIONS] for p in range(PARTITIONS)})
    done = threading.Event()
    done.set()
    # Membership and committed offsets survived: the members carry on (see
    # test_membership_survives_restart for the no-rebalance checks).
    drain(members, values + second, done, timeout=35)
    settle_commits(b.bootstrap, group, topic_name, members)
    after = h.committed_offsets(b.bootstrap, group, topic_name, PARTITIONS)
    assert all(after[p] >= before[p] for p in range(PARTITIONS)), (before, after)
    assert ledger.regressions == []
    seen = members[0].seen + members[1].seen
    assert set(seen) == set(values + second)
    for m in members:
        m.close()


def describe_members(bootstrap, group):
    """`petrel groups describe --json`: {member id: (epoch, partitions)}."""
    out = subprocess.run([petrel_bin(), "groups", "describe", group, "--bootstrap", bootstrap, "--json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    described = json.loads(out.stdout)
    assert described["groupProtocol"] == "consumer", described
    return {m["memberId"]: (m["memberEpoch"], sorted(p for a in m["assignment"] for p in a["partitions"]))
            for m in described["members"]}


@petrel_only("restart on the same data dir is Petrel-specific")
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_membership_survives_restart(broker_factory, topic_name, how):
    """KIP-848 membership is persisted in __consumer_offsets: after a clean stop or a crash the
    members keep heartbeating with their member ids and epochs, keep their partitions (no
    revocation, no lost assignment, no new assignment) and read every record exactly once."""
    b = broker_factory(sets=FAST)
    h.create_topic(b.bootstrap, topic_name, partitions=PARTITIONS)
    group = f"kip848-persist-{uuid.uuid4().hex[:8]}"
    ledger = Ledger()
    first = [f"p-{i:05d}".encode() for i in range(600)]
    h.produce_values(b.bootstrap, topic_name, {p: first[p::PARTITIONS] for p in range(PARTITIONS)})
    members = [Member(b.bootstrap, group, topic_name, f"m{i}", ledger) for i in (1, 2)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sorted(len(m.assigned) for m in members) != [3, 3]:
        drive(members, 0.5)
    assert sorted(len(m.assigned) for m in members) == [3, 3]
    done = threading.Event()
    done.set()
    drain(members, first, done)
    settle_commits(b.bootstrap, group, topic_name, members)
    before = describe_members(b.bootstrap, group)
    assert len(before) == 2 and all(epoch > 0 for epoch, _ in before.values()), before
    assignments = [set(m.assigned) for m in members]
    events = [len(m.events) for m in members]

    if how == "sigterm":
        b.restart()
    else:
        port = b.port
        b.kill()
        b.start(port)
    second = [f"q-{i:05d}".encode() for i in range(600)]
    h.produce_values(b.bootstrap, topic_name, {p: second[p::PARTITIONS] for p in range(PARTITIONS)})
    drain(members, first + second, done, timeout=35)
    # Several heartbeats (500 ms interval) after the restart.
    drive(members, 3.0)
    settle_commits(b.bootstrap, group, topic_name, members)

    after = describe_members(b.bootstrap, group)
    assert after == before, (before, after)
    assert [set(m.assigned) for m in members] == assignments
    assert [m.events[n:] for m, n in zip(members, events)] == [[], []], [m.events for m in members]
    seen = members[0].seen + members[1].seen
    assert set(seen) == set(first + second)
    assert len(seen) - len(set(seen)) == 0, f"{len(seen) - len(set(seen))} duplicates; refused commits: {ledger.refused[:5]}"
    assert ledger.regressions == []
    for m in members:
        m.close()


@petrel_only()
def test_classic_group_converted_online_and_back(broker_factory, topic_name):
    """A classic member (librdkafka's range/roundrobin) owns the group; a consumer-protocol member
    joins and the group converts online: they share the partitions, every record is consumed, no
    committed offset goes back. When the consumer-protocol member leaves, the group turns classic
    again and the classic member takes everything back."""
    b = broker_factory(sets=FAST)
    h.create_topic(b.bootstrap, topic_name, partitions=PARTITIONS)
    group = f"kip848-mixed-{uuid.uuid4().hex[:8]}"
    ledger = Ledger()
    first = [f"x-{i:04d}".encode() for i in range(600)]
    h.produce_values(b.bootstrap, topic_name, {p: first[p::PARTITIONS] for p in range(PARTITIONS)})

    classic = Member(b.bootstrap, group, topic_name, "classic", ledger, **{
        "group.protocol": "classic", "heartbeat.interval.ms": 500, "session.timeout.ms": 10000})
    drive([classic], 4.0)
    assert classic.assigned == set(range(PARTITIONS))

    newer = Member(b.bootstrap, group, topic_name, "newer", ledger)
    members = [classic, newer]
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        drive(members, 0.5)
        if classic.assigned and newer.assigned and classic.assigned | newer.assigned == set(range(PARTITIONS)) \
                and not classic.assigned & newer.assigned:
            break
    assert classic.assigned and newer.assigned, (classic.assigned, newer.assigned)
    assert classic.assigned | newer.assigned == set(range(PARTITIONS))

    out = subprocess.run([petrel_bin(), "groups", "describe", group, "--bootstrap", b.bootstrap],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "consumer protocol" in out.stdout and "2 member(s)" in out.stdout, out.stdout + out.stderr

    second = [f"y-{i:04d}".encode() for i in range(600)]
    h.produce_values(b.bootstrap, topic_name, {p: second[p::PARTITIONS] for p in range(PARTITIONS)})
    done = threading.Event()
    done.set()
    drain(members, first + second, done)
    settle_commits(b.bootstrap, group, topic_name, members)
    assert ledger.regressions == []

    # The consumer-protocol member leaves: the classic member gets every partition back.
    newer.close()
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline and classic.assigned != set(range(PARTITIONS)):
        drive([classic], 0.5)
    assert classic.assigned == set(range(PARTITIONS))
    tail = [f"z-{i}".encode() for i in range(PARTITIONS)]
    h.produce_values(b.bootstrap, topic_name, {p: [tail[p]] for p in range(PARTITIONS)})
    drain([classic], tail, done, gone=[newer])
    out = subprocess.run([petrel_bin(), "groups", "describe", group, "--bootstrap", b.bootstrap],
                         capture_output=True, text=True, timeout=30)
    assert "classic protocol" in out.stdout, out.stdout
    settle_commits(b.bootstrap, group, topic_name, [classic])
    assert ledger.regressions == []
    classic.close()


@petrel_only()
def test_regex_subscription(broker_factory, topic_name):
    """librdkafka sends a `^...` subscription as SubscribedTopicRegex (v1); the broker resolves it,
    including topics created later."""
    b = broker_factory(sets=FAST)
    for suffix in ("a", "b"):
        h.create_topic(b.bootstrap, f"{topic_name}-{suffix}", partitions=2)
    h.create_topic(b.bootstrap, f"other-{topic_name}", partitions=1)
    group = f"kip848-regex-{uuid.uuid4().hex[:8]}"
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 1000})
    try:
        c.subscribe([f"^{topic_name}-.*"])
        want = {(f"{topic_name}-a", 0), (f"{topic_name}-a", 1), (f"{topic_name}-b", 0), (f"{topic_name}-b", 1)}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and {(tp.topic, tp.partition) for tp in c.assignment()} != want:
            c.poll(0.2)
        assert {(tp.topic, tp.partition) for tp in c.assignment()} == want
        h.create_topic(b.bootstrap, f"{topic_name}-c", partitions=1)
        want.add((f"{topic_name}-c", 0))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and {(tp.topic, tp.partition) for tp in c.assignment()} != want:
            c.poll(0.2)
        assert {(tp.topic, tp.partition) for tp in c.assignment()} == want
    finally:
        c.close()


@petrel_only()
def test_static_member_returns_to_its_partitions(broker_factory, topic_name):
    """group.instance.id: a closing static member leaves temporarily (epoch -2); its partitions
    wait for it and a new process with the same instance id gets them back."""
    b = broker_factory(sets=FAST)
    h.create_topic(b.bootstrap, topic_name, partitions=PARTITIONS)
    group = f"kip848-static-{uuid.uuid4().hex[:8]}"
    ledger = Ledger()
    m1 = Member(b.bootstrap, group, topic_name, "s1", ledger, **{"group.instance.id": "inst-1"})
    m2 = Member(b.bootstrap, group, topic_name, "s2", ledger, **{"group.instance.id": "inst-2"})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sorted(len(m.assigned) for m in (m1, m2)) != [3, 3]:
        drive([m1, m2], 0.5)
    assert sorted(len(m.assigned) for m in (m1, m2)) == [3, 3]
    first = set(m1.assigned)
    m1.close()
    drive([m2], 3.0)
    assert m2.assigned == set(range(PARTITIONS)) - first  # nothing moved while inst-1 is away
    again = Member(b.bootstrap, group, topic_name, "s1-again", ledger, **{"group.instance.id": "inst-1"})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and again.assigned != first:
        drive([again, m2], 0.5)
    assert again.assigned == first
    again.close()
    m2.close()
