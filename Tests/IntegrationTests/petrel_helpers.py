"""Client-side helpers shared by the integration tests (confluent-kafka based unless named otherwise).

Every wait is bounded; helpers raise AssertionError with context on timeout.
"""

from __future__ import annotations

import time
from typing import Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

DEFAULT_TIMEOUT = 30.0


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict[str, str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
    """Create a topic through CreateTopics and wait until Metadata shows all its partitions."""
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
                         request_timeout=timeout)
    fs[name].result(timeout)
    wait_for_partitions(bootstrap, name, partitions, timeout, a)


def wait_for_partitions(bootstrap: str, name: str, partitions: int, timeout: float = DEFAULT_TIMEOUT,
                        a: AdminClient | None = None) -> None:
    a = a or admin(bootstrap)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            return
        last = t and (t.error, len(t.partitions))
        time.sleep(0.1)
    raise AssertionError(f"topic {name} did not reach {partitions} partitions in {timeout}s (last: {last})")


def producer(bootstrap: str, **conf) -> Producer:
    c = {"bootstrap.servers": bootstrap, "linger.ms": 5, "message.timeout.ms": 30000}
    c.update({k.replace("_", "."): v for k, v in conf.items()})
    return Producer(c)


def produce_all(p: Producer, topic: str, messages: Iterable[dict], timeout: float = DEFAULT_TIMEOUT) -> list:
    """Produce dicts of produce() kwargs; flush; return the delivered Message objects (delivery order).

    Raises AssertionError if any delivery failed.
    """
    results: list = []

    def cb(err, msg):
        results.append((err, msg))

    for m in messages:
        while True:
            try:
                p.produce(topic, on_delivery=cb, **m)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} messages still undelivered after {timeout}s"
    errs = [(e, m.topic(), m.partition()) for e, m in results if e is not None]
    assert not errs, f"delivery errors: {errs[:5]}"
    return [m for _, m in results]


def consumer(bootstrap: str, **conf) -> Consumer:
    # confluent-kafka insists on group.id, but with assign() and no commits no group API is needed.
    c = {"bootstrap.servers": bootstrap, "group.id": "petrel-it-assign-only", "enable.auto.commit": False,
         "enable.auto.offset.store": False, "auto.offset.reset": "earliest", "enable.partition.eof": False}
    c.update({k.replace("_", "."): v for k, v in conf.items()})
    return Consumer(c)


def consume_n(bootstrap: str, topic: str, n: int, partitions: Iterable[int] = (0,), offset: int = OFFSET_BEGINNING,
              timeout: float = DEFAULT_TIMEOUT, extra_wait: float = 0.5, **conf) -> list:
    """Assign the partitions at `offset`, read until `n` messages arrived (or timeout).

    After the n-th message, polls `extra_wait` seconds more so that surplus messages are caught too.
    Returns the list of Message objects (errors raise).
    """
    c = consumer(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, p, offset) for p in partitions])
        return poll_n(c, n, timeout, extra_wait)
    finally:
        c.close()


def poll_n(c: Consumer, n: int, timeout: float = DEFAULT_TIMEOUT, extra_wait: float = 0.5) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        batch = c.consume(num_messages=min(1000, max(1, n - len(got))), timeout=0.5)
        for m in batch:
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            got.append(m)
    assert len(got) >= n, f"received {len(got)} of {n} messages within {timeout}s"
    end = time.monotonic() + extra_wait
    while time.monotonic() < end:
        for m in c.consume(num_messages=100, timeout=0.1):
            if not m.error():
                got.append(m)
    return got


def kv(msgs) -> list[tuple]:
    return [(m.key(), m.value()) for m in msgs]
