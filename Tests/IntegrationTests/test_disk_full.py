"""Disk full must not take reads down.

The broker runs with its data dir on a small loop-mounted ext4 file system (64 MiB) that a filler
file brings close to full. Checks, against the real binary with confluent-kafka:

* produce until the broker answers KAFKA_STORAGE_ERROR; every acknowledged record stays fetchable
  while the disk is full (the partition is read-only, not offline);
* after the filler is deleted, produce works again without a restart (the broker's periodic space
  probe, petrel.disk.full.probe.interval.ms);
* after a restart every acknowledged record is there exactly once, in order;
* DeleteTopics on a full disk is all or nothing, now and after a restart.

Needs root (mount) and mkfs.ext4 (tools/install-deps.sh installs e2fsprogs); skips saying why
otherwise.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from conftest import petrel_only
from petrel_helpers import admin, consume_n, create_topic

pytestmark = petrel_only("mounts a file system under Petrel's data dir")

FS_BYTES = 64 << 20
VALUE_BYTES = 8 << 10
PROBE_MS = 1000


@pytest.fixture
def small_fs(tmp_path):
    """A fresh 64 MiB ext4 file system mounted at tmp_path/mnt; unmounted at teardown."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop file system needs root")
    if shutil.which("mkfs.ext4") is None or shutil.which("mount") is None:
        pytest.skip("mkfs.ext4 or mount is missing (tools/install-deps.sh installs e2fsprogs)")
    image = tmp_path / "fs.img"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(FS_BYTES)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    r = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot loop-mount a file system here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        image.unlink(missing_ok=True)


def fill(path: Path, leave_bytes: int) -> None:
    """Writes a filler file until at most `leave_bytes` are free (0: until ENOSPC)."""
    chunk = os.urandom(1 << 20)
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 64 << 10, 4 << 10, 512):
            while True:
                st = os.statvfs(path.parent)
                if leave_bytes and st.f_bavail * st.f_frsize - size < leave_bytes:
                    break
                try:
                    f.write(chunk[:size])
                except OSError as e:
                    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    break
        os.fsync(f.fileno())


def strict_producer(bootstrap: str) -> Producer:
    # No retries and a short timeout: each delivery report is the broker's answer to one request.
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False, "retries": 0,
                     "linger.ms": 0, "message.timeout.ms": 5000, "request.timeout.ms": 5000})


def produce_one(p: Producer, topic: str, value: bytes) -> KafkaError | None:
    out: list = []
    p.produce(topic, value=value, partition=0, on_delivery=lambda err, msg: out.append(err))
    p.flush(15)
    assert out, "no delivery report within 15 s"
    return out[0]


def value_of(i: int) -> bytes:
    return b"%08d|" % i + os.urandom(VALUE_BYTES)


def read_values(bootstrap: str, topic: str, n: int) -> list[bytes]:
    msgs = consume_n(bootstrap, topic, n, timeout=60, extra_wait=1.0, fetch_max_bytes=1 << 20)
    return [m.value() for m in msgs]


