#!/usr/bin/env python3
"""Broker CPU per Fetch for a consumer of 1,000 partitions, with KIP-227 sessions (the default)
and without (max.incremental.fetch.session.cache.slots=0), same binary.

A kafka-python consumer (it implements KIP-227; librdkafka 2.16 always sends sessionless fetches)
is assigned all partitions of a topic that a trickle of records keeps changing, and runs for
--seconds; broker CPU comes from /proc/PID/stat, the number of Fetch requests from the metrics
endpoint. With slots=0 the same client gets no session and sends full fetches.

Usage: PETREL_BIN=.../petrel tools/bench/fetch_sessions_cpu.py [--partitions 1000] [--seconds 20] [--reps 2]
"""
import argparse
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from confluent_kafka import Producer
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch_count(mport):
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith('petrel_request_duration_seconds_count{api="Fetch"}'):
            return float(line.split()[-1])
    return 0.0


def run(binary, slots, partitions, seconds):
    port, mport = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="petrel-fs-bench-")
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                             "--set", f"metrics.listen=127.0.0.1:{mport}",
                             "--set", f"max.incremental.fetch.session.cache.slots={slots}"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        while "listening on" not in proc.stdout.readline():
            pass
        bs = f"127.0.0.1:{port}"
        admin = AdminClient({"bootstrap.servers": bs})
        admin.create_topics([NewTopic("wide", partitions, 1)])["wide"].result(60)
        time.sleep(1)
        stop = threading.Event()

        def trickle():
            p = Producer({"bootstrap.servers": bs, "linger.ms": 5})
            i = 0
            while not stop.is_set():
                p.produce("wide", value=b"x" * 100, partition=i % partitions)
                i += 1
                p.poll(0)
                time.sleep(0.005)  # ~200 records/s spread over the partitions
            p.flush(10)

        c = KafkaConsumer(bootstrap_servers=bs, auto_offset_reset="earliest", enable_auto_commit=False,
                          fetch_max_wait_ms=100, max_partition_fetch_bytes=65536)
        c.assign([KTopicPartition("wide", p) for p in range(partitions)])
        t = threading.Thread(target=trickle)
        t.start()
        end = time.monotonic() + 3
        while time.monotonic() < end:
            c.poll(timeout_ms=100)
        cpu0, f0 = cpu_seconds(proc.pid), fetch_count(mport)
        end = time.monotonic() + seconds
        got = 0
        while time.monotonic() < end:
            got += sum(len(r) for r in c.poll(timeout_ms=100).values())
        cpu1, f1 = cpu_seconds(proc.pid), fetch_count(mport)
        stop.set()
        t.join()
        c.close()
        fetches = f1 - f0
        return {"slots": slots, "fetches": int(fetches), "cpu_s": round(cpu1 - cpu0, 3),
                "cpu_us_per_fetch": round((cpu1 - cpu0) / max(fetches, 1) * 1e6, 1), "records": got}
    finally:
        proc.terminate()
        proc.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    binary = os.environ["PETREL_BIN"]
    for rep in range(args.reps):
        for slots in (1000, 0):
            print({"rep": rep + 1, "sessions": slots > 0, **run(binary, slots, args.partitions, args.seconds)}, flush=True)


if __name__ == "__main__":
    main()
