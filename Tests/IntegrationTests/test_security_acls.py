"""ACLs as Kafka's StandardAuthorizer applies them, driven with confluent-kafka over SASL_PLAINTEXT
(PLAIN users): super.users, allow/deny per topic and group, prefixed patterns, Metadata and
ListGroups filtering, CreateAcls/DescribeAcls/DeleteAcls, ACLs kept across a restart."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)

import conftest
import petrel_helpers as h
from test_security_sasl_tls import SecureBroker


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory):
    if conftest.is_peer():
        pytest.skip("Petrel only")
    root = tmp_path_factory.mktemp("acl-broker")
    users = root / "users.properties"
    users.write_text("admin=admin-pw\nalice=alice-pw\nbob=bob-pw\n")
    sets = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN",
        "petrel.sasl.plain.users.file": str(users),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
    }
    b = SecureBroker(root / "data", root / "logs", sets).start()
    yield b
    b.stop()


def cfg(b, user):
    return {"bootstrap.servers": f"127.0.0.1:{b.ports()['SASL_PLAINTEXT']}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": f"{user}-pw"}


def produce_error(c, topic):
    """Produce one record; return the delivery error code (None on success)."""
    p = Producer({**c, "message.timeout.ms": 10000, **({} if c.get("enable.idempotence") else {"retries": 0})})
    result = []
    p.produce(topic, b"x", on_delivery=lambda err, msg: result.append(err))
    p.flush(15)
    assert result, "no delivery report"
    return result[0].code() if result[0] else None


def allow(principal, rtype, name, op, pattern=ResourcePatternType.LITERAL, perm=AclPermissionType.ALLOW):
    return AclBinding(rtype, name, pattern, principal, "*", op, perm)


def test_acls_allow_deny_filter_and_survive_restart(acl_broker):
    b = acl_broker
    admin = AdminClient(cfg(b, "admin"))
    topic, other = "acl-" + uuid.uuid4().hex[:6], "other-" + uuid.uuid4().hex[:6]
    for t in (topic, other):
        admin.create_topics([NewTopic(t, 1, 1)])[t].result(15)

    # No ACL: everything but the super user is refused (allow.everyone.if.no.acl.found=false).
    assert produce_error(cfg(b, "alice"), topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED

    bindings = [allow("User:alice", ResourceType.TOPIC, topic, AclOperation.WRITE),
                allow("User:bob", ResourceType.TOPIC, "acl-", AclOperation.READ, ResourcePatternType.PREFIXED),
                allow("User:bob", ResourceType.GROUP, "g-ok", AclOperation.READ)]
    for f in admin.create_acls(bindings).values():
        f.result(15)
    described = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                                     AclOperation.ANY, AclPermissionType.ANY)).result(15)
    assert sorted(str(x.principal) for x in described) == ["User:alice", "User:bob", "User:bob"]

    assert produce_error(cfg(b, "alice"), topic) is None
    assert produce_error(cfg(b, "alice"), other) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # KIP-679: WRITE on one topic is enough for an idempotent producer (InitProducerId).
    assert produce_error({**cfg(b, "alice"), "enable.idempotence": True}, topic) is None
    # Metadata shows alice only what she may describe (implied by WRITE).
    listed = AdminClient(cfg(b, "alice")).list_topics(timeout=10).topics
    assert topic in listed and other not in listed

    # bob reads through group g-ok; group g-denied is refused.
    ok = Consumer({**cfg(b, "bob"), "group.id": "g-ok", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    ok.subscribe([topic])
    got = h.poll_n(ok, 2, timeout=30)
    ok.commit(asynchronous=False)
    ok.close()
    assert [m.value() for m in got] == [b"x", b"x"]
    denied = Consumer({**cfg(b, "bob"), "group.id": "g-denied", "auto.offset.reset": "earliest"})
    denied.subscribe([topic])
    with pytest.raises(KafkaException) as e:
        for _ in range(40):
            for m in denied.consume(timeout=0.5):
                if m.error():
                    raise KafkaException(m.error())
    denied.close()
    assert e.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    bob_admin = AdminClient(cfg(b, "bob"))
    groups = bob_admin.list_consumer_groups().result(15)
    assert "g-ok" in [g.group_id for g in groups.valid]
    # ListGroups hides the groups bob may not describe.
    assert "g-denied" not in [g.group_id for g in groups.valid]

    # Only the cluster's ALTER may change ACLs.
    with pytest.raises(KafkaException) as e:
        alice_admin = AdminClient(cfg(b, "alice"))
        list(alice_admin.create_acls([allow("User:alice", ResourceType.TOPIC, other, AclOperation.ALL)]).values())[0].result(15)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED

    # Restart: ACLs are reloaded; then delete alice's and she is refused again.
    b.restart()
    admin = AdminClient(cfg(b, "admin"))
    assert produce_error(cfg(b, "alice"), topic) is None
    deleted = admin.delete_acls([AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                                                  AclOperation.ANY, AclPermissionType.ANY)])
    assert [len(f.result(15)) for f in deleted.values()] == [1]
    assert produce_error(cfg(b, "alice"), topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_authorized_operations_kip430(acl_broker):
    from confluent_kafka import TopicCollection
    b = acl_broker
    admin = AdminClient(cfg(b, "admin"))
    topic = "ops-" + uuid.uuid4().hex[:6]
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    for f in admin.create_acls([allow("User:alice", ResourceType.TOPIC, topic, AclOperation.READ)]).values():
        f.result(15)
    alice = AdminClient(cfg(b, "alice"))
    desc = alice.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(15)
    assert sorted(op.name for op in desc.authorized_operations) == ["DESCRIBE", "READ"]
    full = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(15)
    assert len(full.authorized_operations) == 8  # super user: every topic operation
    cluster = alice.describe_cluster(include_authorized_operations=True).result(15)
    assert not cluster.authorized_operations
    cluster = admin.describe_cluster(include_authorized_operations=True).result(15)
    assert {"ALTER", "DESCRIBE", "CREATE"} <= {op.name for op in cluster.authorized_operations}


def test_mtls_principal_is_the_certificate_dn(tmp_path_factory):
    """ssl.client.auth=required with an authorizer: the principal is User:<full DN>, as in Kafka."""
    if conftest.is_peer():
        pytest.skip("Petrel only")
    import subprocess
    from test_security_sasl_tls import ROOT
    root = tmp_path_factory.mktemp("mtls-acl")
    certs = root / "certs"
    subprocess.run([str(ROOT / "tools/make-test-certs.sh"), str(certs)], check=True, capture_output=True)
    sets = {
        "listeners": "SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        "listener.name.ssl.ssl.keystore.location": str(certs / "broker-keystore.pem"),
        "listener.name.ssl.ssl.truststore.location": str(certs / "ca.pem"),
        "listener.name.ssl.ssl.client.auth": "required",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",  # the PLAINTEXT listener administers
    }
    b = SecureBroker(root / "data", root / "logs", sets).start()
    try:
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{b.ports()['PLAINTEXT']}"})
        topic = "mtls-" + uuid.uuid4().hex[:6]
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
        client = {"bootstrap.servers": f"127.0.0.1:{b.ports()['SSL']}", "security.protocol": "SSL",
                  "ssl.ca.location": str(certs / "ca.pem"), "ssl.certificate.location": str(certs / "client.pem"),
                  "ssl.key.location": str(certs / "client.key")}
        assert produce_error(client, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
        for f in admin.create_acls([allow("User:CN=client,OU=test,O=Petrel", ResourceType.TOPIC, topic, AclOperation.WRITE)]).values():
            f.result(15)
        assert produce_error(client, topic) is None

        # petrel acls: list, remove, add (prefixed) through the PLAINTEXT listener.
        def petrel(*args):
            r = subprocess.run([conftest.petrel_bin(), "acls", *args, "--bootstrap", f"127.0.0.1:{b.ports()['PLAINTEXT']}"],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            return r.stdout
        dn = "User:CN=client,OU=test,O=Petrel"
        assert f"TOPIC\tLITERAL\t{topic}\t{dn}\t*\tWRITE\tALLOW" in petrel("list")
        assert "removed:" in petrel("remove", "--principal", dn)
        assert petrel("list").strip() == ""
        assert produce_error(client, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
        petrel("add", "--principal", dn, "--operation", "Write", "--topic", "mtls-", "--prefixed")
        assert produce_error(client, topic) is None
    finally:
        b.stop()
