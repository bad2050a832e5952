"""Randomized crash checker for transactions (issue 12).

Transactional producers (confluent-kafka / librdkafka) run transactions of random size over random
partitions and commit or abort them at random, a few of them are abandoned open (the broker's
transaction timeout must abort them), and the broker is killed with SIGKILL at random points —
sometimes right after a producer calls commit_transaction, to land between PrepareCommit and the
markers — then restarted on the same data dir. A read_committed consumer reads through all of it.

Afterwards:
- the last stable offset of every partition reaches the log end (no transaction hangs);
- read_committed sees every record of every committed transaction exactly once, in produce order,
  no record of an aborted or abandoned one, and a transaction whose outcome the client could not
  learn (fatal error during commit) entirely or not at all;
- the consumer that read through the crashes saw the same as a fresh one;
- read_uncommitted sees every acknowledged record exactly once, in order;
- `petrel transactions list` shows nothing Ongoing or Prepare*.

Seeded: the seed is printed and in every assertion message; PETREL_TXN_CRASH_SEED=N reproduces the
decisions (thread timing is not reproducible). PETREL_TXN_CRASH_KILLS (default 6) sets the number
of kill points, PETREL_TXN_CRASH_WORKERS (default 2) the number of concurrent transactional
producers. Example of a longer run:
  PETREL_TXN_CRASH_KILLS=40 python3 -m pytest -q Tests/IntegrationTests/test_transactions_crash.py
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

import petrel_helpers as h
from conftest import petrel_only

SEED = int(os.environ.get("PETREL_TXN_CRASH_SEED") or random.randrange(1 << 31))
KILLS = int(os.environ.get("PETREL_TXN_CRASH_KILLS", "6"))
WORKERS = int(os.environ.get("PETREL_TXN_CRASH_WORKERS", "2"))
PARTITIONS = 4
TXN_TIMEOUT_MS = 20000  # long enough that the kills alone never time a transaction out
ABANDONED_TIMEOUT_MS = 2000  # transactions left open on purpose: the coordinator aborts them
DEBUG_DIR = os.environ.get("PETREL_TXN_CRASH_DEBUG", "")  # a directory: librdkafka debug logs per producer
QUIET = {"log_level": 2}  # librdkafka: no "connection refused" lines while the broker is down
BROKER_SETS = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "300"}


def debug_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(f"crash.{name}.{uuid.uuid4().hex[:4]}")
    logger.setLevel(logging.DEBUG)
    handler = logging.FileHandler(os.path.join(DEBUG_DIR, f"{name}.log"))
    handler.setFormatter(logging.Formatter("%(created).3f %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    return logger


class Txn:
    def __init__(self, worker: int, number: int, txn_id: str):
        self.worker = worker
        self.number = number
        self.txn_id = txn_id
        self.records: list[tuple[int, bytes]] = []  # (partition, value) in produce order
        self.delivered: set[bytes] = set()
        self.outcome = "open"  # committed | aborted | unknown | abandoned
        self.commit_requested = False


def value_key(v: bytes) -> tuple[int, int, int]:
    w, t, s = v.decode().split(":")
    return int(w), int(t), int(s)


class Worker(threading.Thread):
    """One transactional id (a new one after an abandoned transaction): transaction after
    transaction until told to stop, surviving broker crashes the way an application would."""

    def __init__(self, index: int, bootstrap: str, topic: str, rng: random.Random, stop: threading.Event,
                 committing: threading.Event, log):
        super().__init__(daemon=True, name=f"txn-worker-{index}")
        self.index = index
        self.bootstrap = bootstrap
        self.topic = topic
        self.rng = rng
        self.stop = stop
        self.committing = committing
        self.log = log
        self.txns: list[Txn] = []
        self.generation = 0
        self.txn_id = self._next_id()
        self.leftovers: list[Producer] = []  # abandoned or fatally failed instances, closed at the end
        self.error: BaseException | None = None

    def _next_id(self) -> str:
        self.generation += 1
        return f"crash-{SEED}-w{self.index}-g{self.generation}"

    def _new_instance(self) -> Producer:
        conf = {"bootstrap.servers": self.bootstrap, "transactional.id": self.txn_id,
                "transaction.timeout.ms": TXN_TIMEOUT_MS, "linger.ms": self.rng.choice([0, 2, 10]),
                "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 300, "retry.backoff.ms": 50,
                "retry.backoff.max.ms": 300, "socket.connection.setup.timeout.ms": 3000, **QUIET}
        if DEBUG_DIR:
            conf["debug"] = "eos,msg,protocol,broker"
            conf["logger"] = debug_logger(f"{self.txn_id}")
        return Producer(conf)

    def _producer(self) -> Producer:
        """A new instance of the current transactional id, initialized (fencing the previous one)."""
        p = self._new_instance()
        deadline = time.monotonic() + 60
        while True:
            try:
                p.init_transactions(10)
                return p
            except KafkaException as e:
                err = e.args[0]
                self.log(f"w{self.index} init: {err}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"seed {SEED}: init_transactions({self.txn_id}) kept failing: {err}")
                if err.fatal():
                    self.leftovers.append(p)
                    p = self._new_instance()
                time.sleep(0.1)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the test
            self.error = e

    def _run(self) -> None:
        p: Producer | None = None
        number = 0
        while not self.stop.is_set():
            if p is None:
                p = self._producer()
            number += 1
            txn = Txn(self.index, number, self.txn_id)
            self.txns.append(txn)
            p = self._one(p, txn)
        # A restarted application's first step: a new instance fences the failed one and aborts
        # whatever it left open (else only the 20 s timeout would).
        if p is None:
            p = self._producer()
        self.leftovers.append(p)

    def _abandon(self, txn: Txn) -> None:
        """A transaction of another transactional id (a short transaction timeout) left open: only
        the coordinator's timeout ends it. Its producer stays alive, idle, until the end."""
        txn.txn_id = f"crash-{SEED}-w{self.index}-abandoned-{txn.number}"
        p = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": txn.txn_id,
                      "transaction.timeout.ms": ABANDONED_TIMEOUT_MS, "linger.ms": 0, **QUIET})
        self.leftovers.append(p)
        try:
            p.init_transactions(20)
            p.begin_transaction()
            self._produce(p, txn, self.rng.randint(1, 10), self.rng.sample(range(PARTITIONS), 2))
            p.flush(10)
        except KafkaException as e:
            self.log(f"w{self.index} t{txn.number} (abandoned): {e.args[0]}")
        txn.outcome = "abandoned"
        self.log(f"w{self.index} t{txn.number} abandoned open ({len(txn.delivered)} of {len(txn.records)} delivered)")

    def _produce(self, p: Producer, txn: Txn, n: int, spread: list[int]) -> None:
        rng = self.rng
        for seq in range(n):
            partition = rng.choice(spread)
            value = b"%d:%d:%d" % (self.index, txn.number, seq)

            def delivered(err, msg, value=value):
                if err is None:
                    txn.delivered.add(value)

            while True:
                try:
                    p.produce(self.topic, value=value, partition=partition, on_delivery=delivered)
                    break
                except BufferError:
                    p.poll(0.05)
            txn.records.append((partition, value))
            p.poll(0)
            if rng.random() < 0.1:
                time.sleep(rng.uniform(0, 0.05))

    def _one(self, p: Producer, txn: Txn) -> Producer | None:
        """Runs one transaction; returns the producer to go on with (None: make a new one)."""
        rng = self.rng
        n = rng.randint(1, 40)
        spread = rng.sample(range(PARTITIONS), rng.randint(1, PARTITIONS))
        action = rng.choices(["commit", "abort", "abandon"], weights=[65, 30, 5])[0]
        if action == "abandon":
            self._abandon(txn)
            return p
        try:
            p.begin_transaction()
            self._produce(p, txn, n, spread)
            return self._end(p, txn, action == "commit")
        except KafkaException as e:
            err = e.args[0]
            self.log(f"w{self.index} t{txn.number}: {err}")
            if err.fatal():
                txn.outcome = "aborted"  # EndTxn(commit) never sent
                self.leftovers.append(p)
                return None
            return self._end(p, txn, False)

    def _end(self, p: Producer, txn: Txn, commit: bool) -> Producer | None:
        deadline = time.monotonic() + 90
        while True:
            try:
                if commit:
                    txn.commit_requested = True
                    self.committing.set()
                    p.commit_transaction(15)
                    txn.outcome = "committed"
                else:
                    p.abort_transaction(15)
                    txn.outcome = "aborted"
                self.log(f"w{self.index} t{txn.number} {txn.outcome} ({len(txn.records)} records)")
                return p
            except KafkaException as e:
                err = e.args[0]
                self.log(f"w{self.index} t{txn.number} {'commit' if commit else 'abort'}: {err} "
                         f"(fatal={err.fatal()} retriable={err.retriable()} abort={err.txn_requires_abort()})")
                if err.fatal():
                    txn.outcome = "unknown" if txn.commit_requested else "aborted"
                    self.log(f"w{self.index} t{txn.number} {txn.outcome} after a fatal error")
                    self.leftovers.append(p)
                    return None
                if time.monotonic() > deadline:
                    raise AssertionError(f"seed {SEED}: ending transaction {txn.txn_id}/{txn.number} kept failing: {err}")
                if err.txn_requires_abort():
                    commit = False
                elif not err.retriable():
                    # Not documented as possible for commit/abort; treat like Kafka's clients would.
                    txn.outcome = "unknown" if txn.commit_requested else "aborted"
                    self.leftovers.append(p)
                    return None
                time.sleep(0.05)


