"""Consumer groups with Go sarama (Debian's golang-github-shopify-sarama-dev, built offline in GOPATH mode):
ConsumerGroup with the Range and RoundRobin strategies, commits and resume.

The Go program is Tests/IntegrationTests/go/sarama_group/main.go; it is compiled once per session.
Missing Go or sarama skips locally and fails in CI (tools/install-deps.sh installs both).
"""

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

import petrel_helpers as h
from conftest import IN_CI

HERE = Path(__file__).resolve().parent
SRC = HERE / "go" / "sarama_group" / "main.go"
GOCODE = Path("/usr/share/gocode/src")
IMPORTS = {"github.com/Shopify/sarama": GOCODE / "github.com/Shopify/sarama",
           "github.com/IBM/sarama": GOCODE / "github.com/IBM/sarama"}


def _unavailable(msg):
    if IN_CI:
        pytest.fail(msg + " (CI=true: tools/install-deps.sh must install golang-go and "
                    "golang-github-shopify-sarama-dev)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def sarama_bin(tmp_path_factory):
    go = shutil.which("go")
    if not go:
        _unavailable("Go toolchain missing (Debian package golang-go)")
    found = [imp for imp, d in IMPORTS.items() if (d / "consumer_group.go").is_file()]
    if not found:
        _unavailable("sarama source missing under /usr/share/gocode/src (Debian package "
                     "golang-github-shopify-sarama-dev)")
    root = tmp_path_factory.mktemp("sarama-go")
    pkg = root / "src" / "sarama_group"
    pkg.mkdir(parents=True)
    (pkg / "main.go").write_text(SRC.read_text().replace('"github.com/Shopify/sarama"', f'"{found[0]}"'))
    env = dict(os.environ, GO111MODULE="off", GOPATH=f"{GOCODE.parent}:{root}", GOFLAGS="", GOPROXY="off",
               GOTOOLCHAIN="local", CGO_ENABLED=os.environ.get("CGO_ENABLED", "1"))
    if not env.get("GOCACHE") and not env.get("HOME"):
        env["GOCACHE"] = str(root / "cache")
    out = root / "sarama_group"
    r = subprocess.run([go, "build", "-o", str(out), "."], cwd=pkg, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and out.is_file(), f"go build failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return str(out)


@pytest.fixture(scope="module")
def fb(tmp_path_factory):
    b = h.start_broker(tmp_path_factory, {"group.initial.rebalance.delay.ms": "0"}, "groups-sarama")
    yield b
    if b.running():
        b.stop()


class Member:
    """One sarama_group process; its JSON-lines stdout is collected by a thread."""

    def __init__(self, binary, bootstrap, topic, group, strategy, log_dir: Path, name: str, expect=0):
        self.name = name
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.stderr_path = log_dir / f"{name}.stderr"
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [binary, "-bootstrap", bootstrap, "-topic", topic, "-group", group, "-strategy", strategy,
             "-expect", str(expect), "-timeout", "60s", "-v"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            try:
                ev = json.loads(raw)
            except ValueError:
                ev = {"event": "garbage", "line": raw.decode("utf-8", "replace")}
            with self.lock:
                self.events.append(ev)

    def of(self, kind):
        with self.lock:
            return [e for e in self.events if e["event"] == kind]

    def last_setup(self):
        s = self.of("setup")
        return s[-1] if s else None

    def msgs(self):
        return self.of("msg")

    def stop(self, timeout=30, close_stdin=True):
        """Close stdin (the program commits, leaves the group and exits) and wait; returns the exit code.
        With close_stdin=False, only wait (for a member started with expect > 0)."""
        if close_stdin and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.name} did not exit within {timeout}s; {self.diag()}")
        self.reader.join(5)
        self.stderr.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if not self.stderr.closed:
            self.stderr.close()

    def diag(self):
        with self.lock:
            evs = [e for e in self.events if e["event"] != "msg"][-10:]
        try:
            err = self.stderr_path.read_text()[-3000:]
        except OSError:
            err = ""
        return f"{self.name} events: {evs}\n{self.name} stderr tail:\n{err}"


def _wait(cond, timeout, what, members, broker):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        dead = [m for m in members if m.proc.poll() is not None]
        if dead:
            raise AssertionError(f"{dead[0].name} exited with {dead[0].proc.returncode} while waiting for {what}\n"
                                 + "\n".join(m.diag() for m in members)
                                 + "\nbroker log tail:\n" + broker.output()[-3000:])
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s\n" + "\n".join(m.diag() for m in members)
                         + "\nbroker log tail:\n" + broker.output()[-3000:])


EXPECTED_SPLIT = {"range": [{0, 1}, {2, 3}], "roundrobin": [{0, 2}, {1, 3}]}


@pytest.mark.parametrize("strategy", ["range", "roundrobin"])
def test_sarama_consumer_group(sarama_bin, fb, topic_name, tmp_path, strategy):
    bootstrap = fb.bootstrap
    h.create_topic(bootstrap, topic_name, partitions=4)
    group = f"sarama-{strategy}-{uuid.uuid4().hex[:8]}"
    members: list[Member] = []
    try:
        m1 = Member(sarama_bin, bootstrap, topic_name, group, strategy, tmp_path, "m1")
        members.append(m1)
        _wait(lambda: (m1.last_setup() or {}).get("claims") == [0, 1, 2, 3], 30,
              "first member owning all 4 partitions", members, fb)
        m2 = Member(sarama_bin, bootstrap, topic_name, group, strategy, tmp_path, "m2")
        members.append(m2)

        def settled():
            s1, s2 = m1.last_setup(), m2.last_setup()
            return (s1 is not None and s2 is not None and s1["generation"] == s2["generation"]
                    and sorted(s1["claims"] + s2["claims"]) == [0, 1, 2, 3] and s1["claims"] and s2["claims"])

        _wait(settled, 40, "two-member assignment", members, fb)
        s1, s2 = m1.last_setup(), m2.last_setup()
        assert s1["generation"] > m1.of("setup")[0]["generation"]
        # The leader ran the requested client-side strategy (members sorted by member id).
        assert sorted([set(s1["claims"]), set(s2["claims"])], key=min) == EXPECTED_SPLIT[strategy]

        vals = {p: [f"sarama-{strategy}-p{p}-{i:03d}".encode() for i in range(10)] for p in range(4)}
        h.produce_values(bootstrap, topic_name, vals)
        _wait(lambda: len(m1.msgs()) + len(m2.msgs()) >= 40, 30, "40 messages consumed", members, fb)
        time.sleep(1.0)  # catch duplicates
        for m in members:
            assert m.stop() == 0, m.diag()
        for m, s in ((m1, s1), (m2, s2)):
            assert {e["partition"] for e in m.msgs()} <= set(s["claims"]), m.diag()
            assert m.msgs(), f"{m.name} owning {s['claims']} got nothing"
            assert not m.of("error"), m.diag() + "\nbroker log (connection closes):\n" + "".join(
                line for line in fb.output().splitlines(True) if "closing connection" in line)[-2000:]
        got = m1.msgs() + m2.msgs()
        assert sorted(e["value"].encode() for e in got) == sorted(v for vs in vals.values() for v in vs)
        assert sorted((e["partition"], e["offset"]) for e in got) == [(p, o) for p in range(4) for o in range(10)]

        # Both members committed on close; a new member resumes there.
        assert h.committed_offsets(bootstrap, group, topic_name, 4) == {p: 10 for p in range(4)}
        h.produce_values(bootstrap, topic_name, {p: [f"late-{p}".encode()] for p in range(4)})
        m3 = Member(sarama_bin, bootstrap, topic_name, group, strategy, tmp_path, "m3", expect=4)
        members.append(m3)
        rc = m3.stop(timeout=60, close_stdin=False)
        assert rc == 0, m3.diag()
        assert sorted((e["partition"], e["offset"], e["value"]) for e in m3.msgs()) == \
            [(p, 10, f"late-{p}") for p in range(4)], m3.diag()
        assert h.committed_offsets(bootstrap, group, topic_name, 4) == {p: 11 for p in range(4)}
    finally:
        for m in members:
            m.kill()
