"""kafka-python: KafkaProducer / KafkaConsumer (assign, no group) / KafkaAdminClient."""

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

import petrel_helpers as h

TIMEOUT_MS = 30000


def _producer(bootstrap, **kw):
    return KafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS, **kw)


def _consumer(bootstrap, **kw):
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         request_timeout_ms=TIMEOUT_MS, **kw)


def _admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS)


def _consume(bootstrap, tps, n, timeout=30.0):
    c = _consumer(bootstrap, auto_offset_reset="earliest")
    try:
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                got.extend(recs)
        # Catch surplus records too.
        for recs in c.poll(timeout_ms=500).values():
            got.extend(recs)
        return got
    finally:
        c.close()


def _create(bootstrap, name, partitions=1):
    a = _admin(bootstrap)
    try:
        a.create_topics([NewTopic(name, partitions, 1)])
    finally:
        a.close()
    h.wait_for_partitions(bootstrap, name, partitions)


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
@pytest.mark.parametrize("acks", [1, "all"])
def test_roundtrip(bootstrap, topic_name, codec, acks):
    _create(bootstrap, topic_name)
    p = _producer(bootstrap, acks=acks, compression_type=codec, linger_ms=20)
    sent = [(f"k{i}".encode(), f"value-{i}-".encode() * (1 + i % 5), [("i", str(i).encode())]) for i in range(150)]
    futs = [p.send(topic_name, key=k, value=v, headers=hd, partition=0) for k, v, hd in sent]
    p.flush(30)
    metas = [f.get(timeout=30) for f in futs]
    p.close(10)
    assert [m.offset for m in metas] == list(range(len(sent)))
    got = _consume(bootstrap, [TopicPartition(topic_name, 0)], len(sent))
    assert [(r.key, r.value, [tuple(x) for x in r.headers]) for r in got] == sent
    assert [r.offset for r in got] == list(range(len(sent)))


def test_offsets_apis(bootstrap, topic_name):
    _create(bootstrap, topic_name, partitions=2)
    base = int(time.time() * 1000) - 600_000
    p = _producer(bootstrap, acks="all")
    for i in range(6):
        p.send(topic_name, value=b"a%d" % i, partition=0, timestamp_ms=base + i * 100)
    for i in range(2):
        p.send(topic_name, value=b"b%d" % i, partition=1, timestamp_ms=base + i * 100)
    p.flush(30)
    p.close(10)
    tp0, tp1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    c = _consumer(bootstrap)
    try:
        assert c.end_offsets([tp0, tp1]) == {tp0: 6, tp1: 2}
        assert c.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        r = c.offsets_for_times({tp0: base + 250, tp1: base + 50})
        assert (r[tp0].offset, r[tp0].timestamp) == (3, base + 300)
        assert (r[tp1].offset, r[tp1].timestamp) == (1, base + 100)
        r = c.offsets_for_times({tp0: base + 10_000})
        assert r[tp0] is None
    finally:
        c.close()


def test_admin_create_list_delete(bootstrap, topic_name):
    a = _admin(bootstrap)
    try:
        a.create_topics([NewTopic(topic_name, 2, 1)])
        h.wait_for_partitions(bootstrap, topic_name, 2)
        assert topic_name in a.list_topics()
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(topic_name, 2, 1)], raise_errors=True)
        a.delete_topics([topic_name])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and topic_name in a.list_topics():
            time.sleep(0.1)
        assert topic_name not in a.list_topics()
        with pytest.raises(UnknownTopicOrPartitionError):
            a.delete_topics([topic_name], raise_errors=True)
    finally:
        a.close()