class LiveReader(threading.Thread):
    """A read_committed consumer that reads through the crashes."""

    def __init__(self, bootstrap: str, topic: str, stop: threading.Event):
        super().__init__(daemon=True, name="txn-live-reader")
        self.topic = topic
        self.stop = stop
        self.got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        self.errors: list[str] = []
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-live-reader", "enable.auto.commit": False,
                           "isolation.level": "read_committed", "auto.offset.reset": "error",
                           "reconnect.backoff.max.ms": 300, **QUIET})
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])

    def run(self) -> None:
        while not self.stop.is_set():
            for m in self.c.consume(num_messages=500, timeout=0.2):
                if m.error():
                    if m.error().code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE) or m.error().fatal():
                        self.errors.append(str(m.error()))
                    continue
                self.got[m.partition()].append((m.offset(), m.value()))

    def count(self) -> int:
        return sum(len(v) for v in self.got.values())


def watermarks(bootstrap: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """(LSO by partition, high watermark by partition) through ListOffsets."""
    rc = h.consumer(bootstrap, **{"isolation.level": "read_committed"})
    ru = h.consumer(bootstrap, **{"isolation.level": "read_uncommitted"})
    try:
        lso = {p: rc.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in range(PARTITIONS)}
        hw = {p: ru.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in range(PARTITIONS)}
        return lso, hw
    finally:
        rc.close()
        ru.close()


def read_to_end(bootstrap: str, topic: str, isolation: str, timeout: float = 60.0) -> dict[int, list[tuple[int, bytes]]]:
    """Every record up to each partition's end (the LSO under read_committed), by partition."""
    c = h.consumer(bootstrap, **{"isolation.level": isolation, "enable.partition.eof": True})
    got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
    at_end: set[int] = set()
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        deadline = time.monotonic() + timeout
        while len(at_end) < PARTITIONS:
            assert time.monotonic() < deadline, f"seed {SEED}: {isolation} read did not reach the end of {set(range(PARTITIONS)) - at_end}"
            for m in c.consume(num_messages=1000, timeout=0.3):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition())
                        continue
                    raise KafkaException(m.error())
                got[m.partition()].append((m.offset(), m.value()))
        return got
    finally:
        c.close()


