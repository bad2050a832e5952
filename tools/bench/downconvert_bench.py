#!/usr/bin/env python3
"""The cost of down-converting v2 batches for old consumers (issue 14's legacy formats).

    python3 tools/bench/downconvert_bench.py --bin .build/release/petrel [--records 200000] [--size 1024] [--reps 3]

Starts the broker on 127.0.0.1 in a fresh data directory, produces `--records` records of `--size`
bytes (confluent-kafka, lz4-free v2 batches) to a 1-partition topic, then reads them all back with
kafka-python three times per repetition:

  - modern:  kafka-python's own negotiation (Fetch v4+): v2 batches, sent with sendfile, no conversion;
  - magic1:  api_version=(0, 10, 1) (Fetch v3): every batch rewritten as a magic-1 message set;
  - magic0:  api_version=(0, 9) (Fetch v1): every batch rewritten as a magic-0 message set.

The broker's CPU time (utime + stime from /proc/PID/stat) over each read is divided by the records
read, so the client's own speed (kafka-python decodes in Python; CRC checks are off because its pure-Python
CRC-32C would make the modern case the slowest) does not enter the broker figure.
Prints per-case broker µs per record, the client's records/s, medians and the ratios to `modern`
as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from admin_stall import start  # noqa: E402

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402

CASES = {"modern": None, "magic1": (0, 10, 1), "magic0": (0, 9)}


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def produce(bootstrap: str, topic: str, records: int, size: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1 << 20,
                  "queue.buffering.max.kbytes": 1 << 20})
    value = b"x" * size
    for i in range(records):
        while True:
            try:
                p.produce(topic, key=str(i).encode(), value=value, partition=0)
                break
            except BufferError:
                p.poll(0.01)
    if p.flush(120) != 0:
        sys.exit("produce did not complete")


def consume(bootstrap: str, topic: str, records: int, api_version, pid: int) -> tuple[float, float]:
    kwargs = {"bootstrap_servers": bootstrap, "enable_auto_commit": False, "auto_offset_reset": "earliest",
              "max_partition_fetch_bytes": 1 << 20, "fetch_max_bytes": 8 << 20,
              "check_crcs": False}
    if api_version is not None:
        kwargs["api_version"] = api_version
    c = KafkaConsumer(**kwargs)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    seen = 0
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    deadline = time.monotonic() + 300
    while seen < records and time.monotonic() < deadline:
        for batch in c.poll(timeout_ms=500, max_records=100000).values():
            seen += len(batch)
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    c.close()
    if seen < records:
        sys.exit(f"{api_version}: read {seen} of {records}")
    return cpu / records * 1e6, records / wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="petrel-downconvert-")
    proc, bootstrap, _ = start(args.bin, data, 4096)
    try:
        produce(bootstrap, "dc", args.records, args.size)
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in CASES}
        for _ in range(args.reps):
            for name, version in CASES.items():
                runs[name].append(consume(bootstrap, "dc", args.records, version, proc.pid))
        med = {k: {"broker_us_per_record": statistics.median(r[0] for r in v),
                   "client_records_per_s": statistics.median(r[1] for r in v)} for k, v in runs.items()}
        base = med["modern"]["broker_us_per_record"]
        print(json.dumps({
            "records": args.records, "size": args.size, "reps": args.reps,
            "load_average": os.getloadavg()[0],
            "runs": {k: [{"broker_us_per_record": round(a, 3), "client_records_per_s": round(b)} for a, b in v]
                     for k, v in runs.items()},
            "median": med,
            "broker_cpu_ratio_to_modern": {k: round(v["broker_us_per_record"] / base, 2) for k, v in med.items()},
        }, indent=2))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
