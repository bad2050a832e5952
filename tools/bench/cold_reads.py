#!/usr/bin/env python3
"""Cold reads (KAFKA-7504): tail consumers' end-to-end p99 while a catch-up consumer reads GiBs
that are not in the page cache, with `petrel.fetch.cold.read.offload` on and off (same binary,
same data directory, the broker restarted between modes).

Setup: the topic `cold` is filled with --cold-gib GiB once. Per mode: restart the broker, drop the
page cache (`echo 1 > /proc/sys/vm/drop_caches`, needs root), run --tail-consumers consumers on
topic `tail` (one partition each) that a producer feeds --rate records/s with a send timestamp in
the value; measure e2e latency (send -> poll) for --idle seconds, then while kcat reads `cold` from
the beginning (the catch-up consumer), until it is done. The consumers spread over the broker's
event loops (NIO assigns connections round robin), so some share a loop with the catch-up reader.

Controls (--catchup): `hot` runs the same catch-up without dropping the page cache (the segment
files are read once beforehand), which isolates serving a fast consumer from reading the disk;
`disk` reads the dropped segment files with `cat` instead of a consumer (the disk alone).

Prints one line per rep and mode, then per mode the p99s of all reps' samples pooled and their
ratio (the goal: catch-up p99 within 2x idle p99).

Usage: PETREL_BIN=.../petrel tools/bench/cold_reads.py [--cold-gib 2] [--reps 2] [--modes on,off]
       [--catchup cold|hot|disk]
"""
import argparse
import glob
import os
import shutil
import socket
import subprocess
import struct
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, data, port, offload):
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                             "--set", f"petrel.fetch.cold.read.offload={'true' if offload else 'false'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while "listening on" not in proc.stdout.readline():
        if proc.poll() is not None:
            raise RuntimeError("broker did not start")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc


def stop(proc):
    proc.terminate()
    proc.wait(60)