def check_order(values: list[bytes], what: str) -> None:
    """Per producer (worker), the values of one partition come in produce order."""
    last: dict[int, tuple[int, int]] = {}
    for v in values:
        w, t, s = value_key(v)
        assert (t, s) > last.get(w, (0, -1)), f"seed {SEED}: {what}: {v!r} after {w}:{last[w]} (order or duplicate)"
        last[w] = (t, s)


@petrel_only("kill -9 and restart on the same data dir")
@pytest.mark.timeout(120 + 20 * KILLS)
def test_random_transactions_with_broker_kills(broker_factory, topic_name):
    print(f"\ntransaction crash checker: seed {SEED} (PETREL_TXN_CRASH_SEED), kills {KILLS}, workers {WORKERS}", flush=True)
    rng = random.Random(SEED)
    b = broker_factory(sets=BROKER_SETS)
    port = b.port
    h.create_topic(b.bootstrap, topic_name, partitions=PARTITIONS)
    events: list[str] = []
    started = time.monotonic()

    def log(text: str) -> None:
        events.append(f"{time.monotonic() - started:7.2f} {text}")

    stop = threading.Event()
    committing = threading.Event()
    workers = [Worker(i, b.bootstrap, topic_name, random.Random(rng.random()), stop, committing, log) for i in range(WORKERS)]
    reader_stop = threading.Event()
    reader = LiveReader(b.bootstrap, topic_name, reader_stop)
    reader.start()
    for w in workers:
        w.start()

    kills = []
    try:
        for k in range(KILLS):
            mode = rng.choice(["random", "at-commit"])
            if mode == "random":
                time.sleep(rng.uniform(0.2, 2.0))
            else:
                time.sleep(rng.uniform(0.2, 0.6))
                committing.clear()
                committing.wait(5)
                time.sleep(rng.choice([0, 0.001, 0.003, 0.01, 0.03]))
            assert b.running(), f"seed {SEED}: broker died on its own before kill {k}: " + b.output()[-3000:]
            b.kill()
            log(f"kill {k} ({mode})")
            kills.append(mode)
            time.sleep(rng.uniform(0, 0.4))
            b.start(port)
            log(f"restarted {k}")
            assert b.port == port
        time.sleep(rng.uniform(1.0, 2.0))
    finally:
        stop.set()
        for w in workers:
            w.join(120)
    for w in workers:
        assert not w.is_alive(), f"seed {SEED}: worker {w.index} did not finish; events: {events[-20:]}"
        if w.error is not None:
            raise AssertionError(f"seed {SEED}: worker {w.index} failed; events: {events[-20:]}") from w.error

    txns = [t for w in workers for t in w.txns]
    by_outcome: dict[str, int] = {}
    for t in txns:
        by_outcome[t.outcome] = by_outcome.get(t.outcome, 0) + 1
    print(f"kills {kills}; transactions {by_outcome}", flush=True)
    print("\n".join(events), flush=True)
    assert "open" not in by_outcome, f"seed {SEED}: a transaction was left without an outcome"
    assert by_outcome.get("committed", 0) > 0, f"seed {SEED}: nothing committed: {by_outcome}; events {events[-20:]}"

    # No hanging transaction: every partition's LSO reaches its log end within the transaction
    # timeout (abandoned transactions are aborted by the coordinator's timer).
    deadline = time.monotonic() + ABANDONED_TIMEOUT_MS / 1000 + 20
    while True:
        lso, hw = watermarks(b.bootstrap, topic_name)
        if lso == hw:
            break
        assert time.monotonic() < deadline, f"seed {SEED}: hanging transaction: LSO {lso} < log end {hw}"
        time.sleep(0.3)

    committed = read_to_end(b.bootstrap, topic_name, "read_committed")
    everything = read_to_end(b.bootstrap, topic_name, "read_uncommitted")

    # read_committed: exactly the committed transactions (an unknown outcome: all or nothing), in order.
    seen = {v for part in committed.values() for _, v in part}
    total = sum(len(part) for part in committed.values())
    assert total == len(seen), f"seed {SEED}: read_committed returned duplicates ({total} records, {len(seen)} distinct)"
    for part, recs in committed.items():
        check_order([v for _, v in recs], f"read_committed partition {part}")
    partition_of = {v: p for t in txns for p, v in t.records}
    for v in seen:
        assert v in partition_of, f"seed {SEED}: read_committed returned {v!r}, never produced"
        assert any(v == rv for _, rv in committed[partition_of[v]]), f"seed {SEED}: {v!r} in the wrong partition"
    unknown_committed = 0
    for t in txns:
        values = [v for _, v in t.records]
        present = [v for v in values if v in seen]
        where = f"seed {SEED}: transaction {t.txn_id}/{t.number} ({t.outcome}, {len(values)} records)"
        if t.outcome == "committed":
            assert len(present) == len(values), f"{where}: read_committed misses {sorted(set(values) - seen)[:5]}"
        elif t.outcome == "unknown":
            assert len(present) in (0, len(values)), f"{where}: partly visible: {len(present)} of {len(values)}"
            unknown_committed += bool(present)
        else:
            assert not present, f"{where}: aborted records visible to read_committed: {present[:5]}"

    # read_uncommitted: every acknowledged record, once, in order.
    all_values = [v for part in everything.values() for _, v in part]
    assert len(all_values) == len(set(all_values)), f"seed {SEED}: read_uncommitted returned duplicates"
    for part, recs in everything.items():
        check_order([v for _, v in recs], f"read_uncommitted partition {part}")
    acknowledged = {v for t in txns for v in t.delivered}
    missing = acknowledged - set(all_values)
    assert not missing, f"seed {SEED}: acknowledged records lost: {sorted(missing)[:5]}"
    assert seen <= set(all_values)

    # The consumer that read through the crashes saw what a fresh one sees.
    deadline = time.monotonic() + 30
    while reader.count() < total and time.monotonic() < deadline:
        time.sleep(0.2)
    reader_stop.set()
    reader.join(10)
    reader.c.close()
    assert not reader.errors, f"seed {SEED}: live read_committed consumer errors: {reader.errors[:3]}"
    for part in range(PARTITIONS):
        assert reader.got[part] == committed[part], (
            f"seed {SEED}: live read_committed consumer of partition {part} differs from a fresh read "
            f"({len(reader.got[part])} vs {len(committed[part])} records)")

    # The coordinator agrees: nothing Ongoing or Prepare* is left.
    listed = subprocess.run([os.environ["PETREL_BIN"], "transactions", "list", "--bootstrap", b.bootstrap],
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    stuck = [line for line in listed.stdout.splitlines() if "Ongoing" in line or "Prepare" in line]
    assert not stuck, f"seed {SEED}: transactions still open after the run: {stuck}"
    print(f"read_committed {total} records ({unknown_committed} of the unknown-outcome transactions committed), "
          f"read_uncommitted {len(all_values)}", flush=True)

    for w in workers:
        for p in w.leftovers:
            p.purge()
