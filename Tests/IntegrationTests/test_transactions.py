"""Transactions (KIP-98 / KIP-890 part 1) with real clients: librdkafka's transactional producer
(confluent-kafka) and kafka-python's; read_committed consumers see only committed records, in
order, and no aborted ones; read_uncommitted sees everything written; consume-transform-produce
with send_offsets_to_transaction; a fenced zombie is refused; a broker killed mid-transaction
aborts it on timeout after the restart, so the last stable offset advances."""

import socket
import struct
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

import petrel_helpers as h
from conftest import petrel_only

FAST = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "500"}


def txn_producer(bootstrap, txn_id=None, **conf):
    c = {"bootstrap.servers": bootstrap, "transactional.id": txn_id or f"txn-{uuid.uuid4().hex[:8]}",
         "linger.ms": 5, "transaction.timeout.ms": 60000}
    c.update(conf)
    p = Producer(c)
    p.init_transactions(30)
    return p


def read_all(bootstrap, topic, partitions, isolation, expect, timeout=30.0, extra_wait=1.0):
    msgs = h.consume_n(bootstrap, topic, expect, partitions=partitions, timeout=timeout, extra_wait=extra_wait,
                       **{"isolation.level": isolation})
    return msgs


def by_partition(msgs):
    out = {}
    for m in msgs:
        out.setdefault(m.partition(), []).append(m.value())
    return out


def test_commit_and_abort_read_committed_sees_only_committed(broker_factory, topic_name):
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name, partitions=2)
    p = txn_producer(b.bootstrap)
    for phase, commit in (("c1", True), ("a1", False), ("c2", True), ("a2", False), ("c3", True)):
        p.begin_transaction()
        for i in range(20):
            p.produce(topic_name, value=b"%s-%d" % (phase.encode(), i), partition=i % 2)
        if commit:
            p.commit_transaction(30)
        else:
            p.flush(30)  # the aborted records really are in the log
            p.abort_transaction(30)

    committed = read_all(b.bootstrap, topic_name, (0, 1), "read_committed", 60)
    values = [m.value() for m in committed]
    assert len(values) == 60, f"read_committed got {len(values)}: {values[:5]}"
    assert not [v for v in values if v.startswith(b"a")], "aborted records leaked to read_committed"
    for part, vals in by_partition(committed).items():
        expected = [b"%s-%d" % (ph, i) for ph in (b"c1", b"c2", b"c3") for i in range(20) if i % 2 == part]
        assert vals == expected, f"partition {part} out of order: {vals[:6]}"

    everything = read_all(b.bootstrap, topic_name, (0, 1), "read_uncommitted", 100)
    assert sorted(m.value() for m in everything) == sorted(
        b"%s-%d" % (ph, i) for ph in (b"c1", b"a1", b"c2", b"a2", b"c3") for i in range(20))


def test_read_committed_waits_until_commit(broker_factory, topic_name):
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name)
    plain = h.producer(b.bootstrap)
    h.produce_all(plain, topic_name, [{"value": b"before", "partition": 0}])
    p = txn_producer(b.bootstrap)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic_name, value=b"open-%d" % i, partition=0)
    p.flush(30)
    # Records after the open transaction's first offset stay invisible to read_committed.
    c = h.consumer(b.bootstrap, **{"isolation.level": "read_committed"})
    c.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
    got = h.poll_n(c, 1, timeout=10, extra_wait=2.0)
    assert [m.value() for m in got] == [b"before"]
    # ListOffsets(read_committed) answers the LSO (1), read_uncommitted the high watermark (6).
    lo, hi = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10, cached=False)
    assert hi == 1, f"read_committed latest offset {hi}, expected the LSO 1"
    u = h.consumer(b.bootstrap, **{"isolation.level": "read_uncommitted"})  # librdkafka defaults to read_committed
    assert u.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10, cached=False)[1] == 6
    u.close()
    # The parked read_committed fetch wakes when the marker moves the LSO.
    p.commit_transaction(30)
    more = h.poll_n(c, 5, timeout=15, extra_wait=0.5)
    assert [m.value() for m in more] == [b"open-%d" % i for i in range(5)]
    c.close()


