"""Client quotas (KIP-13/KIP-546) with confluent-kafka: AlterClientQuotas / DescribeClientQuotas,
persisted across a restart; a producer whose client-id has a producer_byte_rate converges to it
(±10%) while an unthrottled producer on the same broker keeps its rate; a consumer is held to its
consumer_byte_rate."""

import json
import socket
import struct
import threading
import time

import pytest
from confluent_kafka import TopicPartition

import petrel_helpers as h
from conftest import is_peer, petrel_only
from test_cli import petrel

pytestmark = pytest.mark.skipif(is_peer(), reason="Petrel's quota store")

KIB = 1024


# Neither confluent-kafka 2.16 nor kafka-python has the client-quota admin APIs: v0 frames by hand.
def _str(text):
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _call(bootstrap, api_key, body):
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as s:
        frame = struct.pack(">hhi", api_key, 0, 1) + _str("quota-admin") + body
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        data = s.recv(size, socket.MSG_WAITALL)
    assert struct.unpack(">i", data[:4])[0] == 1
    return data[4:]


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value[0]

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        text = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return text


def _alter_raw(bootstrap, entries, validate_only=False):
    """entries: [({"client-id": name or None, ...}, {key: value or None (remove)})] -> [(error_code, message)]"""
    body = struct.pack(">i", len(entries))
    for entity, ops in entries:
        body += struct.pack(">i", len(entity))
        for etype, name in entity.items():
            body += _str(etype) + _str(name)
        body += struct.pack(">i", len(ops))
        for key, value in ops.items():
            body += _str(key) + struct.pack(">d?", value or 0.0, value is None)
    body += struct.pack(">?", validate_only)
    r = _Reader(_call(bootstrap, 49, body))
    r.take(">i")
    out = []
    for _ in range(r.take(">i")):
        code, message = r.take(">h"), r.string()
        for _ in range(r.take(">i")):
            r.string(), r.string()
        out.append((code, message))
    return out


def _alter(bootstrap, client_id, **quotas):
    assert _alter_raw(bootstrap, [({"client-id": client_id}, quotas)]) == [(0, None)]


def _describe(bootstrap, components=(("client-id", 2, None),), strict=False):
    body = struct.pack(">i", len(components))
    for etype, match_type, match in components:
        body += _str(etype) + struct.pack(">b", match_type) + _str(match)
    body += struct.pack(">?", strict)
    r = _Reader(_call(bootstrap, 48, body))
    r.take(">i")
    code, message = r.take(">h"), r.string()
    assert code == 0, (code, message)
    got = {}
    for _ in range(r.take(">i")):
        entity = tuple((r.string(), r.string()) for _ in range(r.take(">i")))
        values = {}
        for _ in range(r.take(">i")):
            key = r.string()
            values[key] = r.take(">d")
        got[entity] = values
    return got


def _produce_for(bs, topic, client_id, seconds, out: dict, offered=None):
    """1 KiB records for `seconds`, as fast as the broker takes them or paced at `offered` bytes/s."""
    p = h.producer(bs, client_id=client_id, linger_ms=5, batch_size=16 * KIB, acks="1")
    value = b"q" * KIB
    delivered = []

    def cb(err, msg):
        if err is None:
            delivered.append(time.monotonic())

    begin = time.monotonic()
    end = begin + seconds
    sent = 0
    while (now := time.monotonic()) < end:
        if offered is not None and sent * KIB > (now - begin) * offered:
            p.poll(0.001)
            continue
        try:
            p.produce(topic, value=value, on_delivery=cb)
            sent += 1
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    p.flush(30)
    out[client_id] = delivered