def test_full_disk_keeps_acked_records_readable_and_writes_resume(small_fs, broker_factory, topic_name):
    data = small_fs / "data"
    b = broker_factory(sets={"petrel.disk.full.probe.interval.ms": str(PROBE_MS)}, data_dir=data)
    create_topic(b.bootstrap, topic_name)
    filler = small_fs / "filler"
    fill(filler, leave_bytes=3 << 20)

    p = strict_producer(b.bootstrap)
    acked: list[bytes] = []
    storage_errors = 0
    other_errors: list = []
    for i in range(2000):
        v = value_of(i)
        err = produce_one(p, topic_name, v)
        if err is None:
            acked.append(v)
        elif err.code() == KafkaError.KAFKA_STORAGE_ERROR:
            storage_errors += 1
            if storage_errors >= 3:
                break
        else:
            other_errors.append(err)
    assert storage_errors >= 3, f"the disk never filled up: {len(acked)} acked, errors {other_errors[:3]}"
    assert not other_errors, f"errors other than KAFKA_STORAGE_ERROR: {other_errors[:3]}"
    assert len(acked) >= 50, f"only {len(acked)} records fit before the disk was full"

    # Read-only, not offline: every acknowledged record is fetchable, exactly once, in order.
    assert read_values(b.bootstrap, topic_name, len(acked)) == acked
    assert "partition read-only" in b.output()

    # Space back: produce resumes by itself (probe), no restart.
    filler.unlink()
    started = time.monotonic()
    resumed = None
    while time.monotonic() - started < 20:
        v = value_of(100_000)
        err = produce_one(p, topic_name, v)
        if err is None:
            acked.append(v)
            resumed = time.monotonic() - started
            break
        assert err.code() == KafkaError.KAFKA_STORAGE_ERROR, err
        time.sleep(0.2)
    assert resumed is not None, "produce did not resume within 20 s of freeing space"
    assert resumed < 10, f"produce took {resumed:.1f} s to resume"
    for i in range(20):
        v = value_of(200_000 + i)
        assert produce_one(p, topic_name, v) is None
        acked.append(v)
    assert read_values(b.bootstrap, topic_name, len(acked)) == acked

    # After a restart: every acknowledged record exactly once, nothing torn or unacknowledged.
    b.restart()
    got = read_values(b.bootstrap, topic_name, len(acked))
    assert len(got) == len(acked), f"{len(got)} records after restart, {len(acked)} acknowledged"
    assert got == acked


def topic_names(bootstrap: str) -> set[str]:
    # All topics (no topic named in the request, so nothing is auto-created).
    return set(admin(bootstrap).list_topics(timeout=10).topics)


def test_delete_topics_on_a_full_disk_is_all_or_nothing(small_fs, broker_factory, topic_name):
    data = small_fs / "data"
    # No auto-creation: a client's metadata refresh must not bring a deleted topic back.
    b = broker_factory(sets={"petrel.disk.full.probe.interval.ms": str(PROBE_MS), "auto.create.topics.enable": "false"},
                       data_dir=data)
    create_topic(b.bootstrap, topic_name, partitions=3)
    p = strict_producer(b.bootstrap)
    values = [value_of(i) for i in range(30)]
    for v in values:
        assert produce_one(p, topic_name, v) is None
    del p
    filler = small_fs / "filler"
    fill(filler, leave_bytes=0)

    a = admin(b.bootstrap)  # keep the client alive until the future resolves
    futures = a.delete_topics([topic_name], operation_timeout=10, request_timeout=15)
    try:
        futures[topic_name].result(20)
        deleted = True
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR, e
        deleted = False

    print(f"DeleteTopics on the full disk: {'deleted' if deleted else 'KAFKA_STORAGE_ERROR'}")

    def check(when: str) -> None:
        names = topic_names(b.bootstrap)
        dirs = sorted(d.name for d in data.iterdir() if d.name.startswith(topic_name + "-") and not d.name.endswith("-delete"))
        if deleted:
            assert topic_name not in names, f"{when}: answered success but the topic is still listed"
            assert dirs == [], f"{when}: answered success but partition directories remain: {dirs}"
        else:
            assert topic_name in names, f"{when}: answered an error but the topic is gone"
            assert dirs == [f"{topic_name}-{i}" for i in range(3)], f"{when}: answered an error but directories changed: {dirs}"
            assert read_values(b.bootstrap, topic_name, len(values)) == values, f"{when}: records lost"

    check("on the full disk")
    filler.unlink()
    b.restart()
    check("after a restart")

    # With space, the deletion goes through completely and stays done.
    if not deleted:
        a = admin(b.bootstrap)
        a.delete_topics([topic_name], operation_timeout=10, request_timeout=15)[topic_name].result(20)
        deleted = True
        check("after deleting with space")
        b.restart()
        check("after deleting with space and a restart")
