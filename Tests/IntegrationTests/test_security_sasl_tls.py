"""Listeners, TLS, mTLS and SASL (PLAIN, SCRAM-SHA-256/512) against real clients.

One broker with four listeners (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) and certificates made by
tools/make-test-certs.sh in a temporary directory; a second one for mutual TLS. SCRAM users are
created offline with `petrel users add-scram --data-dir` (the first admin) and online with
AlterUserScramCredentials (confluent-kafka's AdminClient).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

import conftest
import petrel_helpers as h

ROOT = Path(__file__).resolve().parents[2]
LISTENER_RE = re.compile(r"petrel listener (\S+) \((\S+)\) bound to (\S+):(\d+)")

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


class SecureBroker(conftest.BrokerProcess):
    """A broker started with `--set listeners=...` (no --listen), reporting each listener's port."""

    def _command(self, port: int) -> list[str]:
        cmd = [conftest.petrel_bin(), "serve", "--data-dir", str(self.data_dir)]
        for k, v in self.sets.items():
            cmd += ["--set", f"{k}={v}"]
        return cmd

    def ports(self) -> dict[str, int]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = {m.group(1): int(m.group(4)) for m in LISTENER_RE.finditer(self.output())}
            if len(found) >= len([x for x in self.sets["listeners"].split(",") if x]):
                return found
            time.sleep(0.05)
        raise AssertionError("listener lines missing:\n" + self.output()[-3000:])


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    subprocess.run([str(ROOT / "tools/make-test-certs.sh"), str(d)], check=True, capture_output=True)
    return d


def petrel(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([conftest.petrel_bin(), *args], capture_output=True, text=True, input=input, timeout=60)


@pytest.fixture(scope="module")
def secure(tmp_path_factory, certs):
    if conftest.is_peer():
        pytest.skip("Petrel only")
    root = tmp_path_factory.mktemp("secure-broker")
    data = root / "data"
    data.mkdir()
    users = root / "plain-users.properties"
    users.write_text("# PLAIN users\nalice=alice-secret\nadmin=admin-secret\n")
    # The first SCRAM users, before the broker runs (like kafka-storage format --add-scram).
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        r = petrel("users", "add-scram", "--data-dir", str(data), "scram-user", "--mechanism", mech, "--password", "scram-secret")
        assert r.returncode == 0, r.stderr
    sets = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "broker-keystore.pem"),
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "petrel.sasl.plain.users.file": str(users),
    }
    b = SecureBroker(data, root / "logs", sets).start()
    yield b
    b.stop()


def conf(secure, protocol: str, certs: Path, mechanism: str | None = None, user: str = "", password: str = "") -> dict:
    c = {"bootstrap.servers": f"127.0.0.1:{secure.ports()[protocol]}", "security.protocol": protocol}
    if "SSL" in protocol:
        c["ssl.ca.location"] = str(certs / "ca.pem")
    if mechanism:
        c.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
    return c


