"""confluent-kafka (librdkafka) producer / consumer (assign only, no group APIs) / AdminClient."""

import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException, TopicPartition)
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic)

import petrel_helpers as h


def _msgs(n, prefix="m", headers=True):
    out = []
    for i in range(n):
        m = {"key": f"{prefix}-key-{i}".encode(), "value": f"{prefix}-value-{i}-".encode() + bytes([i % 256]) * (i % 50),
             "partition": 0}
        if headers:
            m["headers"] = [("idx", str(i).encode()), ("dup", b"a"), ("dup", b"b"), ("empty", b"")]
        out.append(m)
    return out


def _expected(msgs):
    return [(m["key"], m["value"], m.get("headers")) for m in msgs]


def _actual(got):
    return [(m.key(), m.value(), m.headers()) for m in got]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_roundtrip_acks(bootstrap, topic_name, acks):
    h.create_topic(bootstrap, topic_name)
    msgs = _msgs(100)
    p = h.producer(bootstrap, acks=acks)
    delivered = h.produce_all(p, topic_name, msgs)
    if acks != "0":
        # With acks the broker assigns offsets; they must be 0..n-1 in order on one partition.
        assert [m.offset() for m in delivered] == list(range(len(msgs)))
    got = h.consume_n(bootstrap, topic_name, len(msgs))
    assert _actual(got) == _expected(msgs)
    assert [m.offset() for m in got] == list(range(len(msgs)))


