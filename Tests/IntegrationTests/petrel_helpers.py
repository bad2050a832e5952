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


# ---------------------------------------------------------------- consumer groups (test_groups_*.py)

def group_consumer(bootstrap: str, group: str, **conf) -> Consumer:
    """A confluent-kafka group member: earliest reset, manual commits (positions stored automatically),
    fast heartbeats so rebalances are noticed quickly."""
    c = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
         "enable.auto.commit": False, "enable.partition.eof": False, "heartbeat.interval.ms": 500,
         "session.timeout.ms": 10000, "socket.timeout.ms": 10000}
    c.update({k.replace("_", "."): v for k, v in conf.items()})
    return Consumer(c)


def poll_group(consumers: list, n: int, timeout: float = DEFAULT_TIMEOUT, extra_wait: float = 1.0) -> list[list]:
    """Poll every consumer in turn until `n` messages arrived in total (or timeout), then `extra_wait`
    seconds more to catch surplus/duplicate messages. Returns one message list per consumer."""
    got: list[list] = [[] for _ in consumers]

    def once(t: float) -> None:
        for i, c in enumerate(consumers):
            for m in c.consume(num_messages=500, timeout=t):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(m.error())
                got[i].append(m)

    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < n and time.monotonic() < deadline:
        once(0.2)
    total = sum(map(len, got))
    assert total >= n, f"received {total} of {n} messages within {timeout}s (per consumer: {list(map(len, got))})"
    end = time.monotonic() + extra_wait
    while time.monotonic() < end:
        once(0.1)
    return got


def wait_assignment(consumers: list, topic: str, partitions: int, timeout: float = DEFAULT_TIMEOUT,
                    want: list[int] | None = None) -> list[set[int]]:
    """Poll the consumers (which serves their rebalance callbacks) until their assignments of `topic` are
    disjoint and cover all `partitions`; with `want`, until consumer i owns exactly want[i] partitions.
    Consumers that must not receive messages yet should be subscribed to a topic that is still empty.
    Returns the partition sets per consumer."""
    deadline = time.monotonic() + timeout
    sets: list[set[int]] = []
    while time.monotonic() < deadline:
        for c in consumers:
            m = c.poll(0.1)
            assert m is None or m.error() is not None, \
                f"unexpected message while waiting for the assignment: {m.topic()}[{m.partition()}]@{m.offset()}"
        sets = [{tp.partition for tp in c.assignment() if tp.topic == topic} for c in consumers]
        union = set().union(*sets)
        disjoint = sum(map(len, sets)) == len(union)
        if disjoint and union == set(range(partitions)) and (want is None or list(map(len, sets)) == want):
            return sets
    raise AssertionError(f"assignment of {topic} not settled within {timeout}s: {sets} (want {want})")


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int, timeout: float = 10.0) -> dict[int, int]:
    """Committed offsets of `group` for topic partitions 0..partitions-1 (OffsetFetch via a non-member
    consumer); partitions without a commit show confluent_kafka.OFFSET_INVALID (-1001)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        res = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=timeout)
        for tp in res:
            assert tp.error is None, f"committed() error for {tp}: {tp.error}"
        return {tp.partition: tp.offset for tp in res}
    finally:
        c.close()


def produce_values(bootstrap: str, topic: str, values_by_partition: dict[int, list[bytes]]) -> dict[int, list[int]]:
    """Produce values to explicit partitions (acks=all); return the delivered offsets per partition."""
    msgs = [{"value": v, "partition": p} for p, vs in values_by_partition.items() for v in vs]
    delivered = produce_all(producer(bootstrap, acks="all"), topic, msgs)
    out: dict[int, list[int]] = {p: [] for p in values_by_partition}
    for m in delivered:
        out[m.partition()].append(m.offset())
    return out


def start_broker(tmp_path_factory, sets: dict[str, str] | None = None, name: str = "groups-broker"):
    """Start a dedicated broker (for module-scoped fixtures); the caller stops it. With the validation
    peer, `sets` are ignored (the peer has no --set)."""
    import conftest  # the fixtures module; imported lazily so plain client helpers stay independent

    conftest._check_target_available()
    root = tmp_path_factory.mktemp(name)
    return conftest.BrokerProcess(root / "data", root / "logs", None if conftest.is_peer() else sets).start()