def roundtrip(c: dict, n: int = 50) -> None:
    """Create a topic, produce n records, consume them back, all through the listener in `c`."""
    topic = "sec-" + uuid.uuid4().hex[:8]
    a = AdminClient(dict(c))
    from confluent_kafka.admin import NewTopic
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    p = h.Producer({**c, "linger.ms": 5})
    h.produce_all(p, topic, [{"value": f"v{i}".encode() * 100} for i in range(n)])
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    cons = Consumer({**c, "group.id": "sec-it", "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        cons.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = h.poll_n(cons, n, timeout=30)
    finally:
        cons.close()
    assert [m.value() for m in got] == [f"v{i}".encode() * 100 for i in range(n)]


def test_metadata_advertises_the_listener_connected_to(secure, certs):
    ports = secure.ports()
    assert set(ports) == {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}
    for protocol, mech, user, pw in [("PLAINTEXT", None, "", ""), ("SSL", None, "", ""),
                                     ("SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret"),
                                     ("SASL_SSL", "SCRAM-SHA-512", "scram-user", "scram-secret")]:
        md = AdminClient(conf(secure, protocol, certs, mech, user, pw)).list_topics(timeout=15)
        assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", ports[protocol])], protocol


@pytest.mark.parametrize("protocol,mechanism,user,password", [
    ("SSL", None, "", ""),
    ("SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256", "scram-user", "scram-secret"),
    ("SASL_SSL", "PLAIN", "alice", "alice-secret"),
    ("SASL_SSL", "SCRAM-SHA-256", "scram-user", "scram-secret"),
    ("SASL_SSL", "SCRAM-SHA-512", "scram-user", "scram-secret"),
])
def test_confluent_kafka_produce_consume(secure, certs, protocol, mechanism, user, password):
    roundtrip(conf(secure, protocol, certs, mechanism, user, password))


@pytest.mark.parametrize("mechanism,user,password", [
    ("PLAIN", "alice", "nope"), ("SCRAM-SHA-256", "scram-user", "nope"), ("SCRAM-SHA-512", "nobody", "x")])
def test_wrong_password_is_refused(secure, certs, mechanism, user, password):
    errors = []
    a = AdminClient({**conf(secure, "SASL_SSL", certs, mechanism, user, password),
                     "error_cb": errors.append, "reconnect.backoff.ms": 1000})
    with pytest.raises(KafkaException):
        a.list_topics(timeout=3)
    a.poll(0.5)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert any("Authentication failed" in e.str() for e in errors), errors


def test_scram_users_via_admin_api_survive_restart(secure, certs):
    admin_conf = conf(secure, "SASL_SSL", certs, "PLAIN", "admin", "admin-secret")
    a = AdminClient(admin_conf)
    futures = a.alter_user_scram_credentials([
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"carol-pw"),
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"carol-pw")])
    for f in futures.values():
        f.result(15)
    described = a.describe_user_scram_credentials(["carol"])["carol"].result(15)
    assert sorted((i.mechanism, i.iterations) for i in described.scram_credential_infos) == [
        (ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 4096)]
    text = (secure.data_dir / "scram-credentials.properties").read_text()
    assert "carol" in text and "carol-pw" not in text
    roundtrip(conf(secure, "SASL_SSL", certs, "SCRAM-SHA-256", "carol", "carol-pw"), n=5)
    secure.restart()
    roundtrip(conf(secure, "SASL_PLAINTEXT", certs, "SCRAM-SHA-512", "carol", "carol-pw"), n=5)
    r = petrel("users", "list", "--bootstrap", f"127.0.0.1:{secure.ports()['PLAINTEXT']}")
    assert r.returncode == 0, r.stderr
    assert "carol\tSCRAM-SHA-256(iterations=8192),SCRAM-SHA-512(iterations=4096)" in r.stdout
    assert "scram-user\t" in r.stdout


def test_kafka_python_scram_sha_512_over_sasl_ssl(secure, certs):
    kafka = pytest.importorskip("kafka")
    topic = "kp-" + uuid.uuid4().hex[:8]
    common = dict(bootstrap_servers=f"127.0.0.1:{secure.ports()['SASL_SSL']}", security_protocol="SASL_SSL",
                  ssl_cafile=str(certs / "ca.pem"), sasl_mechanism="SCRAM-SHA-512",
                  sasl_plain_username="scram-user", sasl_plain_password="scram-secret")
    p = kafka.KafkaProducer(**common)
    for i in range(10):
        p.send(topic, f"m{i}".encode()).get(timeout=30)
    p.close()
    c = kafka.KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000, **common)
    got = [m.value for m in c]
    c.close()
    assert got == [f"m{i}".encode() for i in range(10)]


