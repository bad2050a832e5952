"""Every era of client: message formats v0/v1 (Produce v0-2, Fetch v0-3, ListOffsets v0) served by
converting to and from record batches v2, proven with Debian's sarama 1.22 on its old defaults and
kafka-python pinned to api_version (0, 10). `petrel.legacy.message.formats.enable=false` restores
Kafka 4's floor.

The Go program is Tests/IntegrationTests/go/sarama_legacy/main.go, compiled once per session.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

import petrel_helpers as h
from conftest import IN_CI, is_peer

pytestmark = pytest.mark.skipif(is_peer(), reason="legacy formats are Petrel's conversion")

HERE = Path(__file__).resolve().parent
SRC = HERE / "go" / "sarama_legacy" / "main.go"
GOCODE = Path("/usr/share/gocode/src")


@pytest.fixture(scope="session")
def legacy_bin(tmp_path_factory):
    go = shutil.which("go")
    sarama = GOCODE / "github.com/Shopify/sarama" / "consumer_group.go"
    if not go or not sarama.is_file():
        msg = "Go toolchain or Debian's sarama source missing"
        if IN_CI:
            pytest.fail(msg + " (tools/install-deps.sh installs golang-go and golang-github-shopify-sarama-dev)")
        pytest.skip(msg)
    root = tmp_path_factory.mktemp("sarama-legacy")
    pkg = root / "src" / "sarama_legacy"
    pkg.mkdir(parents=True)
    (pkg / "main.go").write_text(SRC.read_text())
    env = dict(os.environ, GO111MODULE="off", GOPATH=f"{GOCODE.parent}:{root}", GOFLAGS="", GOPROXY="off",
               GOTOOLCHAIN="local")
    if not env.get("GOCACHE") and not env.get("HOME"):
        env["GOCACHE"] = str(root / "cache")
    out = root / "sarama_legacy"
    r = subprocess.run([go, "build", "-o", str(out), "."], cwd=pkg, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"go build failed:\n{r.stdout}\n{r.stderr}"
    return str(out)


def _run(binary, bootstrap, topic, mode, *extra, check=True):
    r = subprocess.run([binary, "-bootstrap", bootstrap, "-topic", topic, "-mode", mode, "-timeout", "40s", *extra],
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, f"{mode} failed ({r.returncode}): {r.stderr}"
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")], r


def test_seed_sync_producer_and_consumer_on_sarama_defaults(broker, legacy_bin, topic_name):
    # The seed's sync producer as written: no Version, so Kafka 0.8.2 / Produce v0 / magic 0.
    produced, _ = _run(legacy_bin, broker.bootstrap, topic_name, "produce", "-count", "3")
    assert [p["offset"] for p in produced if "offset" in p] == [0, 1, 2]
    # Compressed wrappers (magic 0 gzip and snappy message sets) are unpacked into v2 batches.
    for codec in ("gzip", "snappy"):
        _run(legacy_bin, broker.bootstrap, topic_name, "produce", "-count", "4", "-compression", codec)
    # A default-Version consumer (Fetch v0, ListOffsets v0) reads magic-0 message sets.
    consumed, _ = _run(legacy_bin, broker.bootstrap, topic_name, "consume", "-count", "11")
    records = [c for c in consumed if "offset" in c]
    assert [c["offset"] for c in records] == list(range(11))
    assert [c["key"] for c in records] == ["k0", "k1", "k2"] + ["k0", "k1", "k2", "k3"] * 2
    assert [c["value"] for c in records] == ["v0", "v1", "v2"] + ["v0", "v1", "v2", "v3"] * 2
    # What was stored is ordinary v2 batches: a modern client (librdkafka) reads the same records.
    got = h.consume_n(broker.bootstrap, topic_name, 11)
    assert [m.key() for m in got] == [c["key"].encode() for c in records]


def test_sarama_group_at_0_10_2_and_offsets_at_0_9(broker, legacy_bin, topic_name):
    h.create_topic(broker.bootstrap, topic_name)
    h.produce_all(h.producer(broker.bootstrap, acks="all"), topic_name,
                  [{"key": b"k%d" % i, "value": b"v%d" % i, "partition": 0} for i in range(6)])
    consumed, _ = _run(legacy_bin, broker.bootstrap, topic_name, "group", "-version", "0.10.2.0", "-count", "6",
                       "-group", f"g-{topic_name}")
    assert [c["value"] for c in consumed if "offset" in c] == ["v%d" % i for i in range(6)]
    assert h.committed_offsets(broker.bootstrap, f"g-{topic_name}", topic_name, 1) == {0: 6}
    out, _ = _run(legacy_bin, broker.bootstrap, topic_name, "commit09", "-version", "0.9.0.0", "-count", "4",
                  "-group", f"o-{topic_name}")
    assert out[0]["after"] == 4


def test_kafka_python_pinned_to_0_10(broker, topic_name):
    h.create_topic(broker.bootstrap, topic_name)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, api_version=(0, 10), compression_type="gzip")
    for i in range(3):
        p.send(topic_name, key=b"k%d" % i, value=b"v%d" % i, partition=0, timestamp_ms=1_700_000_000_000 + i)
    p.flush()
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=(0, 10), auto_offset_reset="earliest",
                      consumer_timeout_ms=5000)
    from kafka import TopicPartition
    c.assign([TopicPartition(topic_name, 0)])
    got = [(m.offset, m.key, m.value, m.timestamp) for m in c]
    c.close()
    assert got == [(i, b"k%d" % i, b"v%d" % i, 1_700_000_000_000 + i) for i in range(3)]


def test_legacy_formats_off_behaves_like_kafka_4(broker_factory, legacy_bin, topic_name):
    b = broker_factory(sets={"petrel.legacy.message.formats.enable": "false"})
    h.create_topic(b.bootstrap, topic_name)
    _, r = _run(legacy_bin, b.bootstrap, topic_name, "produce", "-count", "1", check=False)
    assert r.returncode != 0
    # Modern clients are unaffected.
    h.produce_all(h.producer(b.bootstrap, acks="all"), topic_name, [{"value": b"modern", "partition": 0}])
    assert [m.value() for m in h.consume_n(b.bootstrap, topic_name, 1)] == [b"modern"]