def test_fenced_zombie_is_refused(broker_factory, topic_name):
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name)
    txn_id = f"zombie-{uuid.uuid4().hex[:6]}"
    old = txn_producer(b.bootstrap, txn_id)
    old.begin_transaction()
    old.produce(topic_name, value=b"zombie-1", partition=0)
    old.flush(30)
    new = txn_producer(b.bootstrap, txn_id)  # fences `old` and aborts its open transaction
    new.begin_transaction()
    new.produce(topic_name, value=b"new-1", partition=0)
    new.commit_transaction(30)
    with pytest.raises(KafkaException) as info:
        old.produce(topic_name, value=b"zombie-2", partition=0)
        old.commit_transaction(30)
    err = info.value.args[0]
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), err
    got = read_all(b.bootstrap, topic_name, (0,), "read_committed", 1, extra_wait=2.0)
    assert [m.value() for m in got] == [b"new-1"]


def _transform(bootstrap, group, src, dst, n, commit):
    """One consume-transform-produce transaction over `n` records of `src`: the upper-cased values go
    to `dst` and the consumed offsets are sent with the transaction, which commits or aborts."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe([src])
    p = txn_producer(bootstrap, f"{group}-tx")
    p.begin_transaction()
    got = h.poll_n(c, n, timeout=30, extra_wait=0)[:n]
    for m in got:
        p.produce(dst, value=m.value().upper(), partition=0)
    last = got[-1]
    p.send_offsets_to_transaction([TopicPartition(src, 0, last.offset() + 1)], c.consumer_group_metadata(), 30)
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)
    c.close()
    return [m.value() for m in got]


def _transform_setup(bootstrap, topic_name, n):
    """Topics `<name>-in` (holding m-0 .. m-<n-1>) and `<name>-out`, and a fresh group id."""
    src, dst = topic_name + "-in", topic_name + "-out"
    h.create_topic(bootstrap, src)
    h.create_topic(bootstrap, dst)
    h.produce_all(h.producer(bootstrap), src, [{"value": b"m-%d" % i, "partition": 0} for i in range(n)])
    return src, dst, f"ctp-{uuid.uuid4().hex[:6]}"


def test_consume_transform_produce_offsets_commit_with_the_transaction(broker_factory, topic_name):
    b = broker_factory()
    src, dst, group = _transform_setup(b.bootstrap, topic_name, 30)

    assert _transform(b.bootstrap, group, src, dst, 10, True) == [b"m-%d" % i for i in range(10)]
    assert h.committed_offsets(b.bootstrap, group, src, 1) == {0: 10}
    # An aborted batch moves neither the offsets nor the output.
    assert _transform(b.bootstrap, group, src, dst, 10, False) == [b"m-%d" % i for i in range(10, 20)]
    assert h.committed_offsets(b.bootstrap, group, src, 1) == {0: 10}
    assert _transform(b.bootstrap, group, src, dst, 20, True) == [b"m-%d" % i for i in range(10, 30)]
    assert h.committed_offsets(b.bootstrap, group, src, 1) == {0: 30}
    out = read_all(b.bootstrap, dst, (0,), "read_committed", 30)
    assert [m.value() for m in out] == [b"M-%d" % i for i in range(30)]


@petrel_only("restart on the same data dir")
def test_transactional_offsets_replayed_after_a_restart(broker_factory, topic_name):
    # The group coordinator is rebuilt from __consumer_offsets at start-up: offsets sent with a
    # committed transaction count, those of an aborted one (the last write here) do not.
    b = broker_factory()
    src, dst, group = _transform_setup(b.bootstrap, topic_name, 20)
    assert _transform(b.bootstrap, group, src, dst, 10, True) == [b"m-%d" % i for i in range(10)]
    assert _transform(b.bootstrap, group, src, dst, 10, False) == [b"m-%d" % i for i in range(10, 20)]
    assert h.committed_offsets(b.bootstrap, group, src, 1) == {0: 10}
    b.restart()
    assert h.committed_offsets(b.bootstrap, group, src, 1) == {0: 10}
    assert _transform(b.bootstrap, group, src, dst, 10, True) == [b"m-%d" % i for i in range(10, 20)]
    b.restart()
    assert h.committed_offsets(b.bootstrap, group, src, 1) == {0: 20}


class RawClient:
    """Hand-built request frames (header v1, non-flexible versions) over one socket."""

    def __init__(self, bootstrap):
        host, port = bootstrap.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.correlation = 0

    def call(self, api_key, version, body):
        self.correlation += 1
        client = b"raw-test"
        header = struct.pack(">hhih", api_key, version, self.correlation, len(client)) + client
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._read(4))[0]
        payload = self._read(size)
        assert struct.unpack(">i", payload[:4])[0] == self.correlation
        return payload[4:]

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    def close(self):
        self.sock.close()


def _s(text):
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def test_produce_to_partition_outside_the_transaction_is_refused(broker_factory, topic_name):
    """KIP-890 part 1: InitProducerId + AddPartitionsToTxn(partition 0) by hand, then a
    transactional produce to partition 1 (never added) is refused with INVALID_TXN_STATE while
    partition 0 takes it; a produce with the wrong epoch is refused too."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name, partitions=2)
    txn_id = f"kip890-{uuid.uuid4().hex[:6]}"
    c = RawClient(b.bootstrap)
    try:
        body = c.call(22, 0, _s(txn_id) + struct.pack(">i", 60000))  # InitProducerId v0
        _, error, pid, epoch = struct.unpack(">ihqh", body[:16])
        assert error == 0, f"InitProducerId error {error}"
        add = _s(txn_id) + struct.pack(">qh", pid, epoch) + struct.pack(">i", 1) + _s(topic_name) + struct.pack(">ii", 1, 0)
        body = c.call(24, 0, add)  # AddPartitionsToTxn v0: partition 0 only
        assert body.endswith(struct.pack(">ih", 0, 0)), body

        def produce(partition, producer_epoch, seq):
            builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=1, producer_id=pid,
                                                producer_epoch=producer_epoch, base_sequence=seq, batch_size=1 << 20)
            builder.append(0, timestamp=None, key=None, value=b"v-%d" % partition, headers=[])
            records = bytes(builder.build())
            req = (_s(txn_id) + struct.pack(">hi", -1, 10000) + struct.pack(">i", 1) + _s(topic_name)
                   + struct.pack(">i", 1) + struct.pack(">ii", partition, len(records)) + records)
            resp = c.call(0, 3, req)  # Produce v3
            # topics[1]: name, partitions[1]: index int32, error int16, base offset int64, append time int64
            name_len = struct.unpack(">h", resp[4:6])[0]
            at = 6 + name_len + 4
            return struct.unpack(">ih", resp[at:at + 6])[1]

        assert produce(1, epoch, 0) == 48, "a partition outside the transaction took transactional data"
        assert produce(0, epoch, 0) == 0
        assert produce(0, epoch + 1, 0) == 47  # INVALID_PRODUCER_EPOCH
        # Abort (EndTxn v0): the one record in partition 0 is never visible to read_committed.
        body = c.call(26, 0, _s(txn_id) + struct.pack(">qhb", pid, epoch, 0))
        assert struct.unpack(">ih", body[:6])[1] == 0
    finally:
        c.close()
    assert len(read_all(b.bootstrap, topic_name, (0, 1), "read_uncommitted", 1, extra_wait=1.0)) == 1
    plain = h.producer(b.bootstrap)
    h.produce_all(plain, topic_name, [{"value": b"plain", "partition": 0}])
    got = read_all(b.bootstrap, topic_name, (0, 1), "read_committed", 1, extra_wait=1.0)
    assert [m.value() for m in got] == [b"plain"]


