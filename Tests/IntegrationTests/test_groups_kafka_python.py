"""Consumer groups with kafka-python: subscribe with auto_offset_reset='earliest', commit, resume."""

import time
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition

import petrel_helpers as h


@pytest.fixture(scope="module")
def fb(tmp_path_factory):
    b = h.start_broker(tmp_path_factory, {"group.initial.rebalance.delay.ms": "0"}, "groups-kafka-python")
    yield b.bootstrap
    if b.running():
        b.stop()


def _consumer(bootstrap, group, topic=None):
    topics = [topic] if topic else []
    return KafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                         enable_auto_commit=False, request_timeout_ms=30000, session_timeout_ms=10000,
                         heartbeat_interval_ms=500, client_id=f"kp-{group}")


def _poll(c, n, timeout=30.0, extra=1.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=300).values():
            got.extend(recs)
    assert len(got) >= n, f"received {len(got)} of {n} within {timeout}s"
    end = time.monotonic() + extra
    while time.monotonic() < end:
        for recs in c.poll(timeout_ms=200).values():
            got.extend(recs)
    return got


def test_subscribe_earliest_commit_and_resume(fb, topic_name):
    h.create_topic(fb, topic_name, partitions=3)
    group = f"kp-{topic_name[-40:]}-{uuid.uuid4().hex[:6]}"
    first = {p: [f"kp1-p{p}-{i:03d}".encode() for i in range(15)] for p in range(3)}
    h.produce_values(fb, topic_name, first)

    c = _consumer(fb, group)
    try:
        c.subscribe([topic_name])
        got = _poll(c, 45)
        assert sorted(r.value for r in got) == sorted(v for vs in first.values() for v in vs)
        assert sorted((r.partition, r.offset) for r in got) == [(p, o) for p in range(3) for o in range(15)]
        assert {tp.partition for tp in c.assignment()} == {0, 1, 2}
        c.commit()  # synchronous, the consumed positions
        assert [c.committed(TopicPartition(topic_name, p)) for p in range(3)] == [15, 15, 15]
    finally:
        c.close()
    assert h.committed_offsets(fb, group, topic_name, 3) == {0: 15, 1: 15, 2: 15}

    second = {p: [f"kp2-p{p}-{i:03d}".encode() for i in range(5)] for p in range(3)}
    h.produce_values(fb, topic_name, second)
    c2 = _consumer(fb, group, topic_name)  # topics in the constructor: subscribe
    try:
        got = _poll(c2, 15)
        assert sorted(r.value for r in got) == sorted(v for vs in second.values() for v in vs)
        assert sorted((r.partition, r.offset) for r in got) == [(p, o) for p in range(3) for o in range(15, 20)]
        c2.commit()
    finally:
        c2.close()
    assert h.committed_offsets(fb, group, topic_name, 3) == {0: 20, 1: 20, 2: 20}