def test_null_key_and_null_value(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    msgs = [{"key": None, "value": b"v", "partition": 0}, {"key": b"k", "value": None, "partition": 0},
            {"key": b"", "value": b"", "partition": 0}]
    h.produce_all(h.producer(bootstrap), topic_name, msgs)
    got = h.consume_n(bootstrap, topic_name, 3)
    assert [(m.key(), m.value()) for m in got] == [(None, b"v"), (b"k", None), (b"", b"")]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(bootstrap, topic_name, codec):
    h.create_topic(bootstrap, topic_name)
    msgs = _msgs(300, prefix=codec)
    p = h.producer(bootstrap, acks="all", compression_type=codec, linger_ms=50)
    delivered = h.produce_all(p, topic_name, msgs)
    assert [m.offset() for m in delivered] == list(range(300))
    got = h.consume_n(bootstrap, topic_name, len(msgs))
    assert _actual(got) == _expected(msgs)


def test_timestamps_and_offsets_for_times(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    base = int(time.time() * 1000) - 3_600_000
    msgs = [{"key": b"k%d" % i, "value": b"v%d" % i, "partition": 0, "timestamp": base + i * 1000} for i in range(10)]
    h.produce_all(h.producer(bootstrap, acks="all"), topic_name, msgs)
    got = h.consume_n(bootstrap, topic_name, 10)
    assert [m.timestamp()[1] for m in got] == [base + i * 1000 for i in range(10)]
    c = h.consumer(bootstrap)
    try:
        def lookup(ts):
            r = c.offsets_for_times([TopicPartition(topic_name, 0, ts)], timeout=15)
            assert r[0].error is None, r[0].error
            return r[0].offset
        assert lookup(base) == 0
        assert lookup(base + 2500) == 3            # first offset with timestamp >= t
        assert lookup(base + 9000) == 9
        assert lookup(base - 100_000) == 0
        assert lookup(base + 9001) == -1           # no such record: offset -1
    finally:
        c.close()


def test_watermark_offsets(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name, partitions=2)
    p = h.producer(bootstrap, acks="all")
    h.produce_all(p, topic_name, [{"value": b"x", "partition": 0}] * 7 + [{"value": b"y", "partition": 1}] * 3)
    c = h.consumer(bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=15, cached=False) == (0, 7)
        assert c.get_watermark_offsets(TopicPartition(topic_name, 1), timeout=15, cached=False) == (0, 3)
    finally:
        c.close()


def test_offset_beyond_end_resets_to_earliest(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    msgs = _msgs(5, headers=False)
    h.produce_all(h.producer(bootstrap, acks="all"), topic_name, msgs)
    got = h.consume_n(bootstrap, topic_name, 5, offset=1000, auto_offset_reset="earliest")
    assert [m.offset() for m in got] == [0, 1, 2, 3, 4]
    assert _actual(got) == [(m["key"], m["value"], None) for m in msgs]


def test_delete_records_then_reset(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    msgs = _msgs(10, headers=False)
    h.produce_all(h.producer(bootstrap, acks="all"), topic_name, msgs)
    a = h.admin(bootstrap)
    fs = a.delete_records([TopicPartition(topic_name, 0, 6)], request_timeout=15)
    res = list(fs.values())[0].result(15)
    assert res.low_watermark == 6  # low watermark after deletion
    c = h.consumer(bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=15, cached=False) == (6, 10)
    finally:
        c.close()
    # Offset 2 is now below the log start: auto.offset.reset=earliest moves to 6.
    got = h.consume_n(bootstrap, topic_name, 4, offset=2, auto_offset_reset="earliest")
    assert [m.offset() for m in got] == [6, 7, 8, 9]
    assert [m.value() for m in got] == [m["value"] for m in msgs[6:]]


def test_offset_end_sees_only_new_messages(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    p = h.producer(bootstrap, acks="all")
    h.produce_all(p, topic_name, [{"value": b"old%d" % i, "partition": 0} for i in range(3)])
    c = h.consumer(bootstrap, **{"enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic_name, 0, OFFSET_END)])
        # OFFSET_END resolves through ListOffsets; the consumer then reports EOF at offset 3.
        deadline = time.monotonic() + 15
        eof_at = None
        while time.monotonic() < deadline and eof_at is None:
            m = c.poll(0.2)
            if m is not None and m.error() is not None and m.error().code() == KafkaError._PARTITION_EOF:
                eof_at = m.offset()
            elif m is not None:
                raise AssertionError(f"unexpected message before EOF: {m.value()!r} @ {m.offset()}")
        assert eof_at == 3
        h.produce_all(p, topic_name, [{"value": b"new%d" % i, "partition": 0} for i in range(2)])
        got = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(got) < 2:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m)
        assert [(m.offset(), m.value()) for m in got] == [(3, b"new0"), (4, b"new1")]
    finally:
        c.close()


def test_produce_unknown_partition_fails(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name, partitions=1)
    p = h.producer(bootstrap, message_timeout_ms=5000)
    errors = []
    p.produce(topic_name, value=b"x", partition=5, on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(20) == 0
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() in (KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART), errors[0]


# ------------------------------------------------------------------ admin

def test_create_topic_and_already_exists(bootstrap, topic_name):
    a = h.admin(bootstrap)
    fs = a.create_topics([NewTopic(topic_name, num_partitions=3, replication_factor=1)], request_timeout=15)
    assert fs[topic_name].result(15) is None
    h.wait_for_partitions(bootstrap, topic_name, 3)
    fs = a.create_topics([NewTopic(topic_name, num_partitions=3, replication_factor=1)], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[topic_name].result(15)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


def test_create_topic_invalid_config(bootstrap, topic_name):
    a = h.admin(bootstrap)
    fs = a.create_topics([NewTopic(topic_name, 1, 1, config={"retention.ms": "not-a-number"})], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[topic_name].result(15)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG
    md = a.list_topics(timeout=10)
    assert topic_name not in md.topics


def test_create_topic_invalid_partitions(bootstrap, topic_name):
    a = h.admin(bootstrap)
    fs = a.create_topics([NewTopic(topic_name, num_partitions=0, replication_factor=1)], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[topic_name].result(15)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS


def _describe_topic(a, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return a.describe_configs([res], request_timeout=15)[res].result(15)


def test_describe_configs_defaults(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    cfg = _describe_topic(h.admin(bootstrap), topic_name)
    # Kafka's defaults for a broker started without overrides.
    assert cfg["cleanup.policy"].value == "delete"
    assert cfg["retention.ms"].value == "604800000"
    assert cfg["segment.bytes"].value == "1073741824"
    for name in ("cleanup.policy", "retention.ms", "segment.bytes"):
        assert cfg[name].is_default, name


def test_describe_configs_reflects_broker_set(broker_factory, topic_name):
    b = broker_factory(sets={"log.retention.ms": "3600000", "log.segment.bytes": "2097152"})
    h.create_topic(b.bootstrap, topic_name)
    cfg = _describe_topic(h.admin(b.bootstrap), topic_name)
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["segment.bytes"].value == "2097152"


def test_create_with_config_then_describe(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name, config={"retention.ms": "123456", "cleanup.policy": "compact"})
    cfg = _describe_topic(h.admin(bootstrap), topic_name)
    assert cfg["retention.ms"].value == "123456"
    assert cfg["cleanup.policy"].value == "compact"
    assert not cfg["retention.ms"].is_default


def test_alter_configs(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    a = h.admin(bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"retention.ms": "7200000"})
    a.alter_configs([res], request_timeout=15)[res].result(15)
    cfg = _describe_topic(a, topic_name)
    assert cfg["retention.ms"].value == "7200000"
    assert not cfg["retention.ms"].is_default


def test_incremental_alter_configs(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    a = h.admin(bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "200000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res], request_timeout=15)[res].result(15)
    cfg = _describe_topic(a, topic_name)
    assert cfg["retention.ms"].value == "86400000"
    assert cfg["max.message.bytes"].value == "200000"
    # DELETE reverts to the default.
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([res], request_timeout=15)[res].result(15)
    cfg = _describe_topic(a, topic_name)
    assert cfg["retention.ms"].value == "604800000"
    assert cfg["retention.ms"].is_default
    assert cfg["max.message.bytes"].value == "200000"


def test_alter_configs_invalid_value(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    a = h.admin(bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as ei:
        a.incremental_alter_configs([res], request_timeout=15)[res].result(15)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert _describe_topic(a, topic_name)["retention.ms"].value == "604800000"


def test_create_partitions(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name, partitions=1)
    a = h.admin(bootstrap)
    fs = a.create_partitions([NewPartitions(topic_name, 3)], request_timeout=15)
    assert fs[topic_name].result(15) is None
    h.wait_for_partitions(bootstrap, topic_name, 3)
    # The new partitions are usable.
    h.produce_all(h.producer(bootstrap, acks="all"), topic_name, [{"value": b"p2", "partition": 2}])
    got = h.consume_n(bootstrap, topic_name, 1, partitions=[2])
    assert [(m.partition(), m.offset(), m.value()) for m in got] == [(2, 0, b"p2")]
    # Shrinking is invalid.
    fs = a.create_partitions([NewPartitions(topic_name, 2)], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[topic_name].result(15)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS


def test_delete_topic(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    h.produce_all(h.producer(bootstrap), topic_name, [{"value": b"x", "partition": 0}])
    a = h.admin(bootstrap)
    fs = a.delete_topics([topic_name], request_timeout=15)
    assert fs[topic_name].result(15) is None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and topic_name in a.list_topics(timeout=10).topics:
        time.sleep(0.1)
    assert topic_name not in a.list_topics(timeout=10).topics
    # Deleting again: UNKNOWN_TOPIC_OR_PARTITION.
    fs = a.delete_topics([topic_name], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[topic_name].result(15)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_cluster(bootstrap, broker):
    a = h.admin(bootstrap)
    desc = a.describe_cluster(request_timeout=15).result(15)
    assert len(desc.nodes) == 1
    node = desc.nodes[0]
    assert (node.host, node.port) == (broker.host, broker.port)
    assert desc.controller is not None and desc.controller.id == node.id
    assert desc.cluster_id
