"""Volume: 20k x 1 KiB across 4 partitions, per-partition order preserved."""

import os

import pytest

import petrel_helpers as h

N = 20_000
PARTS = 4


@pytest.mark.timeout(300)
def test_20k_messages_4_partitions(bootstrap, topic_name):
    h.create_topic(bootstrap, topic_name, partitions=PARTS)
    pad = os.urandom(1024 - 16)
    msgs = [{"key": b"%d" % i, "value": b"%06d:%08d:" % (i % PARTS, i) + pad[: 1024 - 16], "partition": i % PARTS}
            for i in range(N)]
    assert all(len(m["value"]) == 1024 for m in msgs)
    p = h.producer(bootstrap, acks="1", linger_ms=10, batch_size=262144, compression_type="none",
                   queue_buffering_max_messages=50_000)
    delivered = h.produce_all(p, topic_name, msgs, timeout=120)
    assert len(delivered) == N
    got = h.consume_n(bootstrap, topic_name, N, partitions=range(PARTS), timeout=120, extra_wait=1.0)
    assert len(got) == N
    per = {p: [] for p in range(PARTS)}
    for m in got:
        per[m.partition()].append(m)
    for p in range(PARTS):
        expect = [m["value"] for m in msgs if m["partition"] == p]
        assert [m.value() for m in per[p]] == expect, f"partition {p}"
        assert [m.offset() for m in per[p]] == list(range(len(expect)))
