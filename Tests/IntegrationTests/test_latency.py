"""End-to-end latency sanity: a waiting Fetch must be woken by the append, not by its timer."""

import random
import statistics
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

import petrel_helpers as h

ROUNDS = 50
WAIT_MS = 500


def test_long_poll_wakes_on_append(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name)
    c = h.consumer(bootstrap, fetch_wait_max_ms=WAIT_MS, fetch_min_bytes=1)
    c.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
    p = h.producer(bootstrap, acks="1", linger_ms=0)
    received: dict[bytes, float] = {}
    stop = threading.Event()
    errors = []

    def loop():
        while not stop.is_set():
            m = c.poll(0.05)
            if m is None:
                continue
            if m.error():
                errors.append(m.error())
                continue
            received[m.value()] = time.monotonic()

    # Warm up: make sure the consumer is fetching before measuring.
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        h.produce_all(p, topic_name, [{"value": b"warmup", "partition": 0}])
        deadline = time.monotonic() + 30
        while b"warmup" not in received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b"warmup" in received, "consumer never received the warm-up message"
        latencies = []
        rng = random.Random(1234)
        for i in range(ROUNDS):
            key = b"lat-%d" % i
            time.sleep(rng.uniform(0.05, 0.15))  # let the consumer park in a long-poll Fetch; random phase
            sent = time.monotonic()
            p.produce(topic_name, value=key, partition=0)
            p.flush(10)
            deadline = time.monotonic() + 10
            while key not in received and time.monotonic() < deadline:
                time.sleep(0.001)
            assert key in received, f"message {i} not received within 10 s"
            latencies.append(received[key] - sent)
    finally:
        stop.set()
        t.join(5)
        c.close()
    assert not errors, errors[:3]
    med = statistics.median(latencies)
    print(f"produce->receive latency ms: median={med * 1000:.1f} max={max(latencies) * 1000:.1f}")
    assert med < 0.100, f"median latency {med * 1000:.1f} ms (>= 100 ms): fetch not woken by append?"
