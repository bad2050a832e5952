#!/usr/bin/env python3
"""10,000 concurrent connections: broker RSS and a normal client's produce p99 with and without them.

Opens --connections sockets to the broker (RLIMIT_NOFILE raised here), sends ApiVersions v0 and
Metadata v0 on each and reads the answers, keeps them open and every second sends ApiVersions on
a rotating tenth of them (idle-ish); meanwhile a confluent-kafka producer (acks=1, linger 0)
sends --rate records/s and the delivery latency is measured. Reports broker VmRSS (and VmHWM)
before, with the connections open, and the producer's p50/p99 in both phases.

Usage: PETREL_BIN=.../petrel tools/bench/many_connections.py [--connections 10000] [--seconds 15]
"""
import argparse
import os
import resource
import selectors
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # MiB
    return 0.0


def frame(api_key, version, correlation, body=b""):
    cid = b"many"
    payload = struct.pack(">hhih", api_key, version, correlation, len(cid)) + cid + body
    return struct.pack(">i", len(payload)) + payload


API_VERSIONS = frame(18, 0, 1)
METADATA = frame(3, 0, 2, struct.pack(">i", 0))


def read_frames(sock, want):
    """Reads `want` response frames (blocking)."""
    for _ in range(want):
        size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
        got = 0
        while got < size:
            chunk = sock.recv(min(65536, size - got))
            if not chunk:
                raise ConnectionError("closed")
            got += len(chunk)


def produce_latency(bs, seconds, rate):
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "acks": 1})
    lat = []

    def cb(err, msg, t0):
        if err is None:
            lat.append((time.monotonic() - t0) * 1000)

    end = time.monotonic() + seconds
    interval = 1.0 / rate
    nxt = time.monotonic()
    while time.monotonic() < end:
        t0 = time.monotonic()
        p.produce("normal", value=b"n" * 200, on_delivery=lambda e, m, t0=t0: cb(e, m, t0))
        p.poll(0)
        nxt += interval
        time.sleep(max(0, nxt - time.monotonic()))
    p.flush(30)
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(0.99 * len(lat)))], len(lat)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("PETREL_BIN", "petrel"))
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--rate", type=int, default=500)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 1000
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, hard)), hard))
    data = tempfile.mkdtemp(prefix="petrel-conn-bench-", dir="/var/tmp")
    port = free_port()
    proc = subprocess.Popen([args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                             "--set", "max.connections=100000", "--set", "max.connections.per.ip=100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        while "listening on" not in proc.stdout.readline():
            pass
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        bs = f"127.0.0.1:{port}"
        admin = AdminClient({"bootstrap.servers": bs})
        admin.create_topics([NewTopic("normal", 1, 1)])["normal"].result(60)
        time.sleep(1)
        rss0 = status(proc.pid, "VmRSS")
        p50a, p99a, na = produce_latency(bs, args.seconds, args.rate)
        rss1 = status(proc.pid, "VmRSS")
        print(f"without: produce p50 {p50a:.2f} ms p99 {p99a:.2f} ms (n={na}); broker RSS {rss0:.0f} -> {rss1:.0f} MiB", flush=True)

        socks = []
        t0 = time.monotonic()
        for i in range(args.connections):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(API_VERSIONS + METADATA)
            socks.append(s)
            if len(socks) % 500 == 0:  # read the answers in batches, keeping the accept queue short
                for q in socks[-500:]:
                    read_frames(q, 2)
        for q in socks[len(socks) - len(socks) % 500:]:
            read_frames(q, 2)
        opened = time.monotonic() - t0
        time.sleep(2)
        rss2 = status(proc.pid, "VmRSS")
        print(f"{len(socks)} connections open in {opened:.1f} s (ApiVersions + Metadata answered on each); "
              f"broker RSS {rss2:.0f} MiB", flush=True)
        stop = threading.Event()

        def keep_busy():
            k = 0
            while not stop.is_set():
                batch = socks[k::10]
                for s in batch:
                    s.sendall(API_VERSIONS)
                for s in batch:
                    read_frames(s, 1)
                k = (k + 1) % 10
                stop.wait(1)

        t = threading.Thread(target=keep_busy)
        t.start()
        p50b, p99b, nb = produce_latency(bs, args.seconds, args.rate)
        stop.set()
        t.join(60)
        rss3 = status(proc.pid, "VmRSS")
        hwm = status(proc.pid, "VmHWM")
        print(f"with {len(socks)}: produce p50 {p50b:.2f} ms p99 {p99b:.2f} ms (n={nb}); broker RSS {rss3:.0f} MiB "
              f"(peak {hwm:.0f} MiB); load1 {os.getloadavg()[0]:.1f}", flush=True)
        for s in socks:
            s.close()
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