def fill(bs, gib):
    p = Producer({"bootstrap.servers": bs, "linger.ms": 20, "batch.size": 1 << 20, "acks": 1,
                  "queue.buffering.max.kbytes": 1 << 20})
    value = os.urandom(64 * 1024)
    n = int(gib * (1 << 30)) // len(value)
    for i in range(n):
        while True:
            try:
                p.produce("cold", value=value, partition=i % 4)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(300)
    return n


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1\n")


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_mode(binary, data, offload, args):
    port = free_port()
    proc = start(binary, data, port, offload)
    bs = f"127.0.0.1:{port}"
    try:
        files = sorted(glob.glob(os.path.join(data, "cold-*", "*.log")))
        if args.catchup_quota_mib:
            # A fetch quota for the catch-up consumer's client id (Kafka's consumer_byte_rate).
            subprocess.run([binary, "quotas", "alter", "--bootstrap", bs, "--client-id", "catchup", "--add-config",
                            f"consumer_byte_rate={int(args.catchup_quota_mib * (1 << 20))}"], check=True, stdout=subprocess.DEVNULL)
        drop_caches()
        if args.catchup == "hot":
            subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)
        stop_ev = threading.Event()
        phase = {"name": "warmup"}
        samples = {"idle": [], "catchup": []}
        lock = threading.Lock()

        def produce_tail():
            p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "acks": 1})
            i = 0
            interval = 1.0 / args.rate
            next_t = time.monotonic()
            while not stop_ev.is_set():
                p.produce("tail", value=struct.pack(">d", time.time()) + b"t" * 200, partition=i % args.tail_consumers)
                i += 1
                p.poll(0)
                next_t += interval
                time.sleep(max(0, next_t - time.monotonic()))
            p.flush(10)

        def consume_tail(partition):
            c = Consumer({"bootstrap.servers": bs, "group.id": f"tail-{partition}", "enable.auto.commit": False,
                          "fetch.wait.max.ms": 100, "fetch.min.bytes": 1})
            c.assign([TopicPartition("tail", partition, -1)])  # -1: the end
            while not stop_ev.is_set():
                m = c.poll(0.2)
                if m is None or m.error():
                    continue
                lat = time.time() - struct.unpack(">d", m.value()[:8])[0]
                name = phase["name"]
                if name in samples:
                    with lock:
                        samples[name].append(lat * 1000)
            c.close()

        threads = [threading.Thread(target=produce_tail)] + [
            threading.Thread(target=consume_tail, args=(i,)) for i in range(args.tail_consumers)]
        for t in threads:
            t.start()
        time.sleep(3)
        phase["name"] = "idle"
        time.sleep(args.idle)
        phase["name"] = "catchup"
        t0 = time.monotonic()
        if args.catchup == "disk":
            subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)
            read = sum(os.path.getsize(f) for f in files)
        else:
            kcat = subprocess.run(["kcat", "-C", "-b", bs, "-t", "cold", "-o", "beginning", "-e", "-q", "-X", "client.id=catchup",
                                   "-X", "fetch.max.bytes=52428800", "-X", f"max.partition.fetch.bytes={args.partition_fetch_bytes}",
                                   "-f", "%S\n"], stdout=subprocess.PIPE, text=True, timeout=600)
            read = sum(int(x) for x in kcat.stdout.split())
        took = time.monotonic() - t0
        phase["name"] = "done"
        stop_ev.set()
        for t in threads:
            t.join(30)
        idle, busy = samples["idle"], samples["catchup"]
        return {"offload": offload, "idle_p50": pct(idle, .5), "idle_p99": pct(idle, .99), "idle_n": len(idle),
                "catchup_p50": pct(busy, .5), "catchup_p99": pct(busy, .99), "catchup_max": max(busy or [0]),
                "catchup_n": len(busy), "catchup_mib_s": read / took / (1 << 20), "catchup_gib": read / (1 << 30),
                "idle_samples": idle, "catchup_samples": busy}
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("PETREL_BIN", "petrel"))
    ap.add_argument("--cold-gib", type=float, default=2.0)
    ap.add_argument("--tail-consumers", type=int, default=4)
    ap.add_argument("--rate", type=int, default=200, help="tail records per second (all partitions)")
    ap.add_argument("--idle", type=float, default=10)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--catchup-quota-mib", type=float, default=0,
                    help="a consumer_byte_rate quota in MiB/s for the catch-up consumer (client id catchup); 0: none")
    ap.add_argument("--partition-fetch-bytes", type=int, default=4 << 20,
                    help="the catch-up consumer's max.partition.fetch.bytes (librdkafka's default: 1048576)")
    ap.add_argument("--modes", default="on,off")
    ap.add_argument("--catchup", choices=["cold", "hot", "disk"], default="cold",
                    help="cold: kcat after dropping the page cache; hot: kcat, data in the page cache; disk: cat the dropped files")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root to drop the page cache")
    data = tempfile.mkdtemp(prefix="petrel-cold-bench-", dir="/var/tmp")
    try:
        port = free_port()
        proc = start(args.bin, data, port, True)
        bs = f"127.0.0.1:{port}"
        admin = AdminClient({"bootstrap.servers": bs})
        for f in admin.create_topics([NewTopic("cold", 4, 1), NewTopic("tail", args.tail_consumers, 1)]).values():
            f.result(60)
        t0 = time.monotonic()
        n = fill(bs, args.cold_gib)
        print(f"filled {n} x 64 KiB in {time.monotonic() - t0:.1f} s", flush=True)
        stop(proc)
        pooled = {}
        label = args.catchup + (f"+quota{args.catchup_quota_mib:g}MiB/s" if args.catchup_quota_mib else "")
        for rep in range(args.reps):
            for mode in args.modes.split(","):
                load = os.getloadavg()[0]
                r = run_mode(args.bin, data, mode == "on", args)
                print(f"rep {rep} catchup={label} offload={mode:3} load1={load:.1f} idle p50/p99 {r['idle_p50']:.1f}/{r['idle_p99']:.1f} ms "
                      f"(n={r['idle_n']}) | catch-up p50/p99/max {r['catchup_p50']:.1f}/{r['catchup_p99']:.1f}/"
                      f"{r['catchup_max']:.1f} ms (n={r['catchup_n']}) | catch-up read {r['catchup_gib']:.2f} GiB "
                      f"at {r['catchup_mib_s']:.0f} MiB/s", flush=True)
                idle, busy = pooled.setdefault(mode, ([], []))
                idle += r["idle_samples"]
                busy += r["catchup_samples"]
        # One rep's catch-up gives a few hundred samples, so its p99 is one of the few slowest: the
        # pooled figures (every rep's samples together) are the ones to compare.
        for mode, (idle, busy) in pooled.items():
            i99, b99 = pct(idle, .99), pct(busy, .99)
            print(f"pooled catchup={label} offload={mode:3} idle p99 {i99:.2f} ms (n={len(idle)}) | catch-up p99 "
                  f"{b99:.2f} ms (n={len(busy)}) | catch-up p99 / idle p99 = {b99 / i99:.2f}", flush=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