def test_alter_describe_and_persist(broker_factory):
    b = broker_factory()
    bs = b.bootstrap
    _alter(bs, "svc-a", producer_byte_rate=1048576.0, consumer_byte_rate=2097152.0)
    _alter(bs, None, producer_byte_rate=4194304.0)  # the default client-id
    _alter_raw(bs, [({"user": "alice", "client-id": "svc-a"}, {"request_percentage": 50.0})])
    got = _describe(bs)
    assert got[(("client-id", "svc-a"),)] == {"producer_byte_rate": 1048576.0, "consumer_byte_rate": 2097152.0}
    assert got[(("client-id", None),)] == {"producer_byte_rate": 4194304.0}
    assert got[(("user", "alice"), ("client-id", "svc-a"))] == {"request_percentage": 50.0}
    # strict: only entities made of exactly the filtered types; match type 1: the default entity.
    assert set(_describe(bs, strict=True)) == {(("client-id", "svc-a"),), (("client-id", None),)}
    assert set(_describe(bs, components=(("client-id", 1, None),))) == {(("client-id", None),)}
    assert set(_describe(bs, components=(("client-id", 0, "svc-a"),), strict=True)) == {(("client-id", "svc-a"),)}
    # Refusals: unknown key, non-positive value, unknown entity type (INVALID_REQUEST = 42).
    assert _alter_raw(bs, [({"client-id": "x"}, {"bogus_rate": 1.0})])[0][0] == 42
    assert _alter_raw(bs, [({"client-id": "x"}, {"producer_byte_rate": -5.0})])[0][0] == 42
    assert _alter_raw(bs, [({"ip": "1.2.3.4"}, {"producer_byte_rate": 5.0})])[0][0] == 42
    # validate_only changes nothing.
    assert _alter_raw(bs, [({"client-id": "y"}, {"producer_byte_rate": 5.0})], validate_only=True) == [(0, None)]
    assert (("client-id", "y"),) not in _describe(bs)
    b.restart()
    bs = b.bootstrap
    assert _describe(bs) == got
    # Removing a value; removing the last one removes the entity.
    _alter(bs, "svc-a", consumer_byte_rate=None)
    assert _describe(bs)[(("client-id", "svc-a"),)] == {"producer_byte_rate": 1048576.0}
    _alter(bs, "svc-a", producer_byte_rate=None)
    assert (("client-id", "svc-a"),) not in _describe(bs)


