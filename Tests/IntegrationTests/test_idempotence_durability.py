"""The idempotent producer across a broker crash: producer state (snapshots + replay) survives
kill -9, so a producer that keeps going after the restart neither duplicates nor loses anything."""

import time

from confluent_kafka import Producer

import petrel_helpers as h
from conftest import petrel_only


@petrel_only("crash and restart on the same data dir")
def test_idempotent_producer_across_kill9(broker_factory, topic_name):
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name)
    port = b.port
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 2, "message.timeout.ms": 60000, "retry.backoff.ms": 100})
    failures = []

    def report(err, msg):
        if err is not None:
            failures.append(str(err))

    for i in range(500):
        p.produce(topic_name, value=b"before-%d" % i, partition=0, on_delivery=report)
    assert p.flush(30) == 0
    # Crash with more messages in flight, restart on the same port, keep producing with the same
    # producer (same producer id, continuing sequences).
    for i in range(500):
        p.produce(topic_name, value=b"during-%d" % i, partition=0, on_delivery=report)
    p.poll(0)
    b.kill()
    time.sleep(0.5)
    b.start(port)
    for i in range(500):
        p.produce(topic_name, value=b"after-%d" % i, partition=0, on_delivery=report)
    assert p.flush(60) == 0
    assert failures == [], failures[:5]

    got = h.consume_n(b.bootstrap, topic_name, 1500, extra_wait=1.0)
    values = [m.value() for m in got]
    assert len(values) == len(set(values)), "duplicates after the crash"
    expected = {b"%s-%d" % (prefix, i) for prefix in (b"before", b"during", b"after") for i in range(500)}
    assert set(values) == expected, f"missing {len(expected - set(values))}"
    # Per-partition order of each phase is kept.
    for prefix in (b"before", b"during", b"after"):
        seq = [int(v.split(b"-")[1]) for v in values if v.startswith(prefix)]
        assert seq == sorted(seq)
