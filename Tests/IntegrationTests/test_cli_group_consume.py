"""`petrel consume --group`: the console consumer as a classic-protocol consumer group member."""

import json
import subprocess

import pytest

import petrel_helpers as h
from conftest import is_peer, petrel_bin

pytestmark = pytest.mark.skipif(is_peer(), reason="exercises Petrel's CLI")

FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0"}


def petrel(*args, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(petrel_bin()), *args], capture_output=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"petrel {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}"
    return proc


def test_group_consume_commits_and_resumes(broker_factory, topic_name):
    b = broker_factory(sets=FAST_GROUPS)
    bs = ["--bootstrap", b.bootstrap]
    group = f"g-{topic_name}"
    h.create_topic(b.bootstrap, topic_name, partitions=3)
    values = [f"v{i}".encode() for i in range(30)]
    h.produce_values(b.bootstrap, topic_name, {p: values[p::3] for p in range(3)})

    out = petrel("consume", "--group", group, "--topic", topic_name, "--from-beginning", "--max-messages", "30",
                 "--timeout-ms", "20000", *bs).stdout.decode().splitlines()
    assert sorted(out) == sorted(v.decode() for v in values)

    # The committed offsets are respected: only the new record comes back.
    h.produce_values(b.bootstrap, topic_name, {1: [b"new-1"]})
    out = petrel("consume", "--group", group, "--topic", topic_name, "--from-beginning", "--max-messages", "1",
                 "--timeout-ms", "3000", "--format", "%p:%o:%v", *bs).stdout.decode().splitlines()
    assert out == ["1:10:new-1"]

    described = json.loads(petrel("groups", "describe", group, "--json", *bs).stdout)
    assert described["members"] == [], "the CLI left the group at exit"
    committed = {o["partition"]: o["committed"] for o in described["offsets"] if o["topic"] == topic_name}
    assert committed == {0: 10, 1: 11, 2: 10}
    assert sum(committed.values()) == 31

    # Nothing new: the CLI exits 0 on --timeout-ms with no output, and leaves the offsets alone.
    out = petrel("consume", "--group", group, "--topic", topic_name, "--timeout-ms", "1500", *bs).stdout
    assert out == b""

    # A librdkafka member of the same group resumes where the CLI committed.
    h.produce_values(b.bootstrap, topic_name, {0: [b"after-0"], 2: [b"after-2"]})
    c = h.group_consumer(b.bootstrap, group)
    try:
        c.subscribe([topic_name])
        got = h.poll_group([c], 2, extra_wait=1.5)[0]
        assert sorted(m.value() for m in got) == [b"after-0", b"after-2"]
        c.commit(asynchronous=False)
    finally:
        c.close()
    assert h.committed_offsets(b.bootstrap, group, topic_name, 3) == {0: 11, 1: 11, 2: 11}


def test_group_consume_latest_without_commits_and_errors(broker_factory, topic_name):
    b = broker_factory(sets=FAST_GROUPS)
    bs = ["--bootstrap", b.bootstrap]
    h.create_topic(b.bootstrap, topic_name, partitions=2)
    h.produce_values(b.bootstrap, topic_name, {0: [b"old"]})
    # No committed offset and no --from-beginning: start at the log end (auto.offset.reset=latest).
    out = petrel("consume", "--group", "fresh", "--topic", topic_name, "--timeout-ms", "1500", *bs).stdout
    assert out == b""
    described = json.loads(petrel("groups", "describe", "fresh", "--json", *bs).stdout)
    committed = {o["partition"]: o["committed"] for o in described["offsets"] if o["topic"] == topic_name}
    assert committed == {0: 1, 1: 0}

    missing = petrel("consume", "--group", "fresh", "--topic", topic_name + "-nope", "--timeout-ms", "500", *bs, check=False)
    assert missing.returncode != 0 and b"does not exist" in missing.stderr
    bad = petrel("consume", "--group", "fresh", "--topic", topic_name, "--partition", "0", *bs, check=False)
    assert bad.returncode != 0 and b"--partition" in bad.stderr


def test_two_cli_members_split_partitions(broker_factory, topic_name):
    """Two CLI members in one group: range assignment gives each a share, together all records once."""
    b = broker_factory(sets=FAST_GROUPS)
    h.create_topic(b.bootstrap, topic_name, partitions=4)
    values = [f"m{i}".encode() for i in range(40)]
    h.produce_values(b.bootstrap, topic_name, {p: values[p::4] for p in range(4)})
    cmd = [str(petrel_bin()), "consume", "--group", "pair", "--topic", topic_name, "--from-beginning",
           "--timeout-ms", "6000", "--format", "%p:%v", "--bootstrap", b.bootstrap]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
    lines = [line for out, _ in outs for line in out.decode().splitlines()]
    # Across a rebalance a record may be printed twice (at-least-once), never lost.
    assert {line.split(":", 1)[1] for line in lines} == {v.decode() for v in values}
    committed = h.committed_offsets(b.bootstrap, "pair", topic_name, 4)
    assert committed == {p: 10 for p in range(4)}


def test_cli_and_librdkafka_members_share_a_group(broker_factory, topic_name):
    """A CLI member next to a librdkafka member: each decodes the other's subscription/assignment."""
    import time
    b = broker_factory(sets=FAST_GROUPS)
    h.create_topic(b.bootstrap, topic_name, partitions=2)
    c = h.group_consumer(b.bootstrap, "mixed", **{"partition.assignment.strategy": "range"})
    cli = None
    try:
        c.subscribe([topic_name])
        h.wait_assignment([c], topic_name, 2)
        cli = subprocess.Popen(
            [str(petrel_bin()), "consume", "--group", "mixed", "--topic", topic_name, "--from-beginning",
             "--max-messages", "5", "--timeout-ms", "20000", "--format", "%p:%v", "--bootstrap", b.bootstrap],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The CLI's join rebalances the group: librdkafka (the leader) range-assigns one partition each.
        deadline = time.monotonic() + 30
        mine: set[int] = set()
        while time.monotonic() < deadline:
            assert c.poll(0.2) is None
            mine = {tp.partition for tp in c.assignment()}
            if len(mine) == 1:
                break
        assert len(mine) == 1, f"librdkafka member still owns {mine}"
        other = 1 - next(iter(mine))
        h.produce_values(b.bootstrap, topic_name, {p: [f"{p}-{i}".encode() for i in range(5)] for p in range(2)})
        out, err = cli.communicate(timeout=30)
        assert cli.returncode == 0, err.decode()
        assert out.decode().splitlines() == [f"{other}:{other}-{i}" for i in range(5)]
        # The CLI committed and left: librdkafka takes its partition over at the CLI's commit (nothing
        # from it again); its own uncommitted partition may be read twice across that rebalance.
        got = h.poll_group([c], 5, extra_wait=3.0)[0]
        assert {m.value() for m in got} == {f"{next(iter(mine))}-{i}".encode() for i in range(5)}
        assert {tp.partition for tp in c.assignment()} == {0, 1}
        assert h.committed_offsets(b.bootstrap, "mixed", topic_name, 2)[other] == 5
    finally:
        if cli and cli.poll() is None:
            cli.kill()
        c.close()