def test_throttled_producer_converges_while_another_keeps_its_rate(broker_factory, topic_name):
    # 3 one-second samples: Kafka's rate lets a client burst quota x (samples - 1) after a pause and
    # then throttles it to pay back, so the throttled rate is a sawtooth with the window's period;
    # it is measured over whole periods after the first.
    b = broker_factory({"quota.window.num": "3", "quota.window.size.seconds": "1"})
    bs = b.bootstrap
    h.create_topic(bs, topic_name, partitions=2)
    quota = 256 * KIB
    _alter(bs, "slow", producer_byte_rate=float(quota))
    out: dict = {}
    seconds = 22
    # Both offer 8x the quota (the unthrottled one paced there, so the test writes ~50 MB, not GBs):
    # the throttled one converges to the quota, the other gets what it offers.
    offered = 8 * quota
    threads = [
        threading.Thread(target=_produce_for, args=(bs, topic_name, "slow", seconds, out)),
        threading.Thread(target=_produce_for, args=(bs, topic_name, "fast", seconds, out, offered)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    start = min(min(out["slow"]), min(out["fast"]))

    def rate(times, lo, hi):
        n = sum(1 for t in times if start + lo <= t < start + hi)
        return n * KIB / (hi - lo)

    slow = rate(out["slow"], 3, 21)  # six 3-second periods after the first
    fast = rate(out["fast"], 3, 21)
    print(f"slow {slow / KIB:.0f} KiB/s (quota {quota / KIB:.0f}), fast {fast / KIB:.0f} KiB/s")
    assert abs(slow - quota) <= 0.10 * quota, f"throttled producer at {slow / KIB:.0f} KiB/s, quota {quota / KIB:.0f}"
    assert fast >= 0.9 * offered, f"unthrottled producer only {fast / KIB:.0f} KiB/s of {offered / KIB:.0f} offered"


def test_consumer_byte_rate(broker_factory, topic_name):
    b = broker_factory({"quota.window.num": "3", "quota.window.size.seconds": "1"})
    bs = b.bootstrap
    h.create_topic(bs, topic_name)
    h.produce_all(h.producer(bs, linger_ms=20), topic_name, [{"value": b"c" * KIB} for _ in range(6000)])
    quota = 512 * KIB
    _alter(bs, "reader", consumer_byte_rate=float(quota))
    c = h.consumer(bs, client_id="reader", max_partition_fetch_bytes=64 * KIB)
    c.assign([TopicPartition(topic_name, 0, 0)])
    got = 0
    t0 = time.monotonic()
    while got < 6000 and time.monotonic() - t0 < 60:
        got += sum(1 for m in c.consume(num_messages=1000, timeout=0.2) if not m.error())
    elapsed = time.monotonic() - t0
    c.close()
    assert got == 6000
    rate = got * KIB / elapsed
    print(f"consumer {rate / KIB:.0f} KiB/s, quota {quota / KIB:.0f}")
    # 6 MiB at 512 KiB/s: the first windows are generous (Kafka's rule), then it is held near the quota.
    assert 0.4 * quota < rate < 1.5 * quota, rate


def _metadata_loop(bootstrap, client_id, seconds, out):
    """Metadata v4 requests (all topics) one after the other on one connection; out[client_id] =
    (count, the largest throttle_time_ms a response reported)."""
    host, port = bootstrap.rsplit(":", 1)
    frame = struct.pack(">hhi", 3, 4, 7) + _str(client_id) + struct.pack(">ib", -1, 0)
    request = struct.pack(">i", len(frame)) + frame
    n = 0
    throttled = 0
    with socket.create_connection((host, int(port)), timeout=15) as s:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            s.sendall(request)
            size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
            body = s.recv(size, socket.MSG_WAITALL)
            correlation, throttle_ms = struct.unpack(">ii", body[:8])
            assert correlation == 7
            throttled = max(throttled, throttle_ms)
            n += 1
    out[client_id] = (n, throttled)


def test_request_percentage_limits_handling_time(broker_factory, topic_name):
    # KIP-124: request_percentage is the time spent handling the client's requests as a share of one
    # thread. 0.2% is 2 ms of handling per second: a client sending Metadata back to back is held far
    # below what the same loop gets without a quota, and told so in throttle_time_ms.
    b = broker_factory({"quota.window.num": "3", "quota.window.size.seconds": "1"})
    bs = b.bootstrap
    for i in range(20):
        h.create_topic(bs, f"{topic_name}-{i}", partitions=4)
    _alter(bs, "busy", request_percentage=0.2)
    out: dict = {}
    threads = [threading.Thread(target=_metadata_loop, args=(bs, c, 8, out)) for c in ("busy", "free")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    (busy, busy_throttle), (free, free_throttle) = out["busy"], out["free"]
    print(f"metadata requests in 8 s: busy {busy} (throttle_time_ms up to {busy_throttle}), free {free}")
    assert busy > 0
    assert busy * 4 < free, out
    # KIP-219: the throttle is reported in the responses, not only applied by muting.
    assert busy_throttle > 0, out
    assert free_throttle == 0, out


def test_user_quota_throttles_the_authenticated_user_only(tmp_path_factory, topic_name):
    """A producer_byte_rate for `user=alice` holds alice (SASL PLAIN) near her quota, while bob, same
    client-id on the same broker, is not throttled: quotas are charged to the authenticated user."""
    from test_security_sasl_tls import SecureBroker

    root = tmp_path_factory.mktemp("user-quota")
    (root / "data").mkdir()
    users = root / "users.properties"
    users.write_text("alice=alice-pw\nbob=bob-pw\n")
    b = SecureBroker(root / "data", root / "logs", {
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN", "petrel.sasl.plain.users.file": str(users),
        "quota.window.num": "3", "quota.window.size.seconds": "1"}).start()
    try:
        ports = b.ports()
        plain = f"127.0.0.1:{ports['PLAINTEXT']}"
        h.create_topic(plain, topic_name, partitions=2)
        quota = 256 * KIB
        assert _alter_raw(plain, [({"user": "alice"}, {"producer_byte_rate": float(quota)})]) == [(0, None)]
        rates = {}

        def run(user):
            p = h.producer(f"127.0.0.1:{ports['SASL_PLAINTEXT']}", client_id="shared-app", linger_ms=5,
                           batch_size=16 * KIB, acks="1", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                           sasl_username=user, sasl_password=f"{user}-pw")
            delivered = []
            end = time.monotonic() + 12
            while time.monotonic() < end:
                try:
                    p.produce(topic_name, value=b"u" * KIB,
                              on_delivery=lambda err, msg: err is None and delivered.append(time.monotonic()))
                except BufferError:
                    p.poll(0.01)
                p.poll(0)
            p.flush(30)
            t0 = min(delivered)
            rates[user] = sum(1 for t in delivered if t0 + 3 <= t < t0 + 12) * KIB / 9

        threads = [threading.Thread(target=run, args=(u,)) for u in ("alice", "bob")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        print({u: f"{r / KIB:.0f} KiB/s" for u, r in rates.items()})
        assert rates["alice"] <= 1.5 * quota, f"alice at {rates['alice'] / KIB:.0f} KiB/s, quota {quota / KIB:.0f}"
        assert rates["bob"] > 4 * quota, f"bob only {rates['bob'] / KIB:.0f} KiB/s"
    finally:
        b.stop()


@petrel_only("the petrel quotas CLI")
def test_cli_alters_and_describes_quotas(broker_factory):
    # `petrel quotas` speaks AlterClientQuotas / DescribeClientQuotas like kafka-configs does.
    b = broker_factory()
    bs = b.bootstrap
    petrel("quotas", "alter", "--bootstrap", bs, "--client-id", "etl", "--add-config",
           "consumer_byte_rate=1048576,producer_byte_rate=2e6")
    petrel("quotas", "alter", "--bootstrap", bs, "--default-user", "--add-config", "request_percentage=50")
    assert _describe(bs)[(("client-id", "etl"),)] == {"consumer_byte_rate": 1048576.0, "producer_byte_rate": 2e6}
    rows = json.loads(petrel("quotas", "describe", "--bootstrap", bs, "--json").stdout)
    assert {"entity": [{"type": "user", "name": None}], "values": {"request_percentage": 50}} in rows
    assert {"entity": [{"type": "client-id", "name": "etl"}],
            "values": {"consumer_byte_rate": 1048576, "producer_byte_rate": 2000000}} in rows
    # A filter: only the etl client-id entity.
    only = json.loads(petrel("quotas", "describe", "--bootstrap", bs, "--client-id", "etl", "--strict", "--json").stdout)
    assert [r["entity"] for r in only] == [[{"type": "client-id", "name": "etl"}]]
    petrel("quotas", "alter", "--bootstrap", bs, "--client-id", "etl", "--delete-config", "producer_byte_rate")
    assert _describe(bs)[(("client-id", "etl"),)] == {"consumer_byte_rate": 1048576.0}
    # Kafka's refusals come back as a clear error and a non-zero exit.
    bad = petrel("quotas", "alter", "--bootstrap", bs, "--client-id", "etl", "--add-config", "bogus_rate=1", check=False)
    assert bad.returncode != 0 and b"INVALID_REQUEST" in bad.stderr, bad.stderr
    assert petrel("quotas", "alter", "--bootstrap", bs, "--add-config", "a=1", check=False).returncode != 0

