#!/usr/bin/env python3
"""librdkafka baseline: produce N records of SIZE bytes; report records/s, MiB/s and ack latency percentiles."""
import sys, time
from confluent_kafka import Producer
bootstrap, topic, n, size, acks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
linger = sys.argv[6] if len(sys.argv) > 6 else "5"
nocb = len(sys.argv) > 7 and sys.argv[7] == "nocb"
p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": linger, "batch.size": 1048576,
              "queue.buffering.max.messages": 1000000, "queue.buffering.max.kbytes": 1048576,
              "max.in.flight.requests.per.connection": 5, "enable.idempotence": False, "compression.type": "none"})
value = bytes(size)
lat = []
def cb(err, msg):
    if err: raise SystemExit(f"delivery failed: {err}")
    lat.append(msg.latency())
start = time.perf_counter()
for i in range(n):
    while True:
        try:
            (p.produce(topic, value) if nocb else p.produce(topic, value, on_delivery=cb)); break
        except BufferError:
            p.poll(0.001)
    if i % 1000 == 0: p.poll(0)
p.flush()
el = time.perf_counter() - start
if nocb:
    print(f"librdkafka (no callbacks): {n} records in {el:.2f} s: {n/el:,.0f} records/s, {n*size/el/1048576:.1f} MiB/s"); sys.exit(0)
lat.sort()
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
print(f"librdkafka: {n} records in {el:.2f} s: {n/el:,.0f} records/s, {n*size/el/1048576:.1f} MiB/s; "
      f"ack latency p50 {pct(.5):.2f} ms p99 {pct(.99):.2f} ms max {lat[-1]*1000:.2f} ms")