def test_kcat_over_ssl_and_sasl_plaintext(secure, certs):
    if shutil.which("kcat") is None:
        pytest.skip("kcat not installed")
    topic = "kc-" + uuid.uuid4().hex[:8]
    ssl_args = ["-b", f"127.0.0.1:{secure.ports()['SSL']}", "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={certs / 'ca.pem'}"]
    r = subprocess.run(["kcat", *ssl_args, "-P", "-t", topic], input="a\nb\nc\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    sasl_args = ["-b", f"127.0.0.1:{secure.ports()['SASL_PLAINTEXT']}", "-X", "security.protocol=SASL_PLAINTEXT",
                 "-X", "sasl.mechanism=SCRAM-SHA-256", "-X", "sasl.username=scram-user", "-X", "sasl.password=scram-secret"]
    r = subprocess.run(["kcat", *sasl_args, "-C", "-t", topic, "-o", "beginning", "-c", "3", "-e"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["a", "b", "c"]


# ---- hand-built frames ----

def frame(api_key: int, version: int, corr: int, body: bytes, flexible: bool = False) -> bytes:
    client = b"raw"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client + (b"\x00" if flexible else b"")
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(s: socket.socket) -> bytes:
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf
    (size,) = struct.unpack(">i", exact(4))
    return exact(size)


def closed(s: socket.socket, timeout: float = 5.0) -> bool:
    """True once the peer closes (bytes before the close, such as a TLS alert, are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if s.recv(4096) == b"":
                return True
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False
    return False


def test_wrong_password_gets_sasl_authentication_failed_then_close(secure):
    with socket.create_connection(("127.0.0.1", secure.ports()["SASL_PLAINTEXT"]), timeout=10) as s:
        s.sendall(frame(17, 1, 1, struct.pack(">h", 5) + b"PLAIN"))
        resp = read_frame(s)
        assert struct.unpack(">ih", resp[:6]) == (1, 0)
        token = b"\0alice\0wrong"
        s.sendall(frame(36, 1, 2, struct.pack(">i", len(token)) + token))
        resp = read_frame(s)
        corr, code = struct.unpack(">ih", resp[:6])
        assert (corr, code) == (2, 58)  # SASL_AUTHENTICATION_FAILED
        # Nothing else is served: a Metadata request gets no answer, the connection is closed.
        try:
            s.sendall(frame(3, 1, 3, struct.pack(">i", -1)))
        except OSError:
            pass
        assert closed(s)


def test_requests_before_authentication_close_the_connection(secure):
    with socket.create_connection(("127.0.0.1", secure.ports()["SASL_PLAINTEXT"]), timeout=10) as s:
        s.sendall(frame(3, 1, 1, struct.pack(">i", -1)))  # Metadata v1, all topics
        assert closed(s)


def test_legacy_unframed_sasl_plain_handshake_v0(secure):
    """What old sarama does: SaslHandshake v0, then the raw PLAIN token, no SaslAuthenticate."""
    with socket.create_connection(("127.0.0.1", secure.ports()["SASL_PLAINTEXT"]), timeout=10) as s:
        s.sendall(frame(17, 0, 1, struct.pack(">h", 5) + b"PLAIN"))
        assert struct.unpack(">ih", read_frame(s)[:6]) == (1, 0)
        token = b"\0alice\0alice-secret"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert read_frame(s) == b""  # the empty server token
        s.sendall(frame(3, 1, 2, struct.pack(">i", -1)))
        resp = read_frame(s)
        assert struct.unpack(">i", resp[:4]) == (2,)


def test_plaintext_to_tls_port_and_tls_to_plaintext_port_are_closed(secure):
    ports = secure.ports()
    with socket.create_connection(("127.0.0.1", ports["SSL"]), timeout=10) as s:
        s.sendall(frame(18, 0, 1, b""))  # ApiVersions in the clear
        assert closed(s)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", ports["PLAINTEXT"]), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with ctx.wrap_socket(raw) as s:
                s.sendall(frame(18, 0, 1, b""))
                read_frame(s)
    # The broker still serves.
    assert AdminClient({"bootstrap.servers": f"127.0.0.1:{ports['PLAINTEXT']}"}).list_topics(timeout=10).brokers


def test_failed_logins_do_not_stop_good_ones(secure, certs):
    port = secure.ports()["SASL_PLAINTEXT"]
    start = time.monotonic()
    for i in range(200):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(frame(17, 1, 1, struct.pack(">h", 5) + b"PLAIN"))
            read_frame(s)
            token = b"\0alice\0bad" + str(i).encode()
            s.sendall(frame(36, 1, 2, struct.pack(">i", len(token)) + token))
            assert struct.unpack(">ih", read_frame(s)[:6]) == (2, 58)
    assert time.monotonic() - start < 30
    roundtrip(conf(secure, "SASL_PLAINTEXT", certs, "PLAIN", "alice", "alice-secret"), n=5)


# ---- mutual TLS ----

@pytest.fixture(scope="module")
def mtls(tmp_path_factory, certs):
    if conftest.is_peer():
        pytest.skip("Petrel only")
    root = tmp_path_factory.mktemp("mtls-broker")
    sets = {
        "listeners": "SSL://127.0.0.1:0",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.certificate.chain": (certs / "broker.pem").read_text().replace("\n", "\\n"),
        "ssl.keystore.key": (certs / "broker.key").read_text().replace("\n", "\\n"),
        "ssl.truststore.location": str(certs / "ca.pem"),
        "ssl.client.auth": "required",
    }
    b = SecureBroker(root / "data", root / "logs", sets).start()
    yield b
    b.stop()


def test_mtls_requires_a_client_certificate(mtls, certs):
    base = {"bootstrap.servers": f"127.0.0.1:{mtls.ports()['SSL']}", "security.protocol": "SSL",
            "ssl.ca.location": str(certs / "ca.pem")}
    with pytest.raises(KafkaException):
        AdminClient(dict(base)).list_topics(timeout=5)
    with_cert = {**base, "ssl.certificate.location": str(certs / "client.pem"), "ssl.key.location": str(certs / "client.key")}
    roundtrip(with_cert, n=10)


# ---- Go sarama 1.22 (Debian) with Net.SASL PLAIN ----

def build_sarama_sasl(root: Path, tags: str = "") -> str:
    go = shutil.which("go")
    gocode = Path("/usr/share/gocode/src")
    pkg = root / "src" / "sarama_sasl"
    pkg.mkdir(parents=True)
    for f in (Path(__file__).resolve().parent / "go/sarama_sasl").glob("*.go"):
        (pkg / f.name).write_text(f.read_text())
    import os
    env = dict(os.environ, GO111MODULE="off", GOPATH=f"{gocode.parent}:{root}", GOFLAGS="", GOPROXY="off", GOTOOLCHAIN="local")
    if not env.get("GOCACHE") and not env.get("HOME"):
        env["GOCACHE"] = str(root / "cache")
    out = root / "sarama_sasl"
    r = subprocess.run([go, "build", *(["-tags", tags] if tags else []), "-o", str(out), "."], cwd=pkg, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"go build failed:\n{r.stdout}\n{r.stderr}"
    return str(out)


def need_go_packages(*paths: str) -> None:
    gocode = Path("/usr/share/gocode/src")
    missing = [p for p in paths if not (gocode / p).exists()]
    if not shutil.which("go") or missing:
        msg = f"Go toolchain or Debian Go sources missing ({', '.join(missing) or 'go'})"
        if conftest.IN_CI:
            pytest.fail(msg + " (tools/install-deps.sh installs golang-go, golang-github-shopify-sarama-dev, golang-github-xdg-go-scram-dev)")
        pytest.skip(msg)


@pytest.fixture(scope="module")
def sarama_sasl_bin(tmp_path_factory):
    need_go_packages("github.com/Shopify/sarama/broker.go")
    return build_sarama_sasl(tmp_path_factory.mktemp("sarama-sasl"))


@pytest.fixture(scope="module")
def sarama_scram_bin(tmp_path_factory):
    """sarama 1.22 leaves SCRAM to the application: Debian's xdg-go/scram (golang-github-xdg-go-scram-dev)."""
    need_go_packages("github.com/Shopify/sarama/broker.go", "github.com/xdg-go/scram/client.go")
    return build_sarama_sasl(tmp_path_factory.mktemp("sarama-scram"), tags="scram")


@pytest.mark.parametrize("protocol,version", [
    ("SASL_PLAINTEXT", ""),        # sarama's default: SaslHandshake v0 + unframed token
    ("SASL_SSL", ""),
    ("SASL_PLAINTEXT", "1.0.0"),   # SaslHandshake v1 + SaslAuthenticate
])
def test_sarama_net_sasl_plain(secure, certs, sarama_sasl_bin, protocol, version):
    topic = "sarama-" + uuid.uuid4().hex[:8]
    h.create_topic(f"127.0.0.1:{secure.ports()['PLAINTEXT']}", topic)
    args = [sarama_sasl_bin, "-bootstrap", f"127.0.0.1:{secure.ports()[protocol]}", "-topic", topic,
            "-user", "alice", "-password", "alice-secret", "-n", "10"]
    if version:
        args += ["-version", version]
    if protocol == "SASL_SSL":
        args += ["-ca", str(certs / "ca.pem")]
    r = subprocess.run(args, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    assert '{"done":10}' in r.stdout
    bad = subprocess.run([*args[:5], "-user", "alice", "-password", "wrong", *args[9:]], capture_output=True, text=True, timeout=90)
    assert bad.returncode != 0


def test_authorized_operations_without_authorizer_are_all(secure):
    """KIP-430: with no authorizer Kafka reports every operation as allowed."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import NewTopic
    a = AdminClient({"bootstrap.servers": f"127.0.0.1:{secure.ports()['PLAINTEXT']}"})
    topic = "ops-" + uuid.uuid4().hex[:6]
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    desc = a.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(15)
    assert {op.name for op in desc.authorized_operations} == {
        "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"}
    cluster = a.describe_cluster(include_authorized_operations=True).result(15)
    assert "IDEMPOTENT_WRITE" in {op.name for op in cluster.authorized_operations}


def test_reauthentication_kip368(tmp_path_factory, certs):
    """connections.max.reauth.ms: librdkafka re-authenticates on its open connection and keeps producing."""
    if conftest.is_peer():
        pytest.skip("Petrel only")
    root = tmp_path_factory.mktemp("reauth")
    users = root / "users.properties"
    users.write_text("alice=alice-secret\n")
    sets = {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
            "petrel.sasl.plain.users.file": str(users), "connections.max.reauth.ms": "1500"}
    b = SecureBroker(root / "data", root / "logs", sets).start()
    try:
        c = {"bootstrap.servers": f"127.0.0.1:{b.ports()['SASL_PLAINTEXT']}", "security.protocol": "SASL_PLAINTEXT",
             "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret"}
        topic = "reauth-" + uuid.uuid4().hex[:6]
        p = h.Producer({**c, "linger.ms": 0})
        delivered = []
        deadline = time.monotonic() + 6
        i = 0
        while time.monotonic() < deadline:
            p.produce(topic, f"m{i}".encode(), on_delivery=lambda err, msg: delivered.append(err))
            i += 1
            p.poll(0.05)
        assert p.flush(30) == 0
        assert len(delivered) == i and all(e is None for e in delivered), [e for e in delivered if e][:3]
        # The sessions expired several times: the broker saw SaslHandshake/SaslAuthenticate again on
        # live connections (otherwise it would have closed them as expired).
        assert "session expired" not in b.output()
    finally:
        b.stop()


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sarama_net_sasl_scram(secure, certs, sarama_scram_bin, protocol, mechanism):
    """Go sarama 1.22 (Debian) with Net.SASL SCRAM (SaslHandshake v1 + SaslAuthenticate, so -version 1.0.0)."""
    topic = "sarama-scram-" + uuid.uuid4().hex[:8]
    h.create_topic(f"127.0.0.1:{secure.ports()['PLAINTEXT']}", topic)
    args = [sarama_scram_bin, "-bootstrap", f"127.0.0.1:{secure.ports()[protocol]}", "-topic", topic, "-version", "1.0.0",
            "-mechanism", mechanism, "-n", "10"]
    if protocol == "SASL_SSL":
        args += ["-ca", str(certs / "ca.pem")]
    r = subprocess.run([*args, "-user", "scram-user", "-password", "scram-secret"], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    assert '{"done":10}' in r.stdout
    bad = subprocess.run([*args, "-user", "scram-user", "-password", "wrong"], capture_output=True, text=True, timeout=90)
    assert bad.returncode != 0
    assert "SASL Authentication failed" in bad.stderr


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_petrel_bench_over_sasl_ssl(secure, certs, tmp_path, mechanism):
    """`petrel bench` takes Kafka's client config: -X as kcat, --command-config as the Kafka perf tools."""
    user, password = ("alice", "alice-secret") if mechanism == "PLAIN" else ("scram-user", "scram-secret")
    topic = "bench-" + uuid.uuid4().hex[:8]
    boot = f"127.0.0.1:{secure.ports()['SASL_SSL']}"
    x = ["-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={certs / 'ca.pem'}", "-X", f"sasl.mechanism={mechanism}",
         "-X", f"sasl.username={user}"]
    r = petrel("bench", "produce", "--bootstrap", boot, "--topic", topic, "--count", "2000", "--json", *x, "-X", f"sasl.password={password}")
    assert r.returncode == 0, r.stderr
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert line["records"] == 2000 and line["securityProtocol"] == "SASL_SSL" and line["saslMechanism"] == mechanism
    config = tmp_path / "client.properties"
    config.write_text(f"security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location={certs / 'ca.pem'}\n"
                      f"sasl.mechanism={mechanism}\nsasl.jaas.config=x required username=\"{user}\" password=\"{password}\";\n")
    r = petrel("bench", "consume", "--bootstrap", boot, "--topic", topic, "--count", "2000", "--json", "--command-config", str(config))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["records"] == 2000
    bad = petrel("bench", "produce", "--bootstrap", boot, "--topic", topic, "--count", "10", *x, "-X", "sasl.password=wrong")
    assert bad.returncode != 0 and "authentication failed" in bad.stderr.lower()
    # The PLAINTEXT-speaking bench against the TLS port fails instead of hanging.
    plain = subprocess.run([conftest.petrel_bin(), "bench", "produce", "--bootstrap", boot, "--topic", topic, "--count", "10"],
                           capture_output=True, text=True, timeout=60)
    assert plain.returncode != 0
