"""Petrel's own command-line tools against a running broker and its files."""

import json
import os
import shutil
import subprocess

import pytest

import petrel_helpers as h
from conftest import is_peer, petrel_bin

pytestmark = pytest.mark.skipif(is_peer(), reason="exercises Petrel's CLI and data directory")


def petrel(*args, stdin: bytes | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(petrel_bin()), *args], input=stdin, capture_output=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"petrel {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}"
    return proc


def test_topics_produce_consume_roundtrip(broker_factory, topic_name):
    b = broker_factory()
    bs = ["--bootstrap", b.bootstrap]
    petrel("topics", "create", topic_name, "--partitions", "3", "--config", "retention.ms=3600000", *bs)
    listed = json.loads(petrel("topics", "list", "--json", *bs).stdout)
    assert {"name": topic_name, "partitions": 3, "internal": False} in listed
    again = petrel("topics", "create", topic_name, *bs, check=False)
    assert again.returncode != 0 and b"TOPIC_ALREADY_EXISTS" in again.stderr

    lines = [f"key{i}:value-{i}" for i in range(30)]
    petrel("produce", "--topic", topic_name, "--partition", "1", "--key-separator", ":", *bs,
           stdin=("\n".join(lines) + "\n").encode())
    out = petrel("consume", "--topic", topic_name, "--partition", "1", "--from-beginning", "--max-messages", "30",
                 "--format", "%k=%v@%o", *bs).stdout.decode().splitlines()
    assert out == [f"key{i}=value-{i}@{i}" for i in range(30)]

    described = json.loads(petrel("topics", "describe", topic_name, "--json", *bs).stdout)
    topic = described[0] if isinstance(described, list) else described
    text = json.dumps(topic)
    assert "retention.ms" in text and "3600000" in text

    petrel("topics", "alter", topic_name, "--partitions", "5", "--config", "retention.ms=7200000", *bs)
    described = json.dumps(json.loads(petrel("topics", "describe", topic_name, "--json", *bs).stdout))
    assert "7200000" in described
    petrel("topics", "delete", topic_name, *bs)
    listed = json.loads(petrel("topics", "list", "--json", *bs).stdout)
    assert all(t["name"] != topic_name for t in listed)


def test_dump_verifies_and_finds_corruption(broker_factory, topic_name, tmp_path):
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name)
    p = h.producer(b.bootstrap, acks="all")
    # Two flushes: at least two batches on disk.
    h.produce_all(p, topic_name, [{"key": b"k%d" % i, "value": b"v" * 200, "partition": 0} for i in range(100)])
    h.produce_all(p, topic_name, [{"key": b"k%d" % i, "value": b"v" * 200, "partition": 0} for i in range(100, 200)])
    pdir = b.data_dir / f"{topic_name}-0"
    ok = petrel("dump", "--verify", str(pdir))
    assert b"no problems" in ok.stdout.lower() or ok.returncode == 0
    deep = petrel("dump", "--deep", "--print-data", str(pdir / "00000000000000000000.log")).stdout.decode()
    assert "payload: " + "v" * 200 in deep and "key: k199" in deep

    # Flip one byte inside the second batch of a copy: verification must fail and name the spot.
    copy = tmp_path / "copy-0"
    shutil.copytree(pdir, copy)
    log = copy / "00000000000000000000.log"
    data = bytearray(log.read_bytes())
    first_len = int.from_bytes(data[8:12], "big") + 12
    assert len(data) > first_len + 100, "expected a second batch"
    data[first_len + 100] ^= 0xFF
    log.write_bytes(bytes(data))
    bad = petrel("dump", "--verify", str(copy), check=False)
    assert bad.returncode != 0
    report = (bad.stdout + bad.stderr).decode()
    assert "00000000000000000000.log" in report
    assert str(first_len) in report, report[-2000:]


def test_groups_describe_and_reset(broker_factory, topic_name):
    b = broker_factory(sets={"group.initial.rebalance.delay.ms": "0"})
    bs = ["--bootstrap", b.bootstrap]
    h.create_topic(b.bootstrap, topic_name, partitions=2)
    h.produce_all(h.producer(b.bootstrap, acks="all"), topic_name,
                  [{"value": b"m%d" % i, "partition": i % 2} for i in range(20)])
    group = topic_name + "-g"
    c = h.consumer(b.bootstrap, **{"group.id": group})
    from confluent_kafka import TopicPartition
    c.commit(offsets=[TopicPartition(topic_name, 0, 4), TopicPartition(topic_name, 1, 10)], asynchronous=False)
    c.close()
    described = json.loads(petrel("groups", "describe", group, "--json", *bs).stdout)
    lags = {(o["topic"], o["partition"]): (o["committed"], o["lag"]) for o in described["offsets"]}
    assert lags == {(topic_name, 0): (4, 6), (topic_name, 1): (10, 0)}
    assert group in petrel("groups", "list", *bs).stdout.decode()
    plan = json.loads(petrel("groups", "reset-offsets", group, "--topic", topic_name, "--to-earliest", "--json", *bs).stdout)
    assert sorted((p["partition"], p["after"]) for p in plan) == [(0, 0), (1, 0)]
    # A dry run changes nothing; --execute does.
    described = json.loads(petrel("groups", "describe", group, "--json", *bs).stdout)
    assert sorted(o["committed"] for o in described["offsets"]) == [4, 10]
    petrel("groups", "reset-offsets", group, "--topic", topic_name, "--to-earliest", "--execute", *bs)
    described = json.loads(petrel("groups", "describe", group, "--json", *bs).stdout)
    assert sorted(o["committed"] for o in described["offsets"]) == [0, 0]
    petrel("groups", "delete", group, *bs)
    missing = petrel("groups", "delete", group, *bs, check=False)
    assert missing.returncode != 0 and b"GROUP_ID_NOT_FOUND" in missing.stderr


def test_console_parity_topic_flag_and_auto_created_topic(broker_factory, topic_name):
    b = broker_factory()
    bs = ["--bootstrap", b.bootstrap]
    # kafka-topics.sh spells the name --topic; both spellings work, giving it twice does not.
    petrel("topics", "create", "--topic", topic_name, "--partitions", "2", *bs)
    assert {"name": topic_name, "partitions": 2, "internal": False} in json.loads(petrel("topics", "list", "--json", *bs).stdout)
    both = petrel("topics", "create", topic_name, "--topic", topic_name, *bs, check=False)
    assert both.returncode != 0
    # Like kafka-console-producer, producing to a missing topic creates it (auto.create.topics.enable).
    fresh = topic_name + "-auto"
    petrel("produce", "--topic", fresh, *bs, stdin=b"hello\n")
    out = petrel("consume", "--topic", fresh, "--from-beginning", "--max-messages", "1", "--format", "%v", *bs)
    assert out.stdout.decode().split() == ["hello"]
    # With auto-creation off, the producer says the topic does not exist and exits non-zero.
    off = broker_factory(sets={"auto.create.topics.enable": "false"})
    refused = petrel("produce", "--topic", fresh, "--bootstrap", off.bootstrap, stdin=b"x\n", check=False)
    assert refused.returncode != 0 and b"does not exist" in refused.stderr
