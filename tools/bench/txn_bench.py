#!/usr/bin/env python3
"""Transactional vs idempotent produce, read_committed vs read_uncommitted consume (confluent-kafka).

    python3 tools/bench/txn_bench.py --bin .build/release/petrel [--records 100000] [--per-txn 1000] [--size 1024] [--reps 3]

Starts the broker on 127.0.0.1 in a fresh data directory. Per repetition, on fresh 1-partition
topics: produces `--records` records of `--size` bytes with an idempotent producer, then the same
with a transactional producer committing every `--per-txn` records; then consumes the transactional
topic from the beginning with isolation.level=read_committed and read_uncommitted. Prints
records/s per case, the medians and the ratios as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, __import__("os").path.dirname(__file__))
from admin_stall import start  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def create(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)


def produce(bootstrap: str, topic: str, records: int, size: int, per_txn: int | None) -> float:
    conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5, "batch.size": 1 << 20,
            "queue.buffering.max.kbytes": 1 << 20}
    if per_txn:
        conf["transactional.id"] = f"bench-{uuid.uuid4().hex[:8]}"
    p = Producer(conf)
    value = b"x" * size
    if per_txn:
        p.init_transactions(30)
    start_t = time.perf_counter()
    sent = 0
    while sent < records:
        if per_txn:
            p.begin_transaction()
        n = min(per_txn or records, records - sent)
        for _ in range(n):
            while True:
                try:
                    p.produce(topic, value=value, partition=0)
                    break
                except BufferError:
                    p.poll(0.01)
        sent += n
        if per_txn:
            p.commit_transaction(60)
    assert p.flush(60) == 0
    return records / (time.perf_counter() - start_t)


def consume(bootstrap: str, topic: str, records: int, isolation: str) -> float:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "isolation.level": isolation, "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    start_t = time.perf_counter()
    while got < records:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if not m.error():
                got += 1
    elapsed = time.perf_counter() - start_t
    c.close()
    return records / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--per-txn", type=int, default=1000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="petrel-txn-bench-")
    hard = __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)[1]
    proc, bootstrap, _ = start(args.bin, data, min(hard, 65536))
    rows = []
    try:
        for rep in range(args.reps):
            idem, txn = f"idem-{rep}", f"txn-{rep}"
            create(bootstrap, idem)
            create(bootstrap, txn)
            row = {"idempotent_rps": produce(bootstrap, idem, args.records, args.size, None),
                   "transactional_rps": produce(bootstrap, txn, args.records, args.size, args.per_txn),
                   "read_uncommitted_rps": consume(bootstrap, txn, args.records, "read_uncommitted"),
                   "read_committed_rps": consume(bootstrap, txn, args.records, "read_committed")}
            rows.append(row)
            print(json.dumps({"rep": rep, **{k: round(v) for k, v in row.items()}}), flush=True)
    finally:
        proc.kill()
        shutil.rmtree(data, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    ratios = {
        "transactional_over_idempotent": statistics.median(r["transactional_rps"] / r["idempotent_rps"] for r in rows),
        "read_committed_over_read_uncommitted": statistics.median(r["read_committed_rps"] / r["read_uncommitted_rps"] for r in rows),
    }
    print(json.dumps({"records": args.records, "per_txn": args.per_txn, "size": args.size,
                      "median_rps": {k: round(v) for k, v in med.items()},
                      "ratios": {k: round(v, 3) for k, v in ratios.items()}}))


if __name__ == "__main__":
    main()
