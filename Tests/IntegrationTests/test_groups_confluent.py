"""Consumer groups with confluent-kafka (librdkafka): queue and pub/sub semantics, commits and resume,
cooperative-sticky rebalances, group admin, and the default initial rebalance delay."""

import time
import uuid

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition

import petrel_helpers as h

FAST = {"group.initial.rebalance.delay.ms": "0"}


@pytest.fixture(scope="module")
def fast_broker(tmp_path_factory):
    """A broker without the initial rebalance delay, shared by this module."""
    b = h.start_broker(tmp_path_factory, FAST, "groups-confluent")
    yield b
    if b.running():
        b.stop()


@pytest.fixture
def fb(fast_broker) -> str:
    assert fast_broker.running(), "groups broker died; log: " + fast_broker.output()[-4000:]
    return fast_broker.bootstrap


def _group(topic_name: str) -> str:
    return f"g-{topic_name[-40:]}-{uuid.uuid4().hex[:6]}"


def _values(prefix: str, partitions: int, per_partition: int) -> dict[int, list[bytes]]:
    return {p: [f"{prefix}-p{p}-{i:04d}".encode() for i in range(per_partition)] for p in range(partitions)}


def _flat(values: dict[int, list[bytes]]) -> list[bytes]:
    return sorted(v for vs in values.values() for v in vs)


def _close_all(consumers):
    for c in consumers:
        try:
            c.close()
        except Exception:
            pass


def test_two_members_split_partitions_exactly_once(fb, topic_name):
    h.create_topic(fb, topic_name, partitions=4)
    group = _group(topic_name)
    cs = [h.group_consumer(fb, group, client_id=f"split-{i}") for i in range(2)]
    try:
        for c in cs:
            c.subscribe([topic_name])
        sets = h.wait_assignment(cs, topic_name, 4, want=[2, 2])
        assert all(sets), sets
        vals = _values("split", 4, 25)
        h.produce_values(fb, topic_name, vals)
        got = h.poll_group(cs, 100)
        # Each consumer only sees its own partitions; all messages arrive exactly once in total.
        for s, msgs in zip(sets, got):
            assert msgs, f"consumer owning {s} got nothing"
            assert {m.partition() for m in msgs} <= s
        all_values = sorted(m.value() for msgs in got for m in msgs)
        assert all_values == _flat(vals)
        for p in range(4):
            offs = [m.offset() for msgs in got for m in msgs if m.partition() == p]
            assert offs == list(range(25)), (p, offs)
    finally:
        _close_all(cs)


def test_two_groups_each_receive_everything(fb, topic_name):
    h.create_topic(fb, topic_name, partitions=2)
    vals = _values("pubsub", 2, 20)
    h.produce_values(fb, topic_name, vals)
    groups = [_group(topic_name) + "-a", _group(topic_name) + "-b"]
    cs = [h.group_consumer(fb, g) for g in groups]
    try:
        for c in cs:
            c.subscribe([topic_name])
        for c, g in zip(cs, groups):
            got = h.poll_group([c], 40)[0]
            assert sorted(m.value() for m in got) == _flat(vals), g
            c.commit(asynchronous=False)
        for g in groups:
            assert h.committed_offsets(fb, g, topic_name, 2) == {0: 20, 1: 20}, g
    finally:
        _close_all(cs)


def test_commit_then_new_member_resumes(fb, topic_name):
    h.create_topic(fb, topic_name, partitions=2)
    group = _group(topic_name)
    vals = _values("resume", 2, 20)
    h.produce_values(fb, topic_name, vals)
    a = h.group_consumer(fb, group, client_id="resume-a")
    try:
        a.subscribe([topic_name])
        h.poll_group([a], 40, extra_wait=0.2)
        # Commit the first half of each partition explicitly, although A has read more.
        res = a.commit(offsets=[TopicPartition(topic_name, p, 10) for p in (0, 1)], asynchronous=False)
        assert sorted((tp.partition, tp.offset, tp.error) for tp in res) == [(0, 10, None), (1, 10, None)]
        got = a.committed([TopicPartition(topic_name, p) for p in (0, 1)], timeout=10)
        assert sorted((tp.partition, tp.offset) for tp in got) == [(0, 10), (1, 10)]
    finally:
        a.close()
    assert h.committed_offsets(fb, group, topic_name, 2) == {0: 10, 1: 10}
    b = h.group_consumer(fb, group, client_id="resume-b")
    try:
        b.subscribe([topic_name])
        got = h.poll_group([b], 20)[0]
        assert sorted((m.partition(), m.offset()) for m in got) == [(p, o) for p in (0, 1) for o in range(10, 20)]
        assert sorted(m.value() for m in got) == sorted(v for p in (0, 1) for v in vals[p][10:])
        b.commit(asynchronous=False)
        assert sorted((tp.partition, tp.offset) for tp in
                      b.committed([TopicPartition(topic_name, p) for p in (0, 1)], timeout=10)) == [(0, 20), (1, 20)]
    finally:
        b.close()


