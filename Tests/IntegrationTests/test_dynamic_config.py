"""Dynamic broker configs through confluent-kafka's AdminClient: AlterConfigs /
IncrementalAlterConfigs / DescribeConfigs on the BROKER resource (node id and the "" default),
with Kafka's sources, applied to existing topics without a restart, refused outside Kafka's
dynamic set (INVALID_REQUEST), and kept across a restart."""

import json
import os
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource

import petrel_helpers as h
from conftest import is_peer
from test_cli import petrel

pytestmark = pytest.mark.skipif(is_peer(), reason="Petrel's dynamic config store")

BROKER = ConfigResource.Type.BROKER
TOPIC = ConfigResource.Type.TOPIC


def _describe(a, rtype, name):
    res = ConfigResource(rtype, name)
    return a.describe_configs([res], request_timeout=15)[res].result(15)


def _incremental(a, name, **sets):
    entries = [ConfigEntry(k.replace("_", "."), v, incremental_operation=AlterConfigOpType.SET if v is not None else AlterConfigOpType.DELETE)
               for k, v in sets.items()]
    res = ConfigResource(BROKER, name, incremental_configs=entries)
    return a.incremental_alter_configs([res], request_timeout=15)[res].result(15)


def _error_code(exc_info) -> int:
    err = exc_info.value.args[0]
    return err.code()


