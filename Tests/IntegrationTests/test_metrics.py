"""The Prometheus endpoint (`metrics.listen`): a scrape after real traffic from confluent-kafka,
parsed with the Prometheus client's own exposition-format parser; `GET /health`."""

import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import KafkaError, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

import petrel_helpers as h
from conftest import _free_port, is_peer

pytestmark = pytest.mark.skipif(is_peer(), reason="Petrel's metrics endpoint")


def _get(url: str, timeout: float = 10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def _scrape(port: int) -> dict:
    status, ctype, text = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, text
    assert ctype.startswith("text/plain"), ctype
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # Lint as promtool would: every family is Petrel's, typed, and documented.
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            assert line.split()[2].startswith("petrel_"), line
    for name, family in families.items():
        assert name.startswith("petrel_"), name
        assert family.documentation, f"{name} has no HELP"
        assert family.type in ("counter", "gauge", "histogram"), (name, family.type)
    return families


def _samples(families: dict, family: str, sample: str | None = None, **labels) -> list:
    f = families.get(family)
    assert f is not None, f"no {family} in the scrape (have {sorted(families)[:80]})"
    name = sample or family
    return [s for s in f.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def _value(families: dict, family: str, sample: str | None = None, **labels) -> float:
    found = _samples(families, family, sample, **labels)
    assert len(found) == 1, f"{family}{labels}: {found}"
    return found[0].value


def test_scrape_after_traffic(broker_factory, topic_name):
    port = _free_port()
    b = broker_factory({"metrics.listen": f"127.0.0.1:{port}"})
    bs = b.bootstrap
    h.create_topic(bs, topic_name, partitions=2)
    value = b"v" * 100
    h.produce_all(h.producer(bs), topic_name, [{"key": str(i).encode(), "value": value, "partition": i % 2} for i in range(100)])

    # A group reads everything and commits; 10 more records then make its lag 10.
    group = f"{topic_name}-g"
    c = h.group_consumer(bs, group)
    c.subscribe([topic_name])
    got = h.poll_group([c], 100)[0]
    assert len(got) == 100
    c.commit(asynchronous=False)
    c.close()
    h.produce_all(h.producer(bs), topic_name, [{"value": value, "partition": i % 2} for i in range(10)])

    # A produce error the broker decides (the topic's max.message.bytes), counted by code.
    small = f"{topic_name}-small"
    h.create_topic(bs, small, config={"max.message.bytes": "1000"})
    p = h.producer(bs, message_send_max_retries=0)
    errors = []
    p.produce(small, value=b"x" * 5000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errors

    fams = _scrape(port)
    assert _value(fams, "petrel_topic_messages_in", "petrel_topic_messages_in_total", topic=topic_name) == 110
    bytes_in = _value(fams, "petrel_topic_bytes_in", "petrel_topic_bytes_in_total", topic=topic_name)
    assert 110 * 100 < bytes_in < 110 * 100 * 3, bytes_in
    assert _value(fams, "petrel_topic_bytes_out", "petrel_topic_bytes_out_total", topic=topic_name) >= 100 * 100
    assert _value(fams, "petrel_produce_errors", "petrel_produce_errors_total", error="MESSAGE_TOO_LARGE") >= 1

    # Per-partition log figures.
    ends = [_value(fams, "petrel_log_end_offset", topic=topic_name, partition=str(i)) for i in range(2)]
    assert sum(ends) == 110, ends
    for i in range(2):
        assert _value(fams, "petrel_log_start_offset", topic=topic_name, partition=str(i)) == 0
        assert _value(fams, "petrel_log_segments", topic=topic_name, partition=str(i)) == 1
        assert _value(fams, "petrel_log_size_bytes", topic=topic_name, partition=str(i)) > 0

    # Consumer-group lag per partition, from the committed offsets.
    lags = [_value(fams, "petrel_consumer_group_lag", group=group, topic=topic_name, partition=str(i)) for i in range(2)]
    assert lags == [5, 5], lags

    # Request latency histograms per API, cumulative buckets ending in +Inf == count.
    buckets = _samples(fams, "petrel_request_duration_seconds", "petrel_request_duration_seconds_bucket", api="Produce")
    count = _value(fams, "petrel_request_duration_seconds", "petrel_request_duration_seconds_count", api="Produce")
    assert count >= 3, count
    values = [s.value for s in sorted(buckets, key=lambda s: float(s.labels["le"]))]
    assert values == sorted(values) and values[-1] == count, values
    assert _value(fams, "petrel_request_duration_seconds", "petrel_request_duration_seconds_count", api="Fetch") >= 1
    assert _value(fams, "petrel_request_duration_seconds", "petrel_request_duration_seconds_count", api="Metadata") >= 1

    # Process and server figures.
    assert _value(fams, "petrel_active_connections") >= 0
    assert _value(fams, "petrel_connections_accepted", "petrel_connections_accepted_total") >= 3
    assert _value(fams, "petrel_process_resident_memory_bytes") > 10 * 1024 * 1024
    assert _value(fams, "petrel_process_cpu_seconds", "petrel_process_cpu_seconds_total") > 0
    assert 0 < _value(fams, "petrel_open_fds") <= _value(fams, "petrel_max_fds")
    assert _value(fams, "petrel_segment_open_files") >= 3
    assert _value(fams, "petrel_append_group_batches", "petrel_append_group_batches_total") >= 2

    # Counters only grow between scrapes.
    h.produce_all(h.producer(bs), topic_name, [{"value": value, "partition": 0}])
    fams2 = _scrape(port)
    assert _value(fams2, "petrel_topic_messages_in", "petrel_topic_messages_in_total", topic=topic_name) == 111
    assert _value(fams2, "petrel_consumer_group_lag", group=group, topic=topic_name, partition="0") == 6


def test_group_commit_metrics(broker_factory, topic_name):
    """flush.messages=1: every acks=all batch waits for a group commit, whose latency and size are
    histograms."""
    port = _free_port()
    b = broker_factory({"metrics.listen": f"127.0.0.1:{port}", "log.flush.interval.messages": "1"})
    h.create_topic(b.bootstrap, topic_name)
    h.produce_all(h.producer(b.bootstrap, acks="all", linger_ms=0), topic_name, [{"value": b"x"} for _ in range(20)])
    fams = _scrape(port)
    flushes = _value(fams, "petrel_log_flush_duration_seconds", "petrel_log_flush_duration_seconds_count")
    assert flushes >= 1, flushes
    assert _value(fams, "petrel_log_flush_duration_seconds", "petrel_log_flush_duration_seconds_sum") > 0
    batches = _value(fams, "petrel_group_commit_batches", "petrel_group_commit_batches_sum")
    assert batches >= 1, batches


def test_health_and_unknown_paths(broker_factory):
    port = _free_port()
    broker_factory({"metrics.listen": f"127.0.0.1:{port}"})
    status, _, text = _get(f"http://127.0.0.1:{port}/health")
    assert status == 200 and "status=ok" in text and "offline_partitions=0" in text, (status, text)
    status, _, _ = _get(f"http://127.0.0.1:{port}/nope")
    assert status == 404
    # Keep-alive: several scrapes on one connection.
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(3):
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        assert r.status == 200 and b"petrel_process_cpu_seconds_total" in r.read()
    conn.close()


def test_health_log_line(broker_factory, topic_name):
    b = broker_factory({"petrel.health.log.interval.ms": "1000"})
    h.create_topic(b.bootstrap, topic_name)
    h.produce_all(h.producer(b.bootstrap), topic_name, [{"value": b"x" * 100} for _ in range(500)])
    deadline = time.monotonic() + 10
    lines = []
    while time.monotonic() < deadline:
        lines = [l for l in b.output().splitlines() if " health" in l and "messages_in_per_sec=" in l]
        if any("messages_in_per_sec=0.0" not in l for l in lines):
            break
        time.sleep(0.2)
    assert lines, b.output()[-2000:]
    assert any("messages_in_per_sec=0.0" not in l for l in lines), lines
    assert all("connections=" in l and "max_lag=" in l for l in lines), lines


def test_metrics_off_by_default(broker_factory):
    b = broker_factory()
    assert h.admin(b.bootstrap).list_topics(timeout=10).brokers
    assert "metrics endpoint listening" not in b.output()