def test_kafka_python_transactional_producer(broker_factory, topic_name):
    from kafka import KafkaProducer

    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name)
    p = KafkaProducer(bootstrap_servers=b.bootstrap, transactional_id=f"kp-{uuid.uuid4().hex[:6]}")
    p.init_transactions()
    p.begin_transaction()
    for i in range(10):
        p.send(topic_name, value=b"kc-%d" % i, partition=0)
    p.commit_transaction()
    p.begin_transaction()
    for i in range(10):
        p.send(topic_name, value=b"ka-%d" % i, partition=0)
    p.flush()
    p.abort_transaction()
    p.begin_transaction()
    p.send(topic_name, value=b"kc-last", partition=0)
    p.commit_transaction()
    p.close()
    got = read_all(b.bootstrap, topic_name, (0,), "read_committed", 11, extra_wait=1.5)
    assert [m.value() for m in got] == [b"kc-%d" % i for i in range(10)] + [b"kc-last"]
    assert len(read_all(b.bootstrap, topic_name, (0,), "read_uncommitted", 21, extra_wait=1.0)) == 21


@petrel_only("kill -9 and restart on the same data dir")
def test_open_transaction_aborted_on_timeout_after_kill9(broker_factory, topic_name):
    b = broker_factory(sets=FAST)
    h.create_topic(b.bootstrap, topic_name)
    port = b.port
    done = txn_producer(b.bootstrap)
    done.begin_transaction()
    done.produce(topic_name, value=b"committed-before", partition=0)
    done.commit_transaction(30)
    hanging = txn_producer(b.bootstrap, **{"transaction.timeout.ms": 4000})
    hanging.begin_transaction()
    for i in range(10):
        hanging.produce(topic_name, value=b"hanging-%d" % i, partition=0)
    hanging.flush(30)
    b.kill()
    time.sleep(0.3)
    b.start(port)
    # A later transaction commits; read_committed sees it only once the hanging one is aborted on
    # its timeout (the coordinator replayed __transaction_state, the partition its producer state).
    after = txn_producer(b.bootstrap)
    after.begin_transaction()
    after.produce(topic_name, value=b"committed-after", partition=0)
    after.commit_transaction(30)
    got = read_all(b.bootstrap, topic_name, (0,), "read_committed", 2, timeout=30, extra_wait=1.0)
    assert [m.value() for m in got] == [b"committed-before", b"committed-after"]
    # And again after a clean restart: the .txnindex and producer snapshot carry the abort.
    b.stop()
    b.start(port)
    again = read_all(b.bootstrap, topic_name, (0,), "read_committed", 2, timeout=20, extra_wait=1.0)
    assert [m.value() for m in again] == [b"committed-before", b"committed-after"]
    assert len(read_all(b.bootstrap, topic_name, (0,), "read_uncommitted", 12, extra_wait=1.0)) == 12


