#!/usr/bin/env python3
"""Admin work vs the data path: produce latency to an unrelated topic while a large topic is created
and deleted, plus creation/deletion time, open descriptors and RSS.

    python3 tools/bench/admin_stall.py --bin .build/release/petrel [--partitions 10000] [--nofile 20000]

Starts the broker on 127.0.0.1 with RLIMIT_NOFILE=(nofile, nofile) in a fresh data directory, keeps
one producer (acks=1, linger.ms=0) sending a 100-byte record to a 1-partition topic every 2 ms, and
reports the latency percentiles (send → delivery report) per phase: idle, during CreateTopics of
`--partitions` partitions, during DeleteTopics of it. Prints one JSON object at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def start(binary: str, data: str, nofile: int) -> tuple[subprocess.Popen, str, list[str]]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=limit, start_new_session=True)
    lines: list[str] = []
    port = None
    deadline = time.monotonic() + 30
    while port is None and time.monotonic() < deadline:
        line = proc.stdout.readline().decode("utf-8", "replace")
        if not line:
            break
        lines.append(line)
        m = re.search(r"listening on:?\s+(?:[a-z]+://)?([0-9.]+):(\d+)", line)
        if m:
            port = int(m.group(2))
    if port is None:
        proc.kill()
        sys.exit("broker did not start:\n" + "".join(lines))
    threading.Thread(target=lambda: [lines.append(l.decode("utf-8", "replace")) for l in iter(proc.stdout.readline, b"")],
                     daemon=True).start()
    return proc, f"127.0.0.1:{port}", lines


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class LatencyProbe:
    """Sends one record every `interval` seconds; records (phase, latency ms) per delivery."""

    def __init__(self, bootstrap: str, topic: str, interval: float = 0.002):
        self.p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1, "message.timeout.ms": 300000,
                           "socket.timeout.ms": 300000, "request.timeout.ms": 300000})
        self.topic = topic
        self.interval = interval
        self.phase = "warmup"
        self.samples: dict[str, list[float]] = {}
        self.failures = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        nxt = time.monotonic()
        while not self.stop.is_set():
            sent = time.monotonic()
            phase = self.phase

            def cb(err, _msg, sent=sent, phase=phase):
                if err is not None:
                    self.failures += 1
                else:
                    self.samples.setdefault(phase, []).append((time.monotonic() - sent) * 1000)

            self.p.produce(self.topic, value=b"x" * 100, on_delivery=cb)
            nxt += self.interval
            while time.monotonic() < nxt:
                self.p.poll(0.0005)
        self.p.flush(120)

    @staticmethod
    def summary(values: list[float]) -> dict:
        if not values:
            return {"count": 0}
        v = sorted(values)
        pick = lambda q: round(v[min(len(v) - 1, int(q * len(v)))], 2)
        return {"count": len(v), "p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(v[-1], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--partitions", type=int, default=10000)
    ap.add_argument("--nofile", type=int, default=20000)
    ap.add_argument("--label", default="")
    args = ap.parse_args()

    data = tempfile.mkdtemp(prefix="petrel-admin-stall-")
    proc, bootstrap, lines = start(args.bin, data, args.nofile)
    result: dict = {"label": args.label, "binary": args.bin, "partitions": args.partitions, "nofile": args.nofile}
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 300000})
        admin.create_topics([NewTopic("probe", num_partitions=1, replication_factor=1)])["probe"].result(30)
        probe = LatencyProbe(bootstrap, "probe")
        probe.thread.start()
        time.sleep(1.0)
        probe.phase = "idle"
        time.sleep(3.0)

        probe.phase = "create"
        t0 = time.monotonic()
        try:
            admin.create_topics([NewTopic("big", num_partitions=args.partitions, replication_factor=1)],
                                request_timeout=600)["big"].result(600)
            result["create_ok"] = True
        except Exception as e:  # noqa: BLE001 - report whatever the broker answered
            result["create_ok"] = False
            result["create_error"] = str(e)
        result["create_s"] = round(time.monotonic() - t0, 2)
        probe.phase = "after-create"
        time.sleep(1.0)
        result["rss_mib_after_create"] = round(rss_mib(proc.pid), 1)
        result["fds_after_create"] = fds(proc.pid)

        if result["create_ok"]:
            probe.phase = "delete"
            t0 = time.monotonic()
            try:
                admin.delete_topics(["big"], request_timeout=600)["big"].result(600)
            except Exception as e:  # noqa: BLE001
                result["delete_error"] = str(e)
            result["delete_s"] = round(time.monotonic() - t0, 2)
            probe.phase = "after-delete"
            time.sleep(1.0)
        probe.stop.set()
        probe.thread.join(180)
        result["latency"] = {k: LatencyProbe.summary(v) for k, v in probe.samples.items() if k != "warmup"}
        result["probe_failures"] = probe.failures
        result["rss_mib_end"] = round(rss_mib(proc.pid), 1)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