def test_broker_and_default_dynamic_configs_apply_to_topics_at_once(broker_factory, topic_name):
    b = broker_factory()
    bs = b.bootstrap
    a = h.admin(bs)
    h.create_topic(bs, topic_name)
    assert _describe(a, TOPIC, topic_name)["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    # Node 0's dynamic configs (librdkafka cannot address the "" default resource: BrokerCoreTests'
    # DynamicBrokerConfigTests cover it with encoded requests).
    _incremental(a, "0", log_retention_ms="12345000", log_segment_bytes="65536")
    broker = _describe(a, BROKER, "0")
    assert broker["log.retention.ms"].value == "12345000"
    assert broker["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert not broker["log.retention.ms"].is_read_only
    assert broker["log.segment.bytes"].value == "65536"
    assert broker["node.id"].is_read_only

    # The existing topic (no overrides) follows at once, with the source Kafka reports.
    topic = _describe(a, TOPIC, topic_name)
    assert topic["retention.ms"].value == "12345000"
    assert topic["retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert topic["segment.bytes"].value == "65536"
    assert topic["segment.bytes"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value

    # ... and so does its log: 64 KiB segments now roll while producing 400 KiB.
    h.produce_all(h.producer(bs, linger_ms=0, batch_size=8192), topic_name, [{"value": b"x" * 4000} for _ in range(100)])
    segments = [f for f in os.listdir(b.data_dir / f"{topic_name}-0") if f.endswith(".log")]
    assert len(segments) >= 4, segments

    # DELETE goes back to the next layer (here Kafka's default).
    _incremental(a, "0", log_retention_ms=None)
    assert _describe(a, TOPIC, topic_name)["retention.ms"].value == "604800000"

    # Kept across a restart.
    b.restart()
    a = h.admin(b.bootstrap)
    broker = _describe(a, BROKER, "0")
    assert broker["log.segment.bytes"].value == "65536"
    assert broker["log.segment.bytes"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert "log.retention.ms" not in broker or broker["log.retention.ms"].source != ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert _describe(a, TOPIC, topic_name)["segment.bytes"].value == "65536"


def test_connection_limits_change_without_restart(broker_factory):
    import socket
    import time
    b = broker_factory()
    a = h.admin(b.bootstrap)
    _incremental(a, "0", max_connections_per_ip="3")
    del a
    time.sleep(1.0)  # the admin client's connection closes
    host, port = b.bootstrap.rsplit(":", 1)
    from test_connection_limits import _api_versions
    held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(3)]
    for i, s in enumerate(held):
        assert _api_versions(s, i + 1)
    extra = socket.create_connection((host, int(port)), timeout=5)
    extra.settimeout(5)
    assert extra.recv(1) == b"", "a 4th connection from 127.0.0.1 was not closed"
    for s in held + [extra]:
        s.close()


def test_refusals(broker_factory):
    b = broker_factory()
    a = h.admin(b.bootstrap)
    # Outside Kafka's dynamic set: INVALID_REQUEST; nothing changes.
    with pytest.raises(KafkaException) as e:
        _incremental(a, "0", auto_create_topics_enable="false")
    assert _error_code(e) == KafkaError.INVALID_REQUEST
    with pytest.raises(KafkaException) as e:
        _incremental(a, "0", log_retention_ms="1000", node_id="3")
    assert _error_code(e) == KafkaError.INVALID_REQUEST
    assert _describe(a, BROKER, "0")["log.retention.ms"].source != ConfigSource.DYNAMIC_BROKER_CONFIG.value
    # A bad value: INVALID_CONFIG.
    with pytest.raises(KafkaException) as e:
        _incremental(a, "0", log_retention_ms="soon")
    assert _error_code(e) == KafkaError.INVALID_CONFIG
    # Legacy AlterConfigs replaces the resource's whole dynamic set.
    _incremental(a, "0", log_retention_ms="5000000", log_flush_interval_messages="10")
    res = ConfigResource(BROKER, "0", set_config={"log.retention.ms": "6000000"})
    a.alter_configs([res], request_timeout=15)[res].result(15)
    cfg = _describe(a, BROKER, "0")
    assert cfg["log.retention.ms"].value == "6000000"
    assert cfg["log.flush.interval.messages"].source != ConfigSource.DYNAMIC_BROKER_CONFIG.value


def _join_group(bs, topic, group):
    c = h.consumer(bs, group_id=group)
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    while not c.assignment() and time.monotonic() < deadline:
        c.poll(0.2)
    assert c.assignment(), "consumer got no assignment"
    c.close()


def test_log_level_changes_without_restart(broker_factory, topic_name):
    # Petrel's `log.level` in the dynamic set: a JoinGroup without a member id logs
    # "member id required" at debug level, seen only while the level is debug.
    b = broker_factory()
    bs = b.bootstrap
    a = h.admin(bs)
    h.create_topic(bs, topic_name)
    _join_group(bs, topic_name, "quiet-before")
    _incremental(a, "0", log_level="debug")
    entry = _describe(a, BROKER, "0")["log.level"]
    assert entry.value == "debug" and entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    _join_group(bs, topic_name, "loud-while-debug")
    _incremental(a, "0", log_level=None)  # DELETE: back to --log-level (info)
    _join_group(bs, topic_name, "quiet-after")
    time.sleep(0.5)
    debug = [line for line in b.output().splitlines() if " debug " in line]
    assert any("loud-while-debug" in line and "member id required" in line for line in debug), debug
    assert not any("quiet-before" in line or "quiet-after" in line for line in debug), debug
    with pytest.raises(KafkaException):
        _incremental(a, "0", log_level="chatty")


def test_cli_alters_cluster_defaults_and_one_broker(broker_factory, topic_name):
    # `petrel configs` reaches the "" (cluster default) BROKER resource that librdkafka cannot:
    # a default applies to topics without overrides, a node's own value beats it, as in Kafka.
    b = broker_factory()
    bs = b.bootstrap
    a = h.admin(bs)
    h.create_topic(bs, topic_name)
    petrel("configs", "alter", "--bootstrap", bs, "--broker-defaults", "--add-config", "log.retention.ms=7200000")
    defaults = json.loads(petrel("configs", "describe", "--bootstrap", bs, "--broker-defaults", "--json").stdout)
    assert {"name": "log.retention.ms", "value": "7200000", "source": "DYNAMIC_DEFAULT_BROKER_CONFIG",
            "readOnly": False, "sensitive": False} in defaults
    topic = _describe(a, TOPIC, topic_name)["retention.ms"]
    assert (topic.value, topic.source) == ("7200000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    petrel("configs", "alter", "--bootstrap", bs, "--broker", "0", "--add-config", "log.retention.ms=3600000")
    topic = _describe(a, TOPIC, topic_name)["retention.ms"]
    assert (topic.value, topic.source) == ("3600000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    text = petrel("configs", "describe", "--bootstrap", bs, "--broker", "0").stdout.decode()
    assert "log.retention.ms=3600000\t(DYNAMIC_BROKER_CONFIG)" in text, text
    petrel("configs", "alter", "--bootstrap", bs, "--broker", "0", "--delete-config", "log.retention.ms")
    assert _describe(a, TOPIC, topic_name)["retention.ms"].value == "7200000"
    # Outside Kafka's dynamic set: refused (INVALID_REQUEST), non-zero exit.
    bad = petrel("configs", "alter", "--bootstrap", bs, "--broker", "0", "--add-config", "listeners=PLAINTEXT://x:1", check=False)
    assert bad.returncode != 0 and b"INVALID_REQUEST" in bad.stderr, bad.stderr

