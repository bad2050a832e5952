"""Restart (clean and crash) on the same data dir, and the on-disk layout."""

import struct

from conftest import petrel_only
import petrel_helpers as h


def _values(prefix, n):
    return [f"{prefix}-{i:05d}".encode() for i in range(n)]


@petrel_only("restart on the same data dir is Petrel-specific (the peer keeps data in memory)")
def test_clean_restart_keeps_data(broker_factory, topic_name):
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name)
    first = _values("before", 300)
    delivered = h.produce_all(h.producer(b.bootstrap, acks="all"), topic_name,
                              [{"key": v, "value": v, "partition": 0} for v in first])
    assert [m.offset() for m in delivered] == list(range(300))
    b.restart()  # SIGTERM, exit code 0 asserted, start again on the same data dir
    second = _values("after", 200)
    delivered = h.produce_all(h.producer(b.bootstrap, acks="all"), topic_name,
                              [{"key": v, "value": v, "partition": 0} for v in second])
    assert [m.offset() for m in delivered] == list(range(300, 500))
    got = h.consume_n(b.bootstrap, topic_name, 500)
    assert [m.value() for m in got] == first + second
    assert [m.offset() for m in got] == list(range(500))


@petrel_only("crash recovery on the same data dir is Petrel-specific")
def test_sigkill_keeps_acknowledged(broker_factory, topic_name):
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name, partitions=2)
    vals = _values("acked", 1000)
    delivered = h.produce_all(h.producer(b.bootstrap, acks="all", linger_ms=2), topic_name,
                              [{"value": v, "partition": i % 2} for i, v in enumerate(vals)])
    acked = {0: [], 1: []}
    for m in delivered:
        acked[m.partition()].append((m.offset(), m.value()))
    b.kill()
    b.start()
    for p in (0, 1):
        want = sorted(acked[p])
        got = h.consume_n(b.bootstrap, topic_name, len(want), partitions=[p])
        assert [(m.offset(), m.value()) for m in got] == want
    # The log continues after the recovered end.
    d = h.produce_all(h.producer(b.bootstrap, acks="all"), topic_name, [{"value": b"post", "partition": 0}])
    assert d[0].offset() == len(acked[0])


@petrel_only("the data-dir layout is Petrel-specific")
def test_on_disk_layout(broker_factory, topic_name):
    b = broker_factory()
    h.create_topic(b.bootstrap, topic_name, partitions=2)
    h.produce_all(h.producer(b.bootstrap, acks="all"), topic_name,
                  [{"key": b"k", "value": b"hello-disk", "partition": 0}])
    pdir = b.data_dir / f"{topic_name}-0"
    assert pdir.is_dir(), sorted(p.name for p in b.data_dir.iterdir())
    assert (b.data_dir / f"{topic_name}-1").is_dir()
    log = pdir / "00000000000000000000.log"
    assert log.is_file(), sorted(p.name for p in pdir.iterdir())
    assert (pdir / "00000000000000000000.index").exists()
    assert (pdir / "00000000000000000000.timeindex").exists()
    data = log.read_bytes()
    assert len(data) >= 61 + len(b"hello-disk")
    base_offset, batch_len = struct.unpack(">qi", data[:12])
    assert base_offset == 0
    assert data[16] == 2  # magic
    assert 12 + batch_len <= len(data)
    assert b"hello-disk" in data[:12 + batch_len]