def test_cooperative_sticky_member_leaves(fb, topic_name):
    h.create_topic(fb, topic_name, partitions=4)
    group = _group(topic_name)
    events = {0: [], 1: []}

    def cbs(i):
        return {"on_assign": lambda c, ps: events[i].append(("assign", sorted(tp.partition for tp in ps))),
                "on_revoke": lambda c, ps: events[i].append(("revoke", sorted(tp.partition for tp in ps)))}

    cs = [h.group_consumer(fb, group, client_id=f"coop-{i}", partition_assignment_strategy="cooperative-sticky")
          for i in range(2)]
    a, b = cs
    try:
        for i, c in enumerate(cs):
            c.subscribe([topic_name], **cbs(i))
        sets = h.wait_assignment(cs, topic_name, 4, want=[2, 2])
        first = _values("coop1", 4, 10)
        h.produce_values(fb, topic_name, first)
        got = h.poll_group(cs, 40)
        assert sorted(m.value() for msgs in got for m in msgs) == _flat(first)
        for c in cs:
            c.commit(asynchronous=False)
        events[0].clear()
        b.close()
        # A keeps its partitions (no revoke: incremental cooperative rebalance) and gains B's.
        assert h.wait_assignment([a], topic_name, 4) == [{0, 1, 2, 3}]
        assert not [e for e in events[0] if e[0] == "revoke"], events[0]
        assert ("assign", sorted(sets[1])) in events[0], events[0]
        second = _values("coop2", 4, 10)
        h.produce_values(fb, topic_name, second)
        got = h.poll_group([a], 40)[0]
        # Exactly the new messages: B's committed offsets were honoured, nothing replayed.
        assert sorted(m.value() for m in got) == _flat(second)
    finally:
        _close_all(cs)


def _describe(admin, group):
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result(15)


def _listed(admin):
    res = admin.list_consumer_groups(request_timeout=10).result(15)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


def test_group_admin_list_describe_delete(fb, topic_name):
    h.create_topic(fb, topic_name, partitions=4)
    group = _group(topic_name)
    admin = h.admin(fb)
    cs = [h.group_consumer(fb, group, client_id=f"admin-{i}") for i in range(2)]
    try:
        for c in cs:
            c.subscribe([topic_name])
        sets = h.wait_assignment(cs, topic_name, 4, want=[2, 2])
        h.produce_values(fb, topic_name, _values("admin", 4, 3))
        h.poll_group(cs, 12)
        for c in cs:
            c.commit(asynchronous=False)

        listed = _listed(admin)
        assert group in listed, sorted(listed)
        assert listed[group].is_simple_consumer_group is False
        assert listed[group].state == ConsumerGroupState.STABLE

        d = _describe(admin, group)
        assert d.group_id == group
        assert d.state == ConsumerGroupState.STABLE
        assert d.is_simple_consumer_group is False
        assert d.partition_assignor == "range"
        assert sorted(m.client_id for m in d.members) == ["admin-0", "admin-1"]
        assert len({m.member_id for m in d.members}) == 2
        by_client = {m.client_id: {tp.partition for tp in m.assignment.topic_partitions
                                   if tp.topic == topic_name} for m in d.members}
        assert [by_client["admin-0"], by_client["admin-1"]] == sets

        offs = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                 request_timeout=10)[group].result(15)
        assert sorted((tp.topic, tp.partition, tp.offset) for tp in offs.topic_partitions) == \
            [(topic_name, p, 3) for p in range(4)]

        # Active group: deletion refused.
        with pytest.raises(KafkaException) as ei:
            admin.delete_consumer_groups([group], request_timeout=10)[group].result(15)
        assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, ei.value
    finally:
        _close_all(cs)

    # Both members left: the group is Empty, still listed and keeps its offsets until deleted.
    assert _describe(admin, group).state == ConsumerGroupState.EMPTY
    assert _describe(admin, group).members == []
    assert h.committed_offsets(fb, group, topic_name, 4) == {p: 3 for p in range(4)}
    admin.delete_consumer_groups([group], request_timeout=10)[group].result(15)
    assert group not in _listed(admin)
    assert h.committed_offsets(fb, group, topic_name, 4) == {p: -1001 for p in range(4)}


def test_default_initial_rebalance_delay_first_message_quickly(bootstrap, topic_name):
    """The shared broker runs the default group.initial.rebalance.delay.ms (3000): a lone first consumer
    must still get its first message within ~10 s."""
    h.create_topic(bootstrap, topic_name, partitions=1)
    h.produce_values(bootstrap, topic_name, {0: [b"first", b"second"]})
    c = h.group_consumer(bootstrap, _group(topic_name))
    try:
        t0 = time.monotonic()
        c.subscribe([topic_name])
        m = None
        while time.monotonic() - t0 < 10.0:
            m = c.poll(0.2)
            if m is not None:
                assert m.error() is None, m.error()
                break
        elapsed = time.monotonic() - t0
        assert m is not None, "no message within 10 s of subscribing"
        assert (m.offset(), m.value()) == (0, b"first")
        print(f"first message after {elapsed:.2f}s")
    finally:
        c.close()
