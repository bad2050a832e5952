#!/usr/bin/env python3
"""Drives real Kafka clients through the capture proxy to produce golden fixtures.

    drive_clients.py confluent|kafka-python BOOTSTRAP

Each step is best-effort: a broker that lacks an API (the peer used for capturing does not
implement every admin API) makes that step fail, which is printed and skipped.
"""

import sys
import time
import traceback

STEP_TIMEOUT = 10


def step(name, fn):
    try:
        fn()
        print(f"  ok   {name}")
    except Exception as e:  # noqa: BLE001 - best effort by design
        print(f"  FAIL {name}: {type(e).__name__}: {str(e)[:200]}")


def confluent(bs: str) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       NewPartitions, NewTopic)
    t = f"cap-ck-{int(time.time())}"
    a = AdminClient({"bootstrap.servers": bs})
    step("create_topics", lambda: a.create_topics([NewTopic(t, 2, 1, config={"retention.ms": "3600000"})])[t].result(STEP_TIMEOUT))
    step("create_topics (already exists)", lambda: a.create_topics([NewTopic(t, 2, 1)])[t].result(STEP_TIMEOUT))
    step("list_topics", lambda: a.list_topics(timeout=STEP_TIMEOUT))
    now = int(time.time() * 1000)

    def produce(codec, idem=False, acks="all"):
        p = Producer({"bootstrap.servers": bs, "compression.type": codec, "linger.ms": 20, "acks": acks,
                      "enable.idempotence": idem})
        for i in range(5):
            p.produce(t, key=b"key-%d" % i, value=(b"value-%d-%s-" % (i, codec.encode())) * 3, partition=0,
                      headers=[("h1", b"v1"), ("n", str(i).encode())], timestamp=now + i)
        assert p.flush(STEP_TIMEOUT) == 0
    for codec in ("none", "zstd", "lz4", "snappy", "gzip"):
        step(f"produce {codec}", lambda c=codec: produce(c))
    step("produce idempotent (InitProducerId)", lambda: produce("none", idem=True))

    def consume():
        c = Consumer({"bootstrap.servers": bs, "group.id": "capture", "enable.auto.commit": False})
        c.assign([TopicPartition(t, 0, OFFSET_BEGINNING)])
        got, end = 0, time.time() + STEP_TIMEOUT
        while got < 10 and time.time() < end:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
        c.get_watermark_offsets(TopicPartition(t, 0), timeout=STEP_TIMEOUT, cached=False)
        c.offsets_for_times([TopicPartition(t, 0, now + 2)], timeout=STEP_TIMEOUT)
        c.close()
    step("consume + watermarks + offsets_for_times", consume)
    res = ConfigResource(ConfigResource.Type.TOPIC, t)
    step("describe_configs", lambda: a.describe_configs([res])[res].result(STEP_TIMEOUT))
    r2 = ConfigResource(ConfigResource.Type.TOPIC, t, set_config={"retention.ms": "7200000"})
    step("alter_configs", lambda: a.alter_configs([r2])[r2].result(STEP_TIMEOUT))
    r3 = ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=[
        ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET)])
    step("incremental_alter_configs", lambda: a.incremental_alter_configs([r3])[r3].result(STEP_TIMEOUT))
    step("create_partitions", lambda: a.create_partitions([NewPartitions(t, 3)])[t].result(STEP_TIMEOUT))
    step("delete_records", lambda: list(a.delete_records([TopicPartition(t, 0, 2)]).values())[0].result(STEP_TIMEOUT))
    step("describe_cluster", lambda: a.describe_cluster().result(STEP_TIMEOUT))
    step("delete_topics", lambda: a.delete_topics([t])[t].result(STEP_TIMEOUT))


def kafka_python(bs: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
    t = f"cap-kp-{int(time.time())}"
    a = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=STEP_TIMEOUT * 1000)
    step("create_topics", lambda: a.create_topics([NewTopic(t, 2, 1)]))
    step("list_topics", lambda: a.list_topics())
    step("describe_topics", lambda: a.describe_topics([t]))
    now = int(time.time() * 1000)

    def produce(codec):
        p = KafkaProducer(bootstrap_servers=bs, compression_type=codec, linger_ms=20, acks="all")
        for i in range(5):
            p.send(t, key=b"key-%d" % i, value=b"kp-value-%d" % i * 3, partition=0,
                   headers=[("h1", b"v1")], timestamp_ms=now + i)
        p.flush(STEP_TIMEOUT)
        p.close(STEP_TIMEOUT)
    for codec in ("gzip", "snappy", None, "lz4", "zstd"):
        step(f"produce {codec}", lambda c=codec: produce(c))

    def consume():
        c = KafkaConsumer(bootstrap_servers=bs, group_id=None, enable_auto_commit=False, consumer_timeout_ms=3000)
        tp = TopicPartition(t, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        list(c)
        c.end_offsets([tp]); c.beginning_offsets([tp]); c.offsets_for_times({tp: now + 2})
        c.close()
    step("consume + offsets", consume)
    step("describe_configs", lambda: a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)]))
    step("alter_configs", lambda: a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t, configs={"retention.ms": "7200000"})]))
    step("create_partitions", lambda: a.create_partitions({t: NewPartitions(3)}))
    step("delete_topics", lambda: a.delete_topics([t]))
    a.close()


if __name__ == "__main__":
    which, bs = sys.argv[1], sys.argv[2]
    print(f"driving {which} via {bs}")
    {"confluent": confluent, "kafka-python": kafka_python}[which](bs)
