"""KIP-227 fetch sessions with real clients. kafka-python opens a session with a full fetch and then
fetches incrementally; every record arrives exactly once, also when the cache is too small and
sessions are evicted under it. librdkafka 2.16 (confluent-kafka) sends sessionless fetches
(epoch -1): it must keep working and open no session."""

import threading
import time
import urllib.request

import pytest
from kafka import KafkaConsumer

import petrel_helpers as h
from conftest import _free_port, is_peer

pytestmark = pytest.mark.skipif(is_peer(), reason="Petrel's session metrics")


def _metrics(port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _produce_rounds(bs: str, topic: str, partitions: int, rounds: int, per_round: int, pause: float) -> list[bytes]:
    p = h.producer(bs)
    sent = []
    for r in range(rounds):
        msgs = [{"value": f"{r}-{i}".encode(), "partition": i % partitions} for i in range(per_round)]
        h.produce_all(p, topic, msgs)
        sent += [m["value"] for m in msgs]
        time.sleep(pause)
    return sent


def _consume_confluent(bs: str, topic: str, partitions: int, n: int, out: list, stop: threading.Event, **conf) -> None:
    from confluent_kafka import TopicPartition
    c = h.consumer(bs, fetch_wait_max_ms=100, **conf)
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    deadline = time.monotonic() + 60
    while len(out) < n and time.monotonic() < deadline and not stop.is_set():
        for m in c.consume(num_messages=500, timeout=0.2):
            assert not m.error(), m.error()
            out.append(m.value())
    time.sleep(0.5)  # catch duplicates
    for m in c.consume(num_messages=500, timeout=0.3):
        if not m.error():
            out.append(m.value())
    c.close()


def test_confluent_kafka_sessionless_fetches(broker_factory, topic_name):
    port = _free_port()
    b = broker_factory({"metrics.listen": f"127.0.0.1:{port}"})
    bs = b.bootstrap
    parts = 20
    h.create_topic(bs, topic_name, partitions=parts)
    got: list = []
    stop = threading.Event()
    t = threading.Thread(target=_consume_confluent, args=(bs, topic_name, parts, 2000, got, stop))
    t.start()
    sent = _produce_rounds(bs, topic_name, parts, rounds=5, per_round=400, pause=0.3)
    t.join(90)
    assert sorted(got) == sorted(sent), f"got {len(got)} of {len(sent)} (duplicates or losses)"
    m = _metrics(port)
    assert m['petrel_request_duration_seconds_count{api="Fetch"}'] >= 5
    assert m["petrel_fetch_sessions_created_total"] == 0


def _kafka_python_consumer(bs: str, topic: str, parts: int) -> KafkaConsumer:
    from kafka import TopicPartition
    c = KafkaConsumer(bootstrap_servers=bs, auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100)
    c.assign([TopicPartition(topic, p) for p in range(parts)])
    return c


def _poll_until(c: KafkaConsumer, got: list, n: int, timeout: float = 30, then: float = 0.0) -> None:
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for records in c.poll(timeout_ms=200).values():
            got += [rec.value for rec in records]
    end = time.monotonic() + then
    while time.monotonic() < end:
        for records in c.poll(timeout_ms=100).values():
            got += [rec.value for rec in records]


def test_kafka_python_consumes_through_incremental_sessions(broker_factory, topic_name):
    port = _free_port()
    b = broker_factory({"metrics.listen": f"127.0.0.1:{port}"})
    bs = b.bootstrap
    parts = 8
    h.create_topic(bs, topic_name, partitions=parts)
    c = _kafka_python_consumer(bs, topic_name, parts)
    got, sent = [], []
    p = h.producer(bs)
    for r in range(4):
        msgs = [{"value": f"{r}-{i}".encode(), "partition": (i * 3 + r) % parts} for i in range(200)]
        h.produce_all(p, topic_name, msgs)
        sent += [x["value"] for x in msgs]
        _poll_until(c, got, len(sent), then=0.5)  # idle incremental fetches too
    m = _metrics(port)
    c.close()
    assert sorted(got) == sorted(sent), f"got {len(got)} of {len(sent)}"
    created = m["petrel_fetch_sessions_created_total"]
    fetches = m['petrel_request_duration_seconds_count{api="Fetch"}']
    assert m["petrel_fetch_sessions"] == 1 and m["petrel_fetch_session_partitions"] == parts
    assert created == 1, created
    assert fetches >= 10, fetches  # one full fetch, the rest incremental
    assert m.get('petrel_fetch_errors_total{error="FETCH_SESSION_ID_NOT_FOUND"}', 0) == 0
    assert m.get('petrel_fetch_errors_total{error="INVALID_FETCH_SESSION_EPOCH"}', 0) == 0


def test_kafka_python_survives_evictions_with_one_slot(broker_factory, topic_name):
    """Two kafka-python consumers, one cache slot: the larger session evicts the smaller, whose next
    incremental fetch gets FETCH_SESSION_ID_NOT_FOUND; the client falls back to a full fetch and
    both read everything exactly once."""
    port = _free_port()
    b = broker_factory({"metrics.listen": f"127.0.0.1:{port}", "max.incremental.fetch.session.cache.slots": "1"})
    bs = b.bootstrap
    small, large = f"{topic_name}-a", f"{topic_name}-b"
    h.create_topic(bs, small, partitions=2)
    h.create_topic(bs, large, partitions=6)
    cs = _kafka_python_consumer(bs, small, 2)
    got_small, got_large = [], []
    _poll_until(cs, got_small, 0, then=0.5)  # the small session exists
    cl = _kafka_python_consumer(bs, large, 6)
    _poll_until(cl, got_large, 0, then=0.5)  # the large one evicts it
    sent_small = _produce_rounds(bs, small, 2, rounds=2, per_round=100, pause=0.0)
    sent_large = _produce_rounds(bs, large, 6, rounds=2, per_round=100, pause=0.0)
    for _ in range(3):
        _poll_until(cs, got_small, len(sent_small), then=0.3)
        _poll_until(cl, got_large, len(sent_large), then=0.3)
    m = _metrics(port)
    cs.close()
    cl.close()
    assert sorted(got_small) == sorted(sent_small)
    assert sorted(got_large) == sorted(sent_large)
    assert m["petrel_fetch_session_evictions_total"] >= 1
    assert m["petrel_fetch_sessions"] == 1
    assert m.get('petrel_fetch_errors_total{error="FETCH_SESSION_ID_NOT_FOUND"}', 0) >= 1
