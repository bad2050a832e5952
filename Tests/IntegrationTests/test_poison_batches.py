"""A batch whose CRC and header are valid but whose records are not never reaches the log.

Hand-built Produce frames (v3 and v8) carry batches with malformed records; the broker answers
INVALID_RECORD (with KIP-467 record_errors where Kafka gives them), stores nothing, and real
consumers keep reading the partition. `petrel dump --verify --deep` flags such a batch on disk, and
recovery after an unclean stop truncates it. OffsetCommit for partitions that do not exist is
answered UNKNOWN_TOPIC_OR_PARTITION and the rest is committed.
"""

import os
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from kafka.record.util import calc_crc32c

import petrel_helpers as h
from conftest import is_peer, petrel_bin

pytestmark = pytest.mark.skipif(is_peer(), reason="Petrel's validation and tools")

INVALID_RECORD = 87
UNKNOWN_TOPIC_OR_PARTITION = 3


# --- hand-built record batches (independent of Petrel's encoder) ---------------------------------

def _varint(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    raw &= (1 << 64) - 1
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def _record(offset_delta: int, key: bytes | None, value: bytes | None, length_adjust: int = 0,
            timestamp_delta: int = 0) -> bytes:
    body = b"\x00" + _varint(timestamp_delta) + _varint(offset_delta)
    body += _varint(-1) if key is None else _varint(len(key)) + key
    body += _varint(-1) if value is None else _varint(len(value)) + value
    body += _varint(0)
    return _varint(len(body) + length_adjust) + body


def _batch(records: bytes, count: int, last_offset_delta: int, timestamp: int = 1_700_000_000_000) -> bytes:
    after_crc = struct.pack(">hiqqqhii", 0, last_offset_delta, timestamp, timestamp, -1, -1, -1, count) + records
    crc = calc_crc32c(after_crc) & 0xFFFFFFFF
    batch_length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + after_crc


def _good(n: int, prefix: bytes = b"k") -> bytes:
    return _batch(b"".join(_record(i, prefix + b"%d" % i, b"v%d" % i) for i in range(n)), n, n - 1)


POISONS = {
    # A record's length claims more bytes than the batch holds.
    "record-length-past-batch": _batch(_record(0, b"k", b"v", length_adjust=50), 1, 0),
    # The header says two records; the bytes hold one.
    "count-larger-than-records": _batch(_record(0, b"k", b"v"), 2, 1),
    # Two records where the header says one (bytes left after the last record).
    "records-after-count": _batch(_record(0, b"k", b"v") + _record(1, b"k", b"v"), 1, 0),
    # Offset deltas out of order.
    "offset-deltas-out-of-order": _batch(_record(1, b"a", b"v") + _record(0, b"b", b"v"), 2, 1),
    # Bytes left inside a record after its headers.
    "bytes-inside-record": _batch(_record(0, b"k", b"v", length_adjust=3) + b"\x00\x00\x00", 1, 0),
}


# --- hand-built Produce frames ------------------------------------------------------------------

def _string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


def _produce(version: int, topic: str, batch: bytes, correlation: int = 7) -> bytes:
    header = struct.pack(">hhi", 0, version, correlation) + _string("poison-test")
    body = struct.pack(">hhi", -1, -1, 10_000)  # transactional_id null, acks=all, timeout
    body += struct.pack(">i", 1) + _string(topic) + struct.pack(">i", 1) + struct.pack(">i", 0)
    body += struct.pack(">i", len(batch)) + batch
    frame = header + body
    return struct.pack(">i", len(frame)) + frame


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values if len(values) > 1 else values[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s


def _send_produce(bootstrap: str, version: int, topic: str, batch: bytes) -> dict:
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(_produce(version, topic, batch))
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        r = _Reader(s.recv(size, socket.MSG_WAITALL))
    assert r.take(">i") == 7
    assert r.take(">i") == 1
    assert r.string() == topic
    assert r.take(">i") == 1
    index, error, base_offset = r.take(">ihq")
    r.take(">q")  # log_append_time
    out = {"error": error, "base_offset": base_offset, "record_errors": [], "message": None}
    if version >= 5:
        r.take(">q")  # log_start_offset
    if version >= 8:
        for _ in range(r.take(">i")):
            out["record_errors"].append((r.take(">i"), r.string()))
        out["message"] = r.string()
    return out


def _end_offset(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


# --- tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [3, 8])
def test_poison_batches_are_refused_and_consumers_keep_reading(broker, topic_name, version):
    h.create_topic(broker.bootstrap, topic_name)
    assert _send_produce(broker.bootstrap, version, topic_name, _good(3))["error"] == 0
    for name, poison in POISONS.items():
        answer = _send_produce(broker.bootstrap, version, topic_name, poison)
        assert answer["error"] == INVALID_RECORD, (name, answer)
        if version >= 8:
            assert answer["message"], name
    assert _send_produce(broker.bootstrap, version, topic_name, _good(2, b"z"))["error"] == 0
    assert _end_offset(broker.bootstrap, topic_name) == 5
    # librdkafka (confluent-kafka) reads every stored record and nothing else ...
    got = h.consume_n(broker.bootstrap, topic_name, 5)
    assert [m.key() for m in got] == [b"k0", b"k1", b"k2", b"z0", b"z1"]
    # ... and so does kcat (Debian's librdkafka 2.0.2), to the end of the partition.
    out = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", topic_name, "-o", "beginning", "-e", "-f", "%k\n"],
                         capture_output=True, timeout=30, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["k0", "k1", "k2", "z0", "z1"]


def test_keyless_records_on_compacted_topic_get_record_errors(broker, topic_name):
    h.create_topic(broker.bootstrap, topic_name, config={"cleanup.policy": "compact"})
    records = _record(0, b"a", b"1") + _record(1, None, b"2") + _record(2, b"c", b"3") + _record(3, None, b"4")
    answer = _send_produce(broker.bootstrap, 8, topic_name, _batch(records, 4, 3))
    assert answer["error"] == INVALID_RECORD
    assert [index for index, _ in answer["record_errors"]] == [1, 3]
    assert all("without key" in message for _, message in answer["record_errors"])
    assert _end_offset(broker.bootstrap, topic_name) == 0
    # librdkafka fails the keyless records of its batch with INVALID_RECORD; nothing keyless is stored.
    p = h.producer(broker.bootstrap, acks="all", **{"linger.ms": 50, "retries": 0})
    results = []
    for i, key in enumerate([b"x", None, b"y"]):
        p.produce(topic_name, key=key, value=b"v%d" % i, partition=0,
                  on_delivery=lambda err, msg, key=key: results.append((key, err)))
    p.flush(30)
    assert len(results) == 3
    for key, err in results:
        if key is None:
            assert err is not None and err.code() == INVALID_RECORD, results
    stored = _end_offset(broker.bootstrap, topic_name)
    ok = [key for key, err in results if err is None]
    assert stored == len(ok)


def test_dump_deep_flags_and_recovery_truncates_a_poison_batch_on_disk(broker_factory, tmp_path, topic_name):
    data = tmp_path / "poison-data"
    b = broker_factory(data_dir=data)
    h.create_topic(b.bootstrap, topic_name)
    assert _send_produce(b.bootstrap, 3, topic_name, _good(3))["error"] == 0
    assert b.stop() == 0
    segment = data / f"{topic_name}-0" / ("0" * 20 + ".log")
    good_size = segment.stat().st_size
    # Append a CRC-valid batch with a bad record at offset 3, as a buggy writer might have.
    poison = bytearray(POISONS["record-length-past-batch"])
    struct.pack_into(">q", poison, 0, 3)
    with open(segment, "ab") as f:
        f.write(poison)
    dump = subprocess.run([petrel_bin(), "dump", "--verify", "--deep", str(segment)], capture_output=True, text=True, timeout=60)
    assert dump.returncode != 0, dump.stdout
    assert f"position {good_size}" in dump.stdout + dump.stderr or f"position: {good_size}" in dump.stdout + dump.stderr
    assert "offset 3" in dump.stdout + dump.stderr or "offset: 3" in dump.stdout + dump.stderr
    # Without --deep the framing (CRC) is fine: that is why the deep walk exists.
    shallow = subprocess.run([petrel_bin(), "dump", "--verify", str(segment)], capture_output=True, text=True, timeout=60)
    assert shallow.returncode == 0, shallow.stdout
    # An unclean restart scans from the recovery point and truncates the invalid batch.
    os.unlink(data / ".kafka_cleanshutdown")
    b.start()
    assert _end_offset(b.bootstrap, topic_name) == 3
    assert segment.stat().st_size == good_size
    got = h.consume_n(b.bootstrap, topic_name, 3)
    assert [m.key() for m in got] == [b"k0", b"k1", b"k2"]


def test_offset_commit_for_missing_partitions_is_refused_and_the_rest_committed(broker, topic_name):
    h.create_topic(broker.bootstrap, topic_name)
    group = f"g-{topic_name}"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        offsets = [TopicPartition(topic_name, 0, 5), TopicPartition(topic_name, 7, 1),
                   TopicPartition(f"missing-{topic_name}", 0, 9)]
        errors = {}
        try:
            result = c.commit(offsets=offsets, asynchronous=False)
            errors = {(tp.topic, tp.partition): tp.error for tp in result}
        except KafkaException as e:  # some versions raise with the first partition error
            errors = {"raised": e.args[0]}
        if "raised" in errors:
            assert errors["raised"].code() == UNKNOWN_TOPIC_OR_PARTITION
        else:
            assert errors[(topic_name, 0)] is None
            assert errors[(topic_name, 7)].code() == UNKNOWN_TOPIC_OR_PARTITION
            assert errors[(f"missing-{topic_name}", 0)].code() == UNKNOWN_TOPIC_OR_PARTITION
        committed = c.committed([TopicPartition(topic_name, 0), TopicPartition(f"missing-{topic_name}", 0)], timeout=10)
        assert committed[0].offset == 5
        assert committed[1].offset < 0  # never stored
    finally:
        c.close()