def test_transaction_timeout_above_the_broker_maximum_is_refused(broker_factory):
    b = broker_factory(sets={"transaction.max.timeout.ms": "5000"})
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": f"big-{uuid.uuid4().hex[:6]}",
                  "transaction.timeout.ms": 6000})
    with pytest.raises(KafkaException) as info:
        p.init_transactions(20)
    assert info.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, info.value


@petrel_only("petrel transactions CLI")
def test_cli_lists_describes_and_aborts(broker_factory, topic_name):
    import os
    import subprocess
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name)
    txn_id = f"cli-{uuid.uuid4().hex[:6]}"
    p = txn_producer(b.bootstrap, txn_id)
    p.begin_transaction()
    p.produce(topic_name, value=b"left-open", partition=0)
    p.flush(30)
    cli = [os.environ["PETREL_BIN"]]
    listed = subprocess.run(cli + ["transactions", "list", "--bootstrap", b.bootstrap], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert f"{txn_id}\t" in listed.stdout and "Ongoing" in listed.stdout
    described = subprocess.run(cli + ["transactions", "describe", txn_id, "--bootstrap", b.bootstrap], capture_output=True, text=True, timeout=30)
    assert described.returncode == 0 and f"{topic_name}-0" in described.stdout, described.stdout + described.stderr
    aborted = subprocess.run(cli + ["transactions", "abort", txn_id, "--bootstrap", b.bootstrap], capture_output=True, text=True, timeout=30)
    assert aborted.returncode == 0, aborted.stderr
    described = subprocess.run(cli + ["transactions", "describe", txn_id, "--bootstrap", b.bootstrap, "--json"], capture_output=True, text=True, timeout=30)
    assert '"CompleteAbort"' in described.stdout or '"Empty"' in described.stdout, described.stdout
    # The LSO moved: a plain record after it is visible to read_committed.
    h.produce_all(h.producer(b.bootstrap), topic_name, [{"value": b"plain", "partition": 0}])
    got = read_all(b.bootstrap, topic_name, (0,), "read_committed", 1, extra_wait=1.0)
    assert [m.value() for m in got] == [b"plain"]
