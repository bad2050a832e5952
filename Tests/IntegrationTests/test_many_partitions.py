"""Thousands of partitions under a hard open-file limit (the descriptor budget).

The broker runs with RLIMIT_NOFILE = 4096 (soft and hard, set in the child before exec), so its
derived budget `petrel.log.open.files.max` is 4096 - 512 = 3584 and it accepts at most
3584 - 179 = 3405 partitions. A 3,000-partition topic with tiny segments must then be created,
produced to and consumed from across many rolled segments — more inactive segments than fit in the
budget, so the LRU closes and reopens them — while /proc/PID/fd stays within the budget. A topic
that would not fit is refused up front with POLICY_VIOLATION and leaves nothing on disk.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

import conftest
from conftest import petrel_only
from petrel_helpers import admin, consumer, poll_n, producer, wait_for_partitions

FILE_LIMIT = 4096
BUDGET = FILE_LIMIT - 512
PARTITIONS = 3000
SAMPLE = list(range(0, PARTITIONS, 30))  # 100 partitions
ROUNDS = 8  # one ~4 KB batch per round per sampled partition; segment.bytes 5000 rolls each time


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


class LimitedBroker(conftest.BrokerProcess):
    """A broker started with a hard RLIMIT_NOFILE."""

    def _spawn(self, port: int) -> None:
        original = subprocess.Popen

        def popen(*args, **kwargs):
            kwargs["preexec_fn"] = _limit_files
            return original(*args, **kwargs)

        conftest.subprocess.Popen = popen
        try:
            super()._spawn(port)
        finally:
            conftest.subprocess.Popen = original


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid: int) -> dict[str, int]:
    """Open descriptors by kind (file suffix, socket, ...), for failure messages."""
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.rsplit(".", 1)[-1] if target.startswith("/") else target.split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def check_fds(pid: int) -> None:
    """Segment files stay within the budget (plus a few leased by sends in flight); everything
    together — sockets, index files of segments being rolled — stays under the hard limit."""
    kinds = fd_kinds(pid)
    assert kinds.get("log", 0) <= BUDGET + 8, str(kinds)
    assert sum(kinds.values()) < FILE_LIMIT - 64, str(kinds)


@petrel_only()
def test_many_partitions_within_the_file_budget(tmp_path):
    conftest._check_target_available()
    broker = LimitedBroker(tmp_path / "data", tmp_path / "logs", {"log.retention.check.interval.ms": "600000"}).start()
    try:
        a = admin(broker.bootstrap)
        started = time.monotonic()
        fs = a.create_topics([NewTopic("many", num_partitions=PARTITIONS, replication_factor=1,
                                       config={"segment.bytes": "5000"})], request_timeout=120)
        fs["many"].result(120)
        created_s = time.monotonic() - started
        wait_for_partitions(broker.bootstrap, "many", PARTITIONS, 60, a)
        print(f"created {PARTITIONS} partitions in {created_s:.2f}s")
        assert created_s < 60, f"creating {PARTITIONS} partitions took {created_s:.1f}s"
        assert open_fds(broker.proc.pid) <= BUDGET, "the active segments alone exceed the budget"

        # Several segments per sampled partition: more inactive segments than the budget has room for.
        p = producer(broker.bootstrap, linger_ms=0)
        for r in range(ROUNDS):
            errors = []
            for part in SAMPLE:
                p.produce("many", value=bytes([65 + r]) * 4000, key=f"{part}-{r}".encode(), partition=part,
                          on_delivery=lambda err, msg: err and errors.append(err))
            assert p.flush(60) == 0
            assert not errors, errors[:3]
        check_fds(broker.proc.pid)

        # Consume everything back from the beginning: segments closed by the LRU reopen on demand.
        c = consumer(broker.bootstrap, fetch_max_bytes=1 << 20, max_partition_fetch_bytes=16384)
        try:
            c.assign([TopicPartition("many", part, 0) for part in SAMPLE])
            msgs = poll_n(c, len(SAMPLE) * ROUNDS, timeout=120, extra_wait=0.5)
        finally:
            c.close()
        got = {(m.partition(), m.offset()): m for m in msgs}
        assert len(got) == len(SAMPLE) * ROUNDS
        for part in SAMPLE:
            for r in range(ROUNDS):
                m = got[(part, r)]
                assert m.key() == f"{part}-{r}".encode() and m.value() == bytes([65 + r]) * 4000
        print(f"open fds after produce/consume: {open_fds(broker.proc.pid)} (budget {BUDGET}, limit {FILE_LIMIT})")
        check_fds(broker.proc.pid)

        segments = sum(1 for part in SAMPLE for name in os.listdir(tmp_path / "data" / f"many-{part}")
                       if name.endswith(".log"))
        assert segments >= len(SAMPLE) * (ROUNDS - 1), f"only {segments} segments: nothing rolled"

        # A topic that does not fit is refused before anything is created.
        fs = a.create_topics([NewTopic("toomany", num_partitions=500, replication_factor=1)], request_timeout=60)
        with pytest.raises(KafkaException) as refused:
            fs["toomany"].result(60)
        err = refused.value.args[0]
        assert err.code() == KafkaError.POLICY_VIOLATION, err
        assert "petrel.log.open.files.max" in err.str()
        assert not any(name.startswith("toomany-") for name in os.listdir(tmp_path / "data"))

        # Deleting frees the budget: the same topic then fits.
        a.delete_topics(["many"], request_timeout=120)["many"].result(120)
        a.create_topics([NewTopic("toomany", num_partitions=500, replication_factor=1)],
                        request_timeout=60)["toomany"].result(60)
        assert "Too many open files" not in broker.output()
    finally:
        if broker.running():
            broker.stop()
