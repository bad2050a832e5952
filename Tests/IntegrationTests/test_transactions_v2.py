"""Transactions v2 (KIP-890 part 2, Kafka 4.0's transaction.version=2) against the real binary.

No installed client speaks it: librdkafka 2.16 has no KIP-890 support (confluentinc/librdkafka#5423;
its ApiVersions handling knows no `transaction.version` feature) and kafka-python 3.0 caps EndTxn at
v3. The frames are therefore encoded and decoded by kafka-python's own protocol classes (generated
from Kafka's JSON schemas, independent of Petrel's codec) and driven the way a Kafka 4 Java producer
drives them: no AddPartitionsToTxn / AddOffsetsToTxn, partitions joined by Produce v12 and
TxnOffsetCommit v5, EndTxn v5 answering the bumped epoch. What a consumer sees is read with
confluent-kafka (read_committed / read_uncommitted) and committed offsets with its group API.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid

from confluent_kafka import TopicPartition
from kafka.protocol.admin import DescribeTransactionsRequest, DescribeTransactionsResponse
from kafka.protocol.consumer import OffsetFetchRequest, OffsetFetchResponse
from kafka.protocol.metadata.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.protocol.producer.transaction import (AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest,
                                                 EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
                                                 TxnOffsetCommitRequest, TxnOffsetCommitResponse)
from kafka.record.default_records import DefaultRecordBatchBuilder

import petrel_helpers as h
from conftest import petrel_only

NONE, INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, UNSTABLE_OFFSET_COMMIT = 0, 47, 48, 88


class Wire:
    """One connection; requests are kafka-python message objects with their version set."""

    def __init__(self, bootstrap: str):
        host, port = bootstrap.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=15)
        self.correlation = 0

    def call(self, request, response_class):
        self.correlation += 1
        request.with_header(correlation_id=self.correlation, client_id="petrel-tv2-test")
        self.sock.sendall(request.encode(header=True, framed=True))
        size = struct.unpack(">i", self._read(4))[0]
        payload = self._read(size)
        response = response_class.decode(payload, version=request.version, header=True)
        return response

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "connection closed by the broker"
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


class V2Producer:
    """The client side of transactions v2, as Kafka 4's TransactionManager does it."""

    def __init__(self, wire: Wire, txn_id: str, topic: str):
        self.wire, self.txn_id, self.topic = wire, txn_id, topic
        resp = wire.call(InitProducerIdRequest(transactional_id=txn_id, transaction_timeout_ms=60000,
                                               producer_id=-1, producer_epoch=-1, version=5), InitProducerIdResponse)
        assert resp.error_code == NONE, resp
        self.pid, self.epoch = resp.producer_id, resp.producer_epoch
        self.sequences: dict[int, int] = {}

    def produce(self, partition: int, values: list[bytes], epoch: int | None = None, sequence: int | None = None) -> int:
        """Produce v12 of one transactional batch; returns the partition's error code."""
        epoch = self.epoch if epoch is None else epoch
        seq = self.sequences.get(partition, 0) if sequence is None else sequence
        builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=1, producer_id=self.pid,
                                            producer_epoch=epoch, base_sequence=seq, batch_size=1 << 20)
        for i, v in enumerate(values):
            builder.append(i, timestamp=None, key=None, value=v, headers=[])
        records = bytes(builder.build())
        req = ProduceRequest(transactional_id=self.txn_id, acks=-1, timeout_ms=10000, topic_data=[
            ProduceRequest.TopicProduceData(name=self.topic, partition_data=[
                ProduceRequest.TopicProduceData.PartitionProduceData(index=partition, records=records)])], version=12)
        resp = self.wire.call(req, ProduceResponse)
        error = resp.responses[0].partition_responses[0].error_code
        if error == NONE and sequence is None:
            self.sequences[partition] = seq + len(values)
        return error

    def send_offsets(self, group: str, offsets: dict[int, int]) -> list[int]:
        """TxnOffsetCommit v5 (no AddOffsetsToTxn first); returns the partition error codes."""
        req = TxnOffsetCommitRequest(
            transactional_id=self.txn_id, group_id=group, producer_id=self.pid, producer_epoch=self.epoch,
            generation_id=-1, member_id="", group_instance_id=None,
            topics=[TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic(name=self.topic, partitions=[
                TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(
                    partition_index=p, committed_offset=o, committed_leader_epoch=-1, committed_metadata="")
                for p, o in offsets.items()])], version=5)
        resp = self.wire.call(req, TxnOffsetCommitResponse)
        return [p.error_code for t in resp.topics for p in t.partitions]

    def wait_completed(self, timeout: float = 10.0) -> str:
        """Until the coordinator has written the markers (DescribeTransactions shows Complete*):
        a transaction's Prepare* state fences the next EndTxn, as in Kafka."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.wire.call(DescribeTransactionsRequest(transactional_ids=[self.txn_id], version=0), DescribeTransactionsResponse)
            state = resp.transaction_states[0].transaction_state
            if state.startswith("Complete") or time.monotonic() > deadline:
                return state
            time.sleep(0.05)

    def end(self, commit: bool, epoch: int | None = None):
        """EndTxn v5; on success the producer takes the answered identity (sequences restart)."""
        resp = self.wire.call(EndTxnRequest(transactional_id=self.txn_id, producer_id=self.pid,
                                            producer_epoch=self.epoch if epoch is None else epoch, committed=commit,
                                            version=5), EndTxnResponse)
        if resp.error_code == NONE and epoch is None:
            self.pid, self.epoch = resp.producer_id, resp.producer_epoch
            self.sequences = {}
        return resp


def fetch_offsets(wire: Wire, group: str, topic: str, require_stable: bool) -> dict[int, tuple[int, int]]:
    """OffsetFetch v7: partition -> (error code, committed offset)."""
    req = OffsetFetchRequest(group_id=group, topics=[OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0, 1])],
                             require_stable=require_stable, version=7)
    resp = wire.call(req, OffsetFetchResponse)
    return {p.partition_index: (p.error_code, p.committed_offset) for t in resp.topics for p in t.partitions}


def lso_and_hw(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    rc = h.consumer(bootstrap, **{"isolation.level": "read_committed"})
    ru = h.consumer(bootstrap, **{"isolation.level": "read_uncommitted"})
    try:
        tp = TopicPartition(topic, partition)
        return rc.get_watermark_offsets(tp, timeout=10, cached=False)[1], ru.get_watermark_offsets(tp, timeout=10, cached=False)[1]
    finally:
        rc.close()
        ru.close()


def values(bootstrap: str, topic: str, partitions, isolation: str, expect: int) -> list[bytes]:
    msgs = h.consume_n(bootstrap, topic, expect, partitions=partitions, timeout=20, extra_wait=1.0,
                       **{"isolation.level": isolation})
    return sorted(m.value() for m in msgs)


def test_api_versions_finalize_transaction_version_2(broker_factory):
    b = broker_factory()
    wire = Wire(b.bootstrap)
    try:
        resp = wire.call(ApiVersionsRequest(client_software_name="petrel-test", client_software_version="1", version=3),
                         ApiVersionsResponse)
    finally:
        wire.close()
    assert resp.error_code == NONE
    maxima = {k.api_key: k.max_version for k in resp.api_keys}
    assert maxima[0] == 12 and maxima[26] == 5 and maxima[28] == 5 and maxima[24] >= 5, maxima
    assert resp.finalized_features_epoch >= 0
    finalized = {f.name: (f.min_version_level, f.max_version_level) for f in resp.finalized_features}
    assert finalized == {"transaction.version": (2, 2)}, finalized
    supported = {f.name: (f.min_version, f.max_version) for f in resp.supported_features}
    assert supported["transaction.version"] == (0, 2)


@petrel_only("kill -9 and restart on the same data dir")
def test_transactions_v2_implicit_partitions_epoch_bump_and_fencing(broker_factory, topic_name):
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name, partitions=2)
    group = f"tv2-{uuid.uuid4().hex[:6]}"
    wire = Wire(b.bootstrap)
    try:
        p = V2Producer(wire, f"tv2-{uuid.uuid4().hex[:6]}", topic_name)
        first_epoch = p.epoch
        # Produce v12 joins both partitions to a new transaction; TxnOffsetCommit v5 joins the group's.
        assert p.produce(0, [b"c1-0", b"c1-1"]) == NONE
        assert p.produce(1, [b"c1-2"]) == NONE
        assert p.produce(0, [b"c1-3"]) == NONE
        assert p.send_offsets(group, {0: 7, 1: 3}) == [NONE, NONE]
        # KIP-447: while the transaction is open its offsets are unstable to RequireStable fetches.
        assert fetch_offsets(wire, group, topic_name, True) == {0: (UNSTABLE_OFFSET_COMMIT, -1), 1: (UNSTABLE_OFFSET_COMMIT, -1)}
        assert fetch_offsets(wire, group, topic_name, False) == {0: (NONE, -1), 1: (NONE, -1)}
        lso, hw = lso_and_hw(b.bootstrap, topic_name, 0)
        assert (lso, hw) == (0, 3), "the open transaction must hold the LSO back"

        # AddPartitionsToTxn v5, verify-only (a broker's check): partition 0 is in, partition 7 is not.
        req = AddPartitionsToTxnRequest(transactions=[AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction(
            transactional_id=p.txn_id, producer_id=p.pid, producer_epoch=p.epoch, verify_only=True,
            topics=[AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name=topic_name, partitions=[0, 7])])], version=5)
        resp = wire.call(req, AddPartitionsToTxnResponse)
        codes = {r.partition_index: r.partition_error_code
                 for t in resp.results_by_transaction[0].topic_results for r in t.results_by_partition}
        assert codes == {0: NONE, 7: INVALID_TXN_STATE}, codes

        # EndTxn v5 commits and answers the epoch of the next transaction.
        resp = p.end(commit=True)
        assert resp.error_code == NONE, resp
        assert (resp.producer_id, resp.producer_epoch) == (p.pid, first_epoch + 1)
        assert values(b.bootstrap, topic_name, (0, 1), "read_committed", 4) == [b"c1-0", b"c1-1", b"c1-2", b"c1-3"]
        assert h.committed_offsets(b.bootstrap, group, topic_name, 2) == {0: 7, 1: 3}
        assert fetch_offsets(wire, group, topic_name, True) == {0: (NONE, 7), 1: (NONE, 3)}
        # A retried EndTxn (the old epoch) is recognised and answers the same identity.
        retry = p.end(commit=True, epoch=first_epoch)
        assert (retry.error_code, retry.producer_id, retry.producer_epoch) == (NONE, p.pid, first_epoch + 1)

        # A zombie write of the ended transaction (old epoch) is fenced: no hanging transaction.
        assert p.produce(0, [b"zombie"], epoch=first_epoch, sequence=4) == INVALID_PRODUCER_EPOCH

        # The next transaction: bumped epoch, sequences from 0; aborted.
        assert p.produce(0, [b"a2-0", b"a2-1"]) == NONE
        resp = p.end(commit=False)
        assert (resp.error_code, resp.producer_epoch) == (NONE, first_epoch + 2)
        # Aborting with nothing open bumps the epoch again; committing nothing is refused.
        assert p.wait_completed() == "CompleteAbort"
        assert p.end(commit=True).error_code == INVALID_TXN_STATE
        resp = p.end(commit=False)
        assert (resp.error_code, resp.producer_epoch) == (NONE, first_epoch + 3)
    finally:
        wire.close()

    # The transaction state survives a crash: the producer goes on with its epoch.
    port = b.port
    b.kill()
    b.start(port)
    wire = Wire(b.bootstrap)
    p.wire = wire
    try:
        deadline = time.monotonic() + 20
        while True:
            error = p.produce(1, [b"c3-0"])
            if error == NONE or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the coordinator may still be loading
        assert error == NONE
        assert p.send_offsets(group, {0: 9}) == [NONE]
        resp = p.end(commit=True)
        assert (resp.error_code, resp.producer_epoch) == (NONE, first_epoch + 4)
    finally:
        wire.close()
    assert values(b.bootstrap, topic_name, (0, 1), "read_committed", 5) == [b"c1-0", b"c1-1", b"c1-2", b"c1-3", b"c3-0"]
    assert values(b.bootstrap, topic_name, (0, 1), "read_uncommitted", 7) == [
        b"a2-0", b"a2-1", b"c1-0", b"c1-1", b"c1-2", b"c1-3", b"c3-0"]
    assert h.committed_offsets(b.bootstrap, group, topic_name, 2) == {0: 9, 1: 3}
    for partition in (0, 1):
        lso, hw = lso_and_hw(b.bootstrap, topic_name, partition)
        assert lso == hw, f"partition {partition}: LSO {lso} behind the log end {hw}"

