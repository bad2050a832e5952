"""kcat (librdkafka CLI) against the broker: produce/consume, headers, codecs, metadata."""

import json
import shutil
import subprocess

import pytest

import petrel_helpers as h

KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed (tools/install-deps.sh installs it)")

TIMEOUT = 60


def kcat(*args: str, stdin: str | None = None) -> str:
    p = subprocess.run([KCAT, *args], input=stdin, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, f"kcat {' '.join(args)} exited {p.returncode}: {p.stderr[-2000:]}"
    return p.stdout


def produce(bootstrap, topic, lines, *extra):
    kcat("-P", "-b", bootstrap, "-t", topic, "-K:", *extra, stdin="".join(l + "\n" for l in lines))


def consume(bootstrap, topic, fmt="%k:%s\\n", *extra):
    return kcat("-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt, *extra)


def test_keyed_roundtrip(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    lines = [f"key{i}:value-{i}-{'x' * (i % 7)}" for i in range(50)]
    produce(bootstrap, topic_name, lines)
    out = consume(bootstrap, topic_name)
    assert out.splitlines() == lines


def test_auto_create_on_produce(bootstrap, topic_name):
    # auto.create.topics.enable defaults to true: producing to an unknown topic creates it.
    lines = ["a:1", "b:2", "c:3"]
    produce(bootstrap, topic_name, lines)
    assert consume(bootstrap, topic_name).splitlines() == lines


def test_headers(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    produce(bootstrap, topic_name, ["k1:v1"], "-H", "h1=one", "-H", "h2=two")
    produce(bootstrap, topic_name, ["k2:v2"], "-H", "only=x")
    out = consume(bootstrap, topic_name, "%k|%s|%h\\n")
    assert out.splitlines() == ["k1|v1|h1=one,h2=two", "k2|v2|only=x"]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(bootstrap, topic_name, codec):
    h.create_topic(bootstrap, topic_name)
    # Repetitive values so compressed batches really are compressed; many per batch.
    lines = [f"k{i}:{codec}-payload-{i}-" + "abcdefgh" * 20 for i in range(200)]
    produce(bootstrap, topic_name, lines, "-X", f"compression.codec={codec}", "-X", "linger.ms=50")
    assert consume(bootstrap, topic_name).splitlines() == lines


def test_offsets_and_partitions_in_output(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name, partitions=3)
    for p in range(3):
        kcat("-P", "-b", bootstrap, "-t", topic_name, "-p", str(p), "-K:",
             stdin="".join(f"p{p}k{i}:p{p}v{i}\n" for i in range(4)))
    out = kcat("-C", "-b", bootstrap, "-t", topic_name, "-o", "beginning", "-e", "-q", "-f", "%p %o %k %s\\n")
    rows = sorted(tuple(l.split(" ")) for l in out.splitlines())
    expected = sorted((str(p), str(i), f"p{p}k{i}", f"p{p}v{i}") for p in range(3) for i in range(4))
    assert rows == expected


def test_metadata_listing(bootstrap, broker, topic_name):
    h.create_topic(bootstrap, topic_name, partitions=2)
    md = json.loads(kcat("-L", "-J", "-b", bootstrap))
    assert len(md["brokers"]) == 1
    b = md["brokers"][0]
    assert b["name"] == f"{broker.host}:{broker.port}"
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic_name in topics
    t = topics[topic_name]
    assert "error" not in t or not t["error"]
    parts = sorted(t["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1]
    for p in parts:
        assert p["leader"] == b["id"]
        assert [r["id"] for r in p["replicas"]] == [b["id"]]
        assert [r["id"] for r in p["isrs"]] == [b["id"]]


def test_metadata_single_topic(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name, partitions=3)
    md = json.loads(kcat("-L", "-J", "-b", bootstrap, "-t", topic_name))
    assert [t["topic"] for t in md["topics"]] == [topic_name]
    assert len(md["topics"][0]["partitions"]) == 3
