#!/usr/bin/env python3
"""Produce then consume N records of 1 KiB over PLAINTEXT and over SASL_SSL (SCRAM-SHA-512) with
confluent-kafka, against one broker started here with both listeners (certificates from
tools/make-test-certs.sh in a temporary directory). Prints records/s and MiB/s for each, and the
SASL_SSL / PLAINTEXT ratios.

Then end-to-end latency at a fixed rate (E2E_RATE msg/s for E2E_SECONDS, 1 KiB, acks=1): a consumer
thread reads what a producer sends, each record carrying its send time; prints p50/p99/max per listener.

Usage: PETREL_BIN=.build/release/petrel tools/bench/security_bench.py [N] [SIZE] [E2E_RATE] [E2E_SECONDS]
"""
import os, re, subprocess, struct, sys, tempfile, threading, time, uuid
from pathlib import Path
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
SIZE = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
E2E_RATE = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
E2E_SECONDS = int(sys.argv[4]) if len(sys.argv) > 4 else 10
BIN = os.environ.get("PETREL_BIN", str(ROOT / ".build/release/petrel"))

def produce(conf, topic):
    p = Producer({**conf, "acks": "1", "linger.ms": 5, "batch.size": 1048576, "queue.buffering.max.messages": 1000000,
                  "queue.buffering.max.kbytes": 1048576, "enable.idempotence": False, "compression.type": "none"})
    value = bytes(SIZE)
    start = time.perf_counter()
    for i in range(N):
        while True:
            try:
                p.produce(topic, value); break
            except BufferError:
                p.poll(0.001)
        if i % 1000 == 0: p.poll(0)
    assert p.flush(60) == 0
    return time.perf_counter() - start

def e2e(conf, topic):
    total = E2E_RATE * E2E_SECONDS
    latencies = []
    ready = threading.Event()
    def reader():
        c = Consumer({**conf, "group.id": "e2e", "enable.auto.commit": False, "fetch.wait.max.ms": 5, "fetch.min.bytes": 1})
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        ready.set()
        deadline = time.monotonic() + E2E_SECONDS + 30
        while len(latencies) < total and time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.2):
                if m.error(): raise SystemExit(m.error())
                latencies.append(time.perf_counter() - struct.unpack_from(">d", m.value())[0])
        c.close()
    t = threading.Thread(target=reader); t.start(); ready.wait(); time.sleep(1)
    p = Producer({**conf, "acks": "1", "linger.ms": 1, "enable.idempotence": False, "compression.type": "none"})
    pad = bytes(SIZE - 8)
    start = time.perf_counter()
    for i in range(total):
        due = start + i / E2E_RATE
        while (now := time.perf_counter()) < due:
            if due - now > 0.0005: p.poll(0)
        # The send time is when the record was due (coordinated omission corrected).
        p.produce(topic, struct.pack(">d", due) + pad)
        if i % 100 == 0: p.poll(0)
    p.flush(60)
    t.join()
    latencies.sort()
    q = lambda f: latencies[min(len(latencies) - 1, int(f * len(latencies)))] * 1000
    return len(latencies), q(0.5), q(0.99), latencies[-1] * 1000

def consume(conf, topic):
    c = Consumer({**conf, "group.id": "bench", "enable.auto.commit": False, "fetch.max.bytes": 52428800,
                  "max.partition.fetch.bytes": 10485760})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got, start = 0, time.perf_counter()
    while got < N:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error(): raise SystemExit(m.error())
            got += 1
    el = time.perf_counter() - start
    c.close()
    return el

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    subprocess.run([str(ROOT / "tools/make-test-certs.sh"), str(tmp / "certs")], check=True, capture_output=True)
    data = tmp / "data"; data.mkdir()
    subprocess.run([BIN, "users", "add-scram", "--data-dir", str(data), "bench", "--mechanism", "SCRAM-SHA-512", "--password", "bench-pw"], check=True, capture_output=True)
    broker = subprocess.Popen([BIN, "serve", "--data-dir", str(data), "--set", "listeners=PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
                               "--set", "ssl.keystore.type=PEM", "--set", f"ssl.keystore.location={tmp / 'certs/broker-keystore.pem'}",
                               "--set", "sasl.enabled.mechanisms=SCRAM-SHA-512"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ports = {}
    while len(ports) < 2:
        line = broker.stdout.readline()
        if not line: raise SystemExit("broker exited")
        m = re.search(r"petrel listener (\S+) \(\S+\) bound to \S+:(\d+)", line)
        if m: ports[m.group(1)] = int(m.group(2))
    try:
        confs = {
            "PLAINTEXT": {"bootstrap.servers": f"127.0.0.1:{ports['PLAINTEXT']}"},
            "SASL_SSL": {"bootstrap.servers": f"127.0.0.1:{ports['SASL_SSL']}", "security.protocol": "SASL_SSL",
                         "ssl.ca.location": str(tmp / "certs/ca.pem"), "sasl.mechanism": "SCRAM-SHA-512",
                         "sasl.username": "bench", "sasl.password": "bench-pw"},
        }
        results = {}
        for name, conf in confs.items():
            topic = "bench-" + uuid.uuid4().hex[:8]
            admin = AdminClient(conf)
            admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
            p = produce(conf, topic)
            c = consume(conf, topic)
            results[name] = (N / p, N / c)
            print(f"{name:9s} produce {N/p:10,.0f} rec/s {N*SIZE/p/1048576:7.1f} MiB/s   consume {N/c:10,.0f} rec/s {N*SIZE/c/1048576:7.1f} MiB/s")
        for name, conf in confs.items():
            topic = "e2e-" + uuid.uuid4().hex[:8]
            admin = AdminClient(conf)
            admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
            n, p50, p99, worst = e2e(conf, topic)
            print(f"{name:9s} e2e at {E2E_RATE} msg/s: {n} records, p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms")
        print(f"SASL_SSL / PLAINTEXT: produce {results['SASL_SSL'][0]/results['PLAINTEXT'][0]:.0%}, consume {results['SASL_SSL'][1]/results['PLAINTEXT'][1]:.0%}")
    finally:
        broker.terminate(); broker.wait(30)
