"""Committed offsets survive a clean restart and a kill -9 (replayed from __consumer_offsets)."""

import signal
import uuid

import pytest
from confluent_kafka import TopicPartition

from conftest import petrel_only
import petrel_helpers as h

FAST = {"group.initial.rebalance.delay.ms": "0"}


def _stop(b, how):
    if how == "sigterm":
        assert b.stop(signal.SIGTERM) == 0
    else:
        b.kill()
    b.start()


@petrel_only("restart on the same data dir is Petrel-specific")
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_committed_offsets_survive_restart(broker_factory, topic_name, how):
    b = broker_factory(sets=FAST)
    h.create_topic(b.bootstrap, topic_name, partitions=2)
    group = f"dur-{how}-{uuid.uuid4().hex[:8]}"
    vals = {p: [f"dur-p{p}-{i:03d}".encode() for i in range(20)] for p in (0, 1)}
    h.produce_values(b.bootstrap, topic_name, vals)

    c = h.group_consumer(b.bootstrap, group)
    try:
        c.subscribe([topic_name])
        got = h.poll_group([c], 40, extra_wait=0.2)[0]
        assert len(got) == 40
        c.commit(offsets=[TopicPartition(topic_name, 0, 7), TopicPartition(topic_name, 1, 13)], asynchronous=False)
    finally:
        c.close()
    assert h.committed_offsets(b.bootstrap, group, topic_name, 2) == {0: 7, 1: 13}

    _stop(b, how)
    assert h.committed_offsets(b.bootstrap, group, topic_name, 2) == {0: 7, 1: 13}, b.output()[-3000:]
    c = h.group_consumer(b.bootstrap, group)
    try:
        c.subscribe([topic_name])
        got = h.poll_group([c], 20)[0]
        assert sorted((m.partition(), m.offset()) for m in got) == \
            [(0, o) for o in range(7, 20)] + [(1, o) for o in range(13, 20)]
        assert sorted(m.value() for m in got) == sorted(vals[0][7:] + vals[1][13:])
        c.commit(asynchronous=False)
    finally:
        c.close()
    assert h.committed_offsets(b.bootstrap, group, topic_name, 2) == {0: 20, 1: 20}

    # A second crash/restart replays the newer commit records (latest wins).
    _stop(b, how)
    assert h.committed_offsets(b.bootstrap, group, topic_name, 2) == {0: 20, 1: 20}, b.output()[-3000:]
    h.produce_values(b.bootstrap, topic_name, {0: [b"after-0"], 1: [b"after-1"]})
    c = h.group_consumer(b.bootstrap, group)
    try:
        c.subscribe([topic_name])
        got = h.poll_group([c], 2)[0]
        assert sorted((m.partition(), m.offset(), m.value()) for m in got) == [(0, 20, b"after-0"), (1, 20, b"after-1")]
    finally:
        c.close()
