"""Transactional-id ACLs (issue 11) as Kafka's StandardAuthorizer applies them, with confluent-kafka's
transactional producer over SASL_PLAINTEXT: InitProducerId / Produce / EndTxn need WRITE on the
TRANSACTIONAL_ID resource (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED), AddOffsetsToTxn and
TxnOffsetCommit READ on the group (else GROUP_AUTHORIZATION_FAILED); prefixed patterns and DENY apply."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AclOperation, AclPermissionType, AdminClient, NewTopic, ResourcePatternType, ResourceType

import petrel_helpers as h
from test_security_acls import acl_broker, allow, cfg  # noqa: F401  (acl_broker is a fixture)


def txn_producer(b, user, txn_id):
    return Producer({**cfg(b, user), "transactional.id": txn_id, "transaction.timeout.ms": 30000, "linger.ms": 2})


def init_error(b, user, txn_id):
    p = txn_producer(b, user, txn_id)
    try:
        p.init_transactions(20)
        return None, p
    except KafkaException as e:
        return e.args[0].code(), None


def test_transactional_id_acls(acl_broker):
    b = acl_broker
    admin = AdminClient(cfg(b, "admin"))
    suffix = uuid.uuid4().hex[:6]
    topic, group = f"txacl-{suffix}", f"txacl-g-{suffix}"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    prefix = f"tx-alice-{suffix}-"
    bindings = [
        allow("User:alice", ResourceType.TOPIC, topic, AclOperation.WRITE),
        allow("User:alice", ResourceType.TOPIC, topic, AclOperation.READ),
        allow("User:alice", ResourceType.GROUP, group, AclOperation.READ),
        allow("User:bob", ResourceType.TOPIC, topic, AclOperation.WRITE),
    ]
    for f in admin.create_acls(bindings).values():
        f.result(15)

    # WRITE on the topic is not enough for a transactional producer.
    code, _ = init_error(b, "alice", prefix + "1")
    assert code == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, code

    grants = [allow("User:alice", ResourceType.TRANSACTIONAL_ID, prefix, AclOperation.WRITE, ResourcePatternType.PREFIXED),
              allow("User:alice", ResourceType.TRANSACTIONAL_ID, prefix + "denied", AclOperation.WRITE,
                    perm=AclPermissionType.DENY)]
    for f in admin.create_acls(grants).values():
        f.result(15)

    # Allowed through the prefix: a whole consume-transform-produce transaction goes through.
    code, p = init_error(b, "alice", prefix + "1")
    assert code is None, code
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=b"acl-%d" % i, partition=0)
    c = Consumer({**cfg(b, "alice"), "group.id": group, "enable.auto.commit": False})
    p.send_offsets_to_transaction([TopicPartition(topic, 0, 5)], c.consumer_group_metadata(), 20)
    p.commit_transaction(20)
    got = h.consume_n(f"127.0.0.1:{b.ports()['SASL_PLAINTEXT']}", topic, 5, partitions=(0,), timeout=20,
                      **{k: v for k, v in cfg(b, "admin").items() if k != "bootstrap.servers"},
                      **{"isolation.level": "read_committed"})
    assert [m.value() for m in got] == [b"acl-%d" % i for i in range(5)]
    committed = c.committed([TopicPartition(topic, 0)], timeout=15)
    assert committed[0].offset == 5
    c.close()

    # READ on another group is missing: AddOffsetsToTxn is refused, the transaction is aborted.
    p.begin_transaction()
    p.produce(topic, value=b"acl-no-group", partition=0)
    other = Consumer({**cfg(b, "alice"), "group.id": f"other-{suffix}", "enable.auto.commit": False})
    with pytest.raises(KafkaException) as info:
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 6)], other.consumer_group_metadata(), 20)
    assert info.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED, info.value
    other.close()
    p.abort_transaction(20)

    # DENY beats the prefixed ALLOW; another principal gets nothing from alice's ACLs.
    code, _ = init_error(b, "alice", prefix + "denied")
    assert code == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, code
    code, _ = init_error(b, "bob", prefix + "2")
    assert code == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, code
    # bob may still write idempotently (KIP-679: WRITE on a topic suffices).
    bp = Producer({**cfg(b, "bob"), "enable.idempotence": True, "message.timeout.ms": 10000})
    result = []
    bp.produce(topic, b"bob", partition=0, on_delivery=lambda err, msg: result.append(err))
    bp.flush(15)
    assert result == [None]
