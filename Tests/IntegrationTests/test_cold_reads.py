"""Cold reads (KAFKA-7504, `petrel.fetch.cold.read.offload`): fetched log ranges that are not in the
page cache are read into it on a reader thread before their sendfile, which would otherwise block
the event loop; resident ranges go straight to sendfile. The page cache is dropped
(`/proc/sys/vm/drop_caches`, root) between producing and consuming; every record must come back
intact and in order, and the metrics say which path served it."""

import os
import socket
import subprocess
import time

import pytest
from confluent_kafka import TopicPartition

import petrel_helpers as h
from conftest import _free_port, is_peer
from test_metrics import _scrape, _value

pytestmark = [
    pytest.mark.skipif(is_peer(), reason="Petrel's fetch path"),
    pytest.mark.skipif(os.geteuid() != 0, reason="dropping the page cache needs root"),
]

PARTITIONS = 4
PER_PARTITION = 600
VALUE = 8 * 1024


def _drop_page_cache():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1\n")


def _value_for(partition, i):
    head = f"{partition}:{i}:".encode()
    return head + bytes((partition * 31 + i + k) % 251 for k in range(64)) * (VALUE // 64)


def _consume_all(bs, topic):
    c = h.consumer(bs, max_partition_fetch_bytes=1 << 20, fetch_max_bytes=4 << 20)
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = {p: [] for p in range(PARTITIONS)}
    total = PARTITIONS * PER_PARTITION
    n = 0
    end = time.monotonic() + 60
    while n < total and time.monotonic() < end:
        for m in c.consume(num_messages=500, timeout=0.5):
            if m.error():
                continue
            got[m.partition()].append(m.value())
            n += 1
    c.close()
    for p in range(PARTITIONS):
        assert len(got[p]) == PER_PARTITION, (p, len(got[p]))
        for i, value in enumerate(got[p]):
            assert value == _value_for(p, i), f"partition {p} record {i} differs"


def _produce(bs, topic):
    h.create_topic(bs, topic, partitions=PARTITIONS)
    p = h.producer(bs, linger_ms=20, batch_size=256 * 1024)
    h.produce_all(p, topic, [{"value": _value_for(part, i), "partition": part}
                             for i in range(PER_PARTITION) for part in range(PARTITIONS)])


def test_cold_ranges_are_read_off_the_event_loop_and_resident_ones_sent(broker_factory, topic_name):
    port = _free_port()
    b = broker_factory({"metrics.listen": f"127.0.0.1:{port}"})
    bs = b.bootstrap
    _produce(bs, topic_name)
    # Just written: resident, served by sendfile.
    _consume_all(bs, topic_name)
    assert _value(_scrape(port), "petrel_fetch_cold_reads", "petrel_fetch_cold_reads_total") == 0
    _drop_page_cache()
    _consume_all(bs, topic_name)
    families = _scrape(port)
    cold_reads = _value(families, "petrel_fetch_cold_reads", "petrel_fetch_cold_reads_total")
    cold_bytes = _value(families, "petrel_fetch_cold_read_bytes", "petrel_fetch_cold_read_bytes_total")
    # At least the first range of each partition's segment was cold (the reader's reads then let
    # the kernel's readahead bring in what follows, which is resident when it is fetched).
    assert cold_reads >= PARTITIONS, cold_reads
    assert cold_bytes >= PARTITIONS * VALUE, cold_bytes
    # Reading them brought them into the page cache: the next pass is sendfile again.
    _consume_all(bs, topic_name)
    assert _value(_scrape(port), "petrel_fetch_cold_reads", "petrel_fetch_cold_reads_total") == cold_reads


def test_offload_off_keeps_sendfile(broker_factory, topic_name):
    port = _free_port()
    b = broker_factory({"metrics.listen": f"127.0.0.1:{port}", "petrel.fetch.cold.read.offload": "false"})
    bs = b.bootstrap
    _produce(bs, topic_name)
    _drop_page_cache()
    _consume_all(bs, topic_name)
    assert _value(_scrape(port), "petrel_fetch_cold_reads", "petrel_fetch_cold_reads_total") == 0


def test_large_responses_are_paced_when_the_event_loop_is_shared(broker_factory, topic_name):
    # Over 512 KiB a response is written 256 KiB at a time, going round the event loop between
    # pieces, when other connections share the loop (idle sockets here: with two event loops, every
    # loop has some). Records must come back intact and in order from sendfile pieces, resident
    # and cold (read into the page cache on the reader pool first).
    port = _free_port()
    b = broker_factory({"metrics.listen": f"127.0.0.1:{port}"})
    bs = b.bootstrap
    _produce(bs, topic_name)
    host, kafka_port = bs.rsplit(":", 1)
    idle = [socket.create_connection((host, int(kafka_port))) for _ in range(8)]
    try:
        _consume_all(bs, topic_name)
        paced = _value(_scrape(port), "petrel_responses_paced", "petrel_responses_paced_total")
        assert paced > 0, "no response was paced"
        _drop_page_cache()
        _consume_all(bs, topic_name)
        families = _scrape(port)
        assert _value(families, "petrel_responses_paced", "petrel_responses_paced_total") > paced
        assert _value(families, "petrel_fetch_cold_reads", "petrel_fetch_cold_reads_total") >= PARTITIONS
    finally:
        for s in idle:
            s.close()
