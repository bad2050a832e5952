"""Log compaction and time retention end to end: the broker's cleaner and retention threads, checked
by consuming with confluent-kafka (librdkafka).

The broker runs with a short `log.retention.check.interval.ms` and `log.cleaner.backoff.ms`; topics get
small `segment.bytes` / `segment.ms` so segments close quickly (the active segment is never cleaned or
deleted) and `min.cleanable.dirty.ratio=0.01` so any dirty data gets cleaned.
"""

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

import petrel_helpers as h
from conftest import petrel_only

FAST = {"log.retention.check.interval.ms": "200", "log.cleaner.backoff.ms": "100"}


def _latest(msgs):
    """Reference: the last value per key, in offset order of those last writes."""
    last = {}
    for m in msgs:
        last[m["key"]] = m["value"]
    return last


def _read_all(bootstrap, topic, timeout=10.0):
    """Everything from the log start to the end (stops after 1 s without new messages)."""
    c = h.consumer(bootstrap, **{"enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return got
                raise AssertionError(m.error())
            got.append(m)
        return got
    finally:
        c.close()


@petrel_only()
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compaction_keeps_latest_value_per_key(broker_factory, topic_name, codec):
    b = broker_factory(FAST)
    bootstrap = b.bootstrap
    h.create_topic(bootstrap, topic_name, config={
        "cleanup.policy": "compact", "segment.bytes": "4096", "segment.ms": "1500",
        "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "1000", "file.delete.delay.ms": "100"})
    msgs = []
    for rnd in range(12):
        for k in range(40):
            msgs.append({"key": f"key-{k}".encode(), "value": f"{codec}-round-{rnd}-key-{k}-".encode() + b"x" * 30,
                         "partition": 0})
    deleted = [f"key-{k}".encode() for k in range(0, 40, 7)]
    msgs += [{"key": k, "value": None, "partition": 0} for k in deleted]
    p = h.producer(bootstrap, acks="all", compression_type=codec, linger_ms=20, batch_num_messages=25)
    h.produce_all(p, topic_name, msgs)
    total = len(msgs)

    # Keyless records are refused on a compacted topic.
    errors = []
    p.produce(topic_name, value=b"no key", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD

    expected = {k: v for k, v in _latest(msgs).items() if v is not None}
    # segment.ms rolls the last active segment; the cleaner then compacts everything, and once the
    # tombstones' delete.retention.ms passed, removes them too.
    deadline = time.monotonic() + 45
    got = []
    while time.monotonic() < deadline:
        got = _read_all(bootstrap, topic_name)
        if {m.key(): m.value() for m in got} == expected and len(got) == len(expected):
            break
        time.sleep(0.5)
    assert len(got) == len(expected), f"{len(got)} records left, expected {len(expected)}"
    assert {m.key(): m.value() for m in got} == expected
    offsets = [m.offset() for m in got]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert offsets[-1] < total
    # Order of the survivors is the order of their last writes.
    order = {m["key"]: i for i, m in enumerate(msgs)}
    assert [m.key() for m in got] == sorted(expected, key=lambda k: order[k])
    # A consumer at the end still sees the log end where it was: offsets were never reused.
    c = h.consumer(bootstrap)
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10)
    finally:
        c.close()
    assert low == 0 and high == total


@petrel_only()
def test_time_retention_deletes_old_segments(broker_factory, topic_name):
    b = broker_factory(FAST)
    bootstrap = b.bootstrap
    h.create_topic(bootstrap, topic_name, config={
        "retention.ms": "2000", "segment.bytes": "2048", "file.delete.delay.ms": "100"})
    old = [{"key": f"k{i}".encode(), "value": b"old-" + b"y" * 100, "partition": 0} for i in range(200)]
    h.produce_all(h.producer(bootstrap, acks="all"), topic_name, old)
    time.sleep(2.5)
    new = [{"key": f"n{i}".encode(), "value": b"new", "partition": 0} for i in range(5)]
    h.produce_all(h.producer(bootstrap, acks="all"), topic_name, new)

    c = h.consumer(bootstrap)
    deadline = time.monotonic() + 20
    low = high = 0
    try:
        while time.monotonic() < deadline:
            low, high = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10, cached=False)
            if low > 0:
                break
            time.sleep(0.3)
    finally:
        c.close()
    assert high == 205
    assert 0 < low <= 200, f"log start {low}"
    # A consumer at earliest starts at the new log start; the old data before it is gone.
    got = _read_all(bootstrap, topic_name)
    assert got[0].offset() == low
    assert [m.value() for m in got][-5:] == [b"new"] * 5
    # The deleted segments' files are gone from the partition directory after file.delete.delay.ms.
    part = b.data_dir / f"{topic_name}-0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and list(part.glob("*.deleted")):
        time.sleep(0.2)
    assert not list(part.glob("*.deleted"))
