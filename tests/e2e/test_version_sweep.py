"""Every advertised API at every advertised version answers a well-formed request.

The broker derives ApiVersions from its route table, so whatever it advertises a client may
send. For each advertised (api key, version) this sends one well-formed request (the same
values for every version; `build` keeps the fields each version has) and checks that the
broker answers it on the same connection, with no UNKNOWN_SERVER_ERROR anywhere in the
response, and keeps the connection open. An API advertised without an entry here fails the
test, so a new route cannot skip the sweep.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient, record_batch

TOPIC = "sweep"
GROUP = "sweep-group"
MiB = 1024 * 1024


def _topic_partition(**extra: Any) -> dict[str, Any]:
    return {"partition_index": 0, "partition": 0, **extra}


def requests_for(version: int, topic_id: uuid.UUID) -> dict[int, dict[str, Any]]:
    """A well-formed request per API key, written once for every version."""
    created = f"sweep-created-v{version}"
    return {
        0: {  # Produce (acks=1: acks=0 has no response to check)
            "transactional_id": None,
            "acks": 1,
            "timeout": 5000,
            "topic_data": [
                {"name": TOPIC, "partition_data": [{"index": 0, "records": record_batch([b"v"])}]}
            ],
        },
        1: {  # Fetch
            "replica_id": -1,
            "max_wait": 0,
            "min_bytes": 1,
            "max_bytes": MiB,
            "isolation_level": 0,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [
                {
                    "topic": TOPIC,
                    "topic_id": topic_id,
                    "partitions": [
                        {
                            "partition": 0,
                            "current_leader_epoch": -1,
                            "fetch_offset": 0,
                            "last_fetched_epoch": -1,
                            "log_start_offset": -1,
                            "partition_max_bytes": MiB,
                        }
                    ],
                }
            ],
            "forgotten_topics_data": [],
            "rack_id": "",
        },
        2: {  # ListOffsets
            "replica_id": -1,
            "isolation_level": 0,
            "topics": [
                {
                    "name": TOPIC,
                    "partitions": [_topic_partition(current_leader_epoch=-1, timestamp=-1)],
                }
            ],
        },
        3: {  # Metadata
            "topics": [{"name": TOPIC, "topic_id": uuid.UUID(int=0)}],
            "allow_auto_topic_creation": False,
            "include_cluster_authorized_operations": True,
            "include_topic_authorized_operations": True,
        },
        8: {  # OffsetCommit (a simple consumer: no generation)
            "group_id": GROUP,
            "generation_id_or_member_epoch": -1,
            "member_id": "",
            "group_instance_id": None,
            "retention_time_ms": -1,
            "topics": [
                {
                    "name": TOPIC,
                    "partitions": [
                        _topic_partition(
                            committed_offset=0, committed_leader_epoch=-1, committed_metadata=""
                        )
                    ],
                }
            ],
        },
        9: {  # OffsetFetch (v8+ batches groups)
            "group_id": GROUP,
            "topics": [{"name": TOPIC, "partition_indexes": [0]}],
            "groups": [{"group_id": GROUP, "topics": [{"name": TOPIC, "partition_indexes": [0]}]}],
            "require_stable": False,
        },
        10: {"key": GROUP, "key_type": 0, "coordinator_keys": [GROUP]},  # FindCoordinator
        11: {  # JoinGroup (v4+: answers MEMBER_ID_REQUIRED at once)
            "group_id": f"sweep-join-v{version}",
            "session_timeout_ms": 10000,
            "rebalance_timeout_ms": 10000,
            "member_id": "",
            "group_instance_id": None,
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}],
            "reason": "sweep",
        },
        12: {"group_id": GROUP, "generation_id": 1, "member_id": "m"},  # Heartbeat
        13: {  # LeaveGroup
            "group_id": GROUP,
            "member_id": "m",
            "members": [{"member_id": "m", "group_instance_id": None, "reason": "sweep"}],
        },
        14: {  # SyncGroup
            "group_id": GROUP,
            "generation_id": 1,
            "member_id": "m",
            "group_instance_id": None,
            "protocol_type": "consumer",
            "protocol_name": "range",
            "assignments": [],
        },
        15: {"groups": [GROUP], "include_authorized_operations": True},  # DescribeGroups
        16: {"states_filter": [], "types_filter": []},  # ListGroups
        18: {"client_software_name": "sweep", "client_software_version": "1.0"},
        19: {  # CreateTopics
            "topics": [
                {
                    "name": created,
                    "num_partitions": 1,
                    "replication_factor": 1,
                    "assignments": [],
                    "configs": [{"name": "retention.ms", "value": "3600000"}],
                }
            ],
            "timeout": 5000,
            "validate_only": False,
        },
        20: {  # DeleteTopics (v6 names topics by name or id)
            "topic_names": [f"sweep-absent-v{version}"],
            "topics": [{"name": f"sweep-absent-v{version}", "topic_id": uuid.UUID(int=0)}],
            "timeout": 5000,
        },
        21: {  # DeleteRecords
            "topics": [{"name": TOPIC, "partitions": [_topic_partition(offset=0)]}],
            "timeout": 5000,
        },
        22: {  # InitProducerId (idempotent producer)
            "transactional_id": None,
            "transaction_timeout_ms": 60000,
            "producer_id": -1,
            "producer_epoch": -1,
        },
        24: {  # AddPartitionsToTxn (an unknown transactional id: a mapping error)
            "v3_and_below_transactional_id": "sweep-txn",
            "v3_and_below_producer_id": 1,
            "v3_and_below_producer_epoch": 0,
            "v3_and_below_topics": [{"name": TOPIC, "partitions": [0]}],
            "transactions": [  # v4+: the brokers' batched form
                {
                    "transactional_id": "sweep-txn",
                    "producer_id": 1,
                    "producer_epoch": 0,
                    "verify_only": version % 2 == 0,
                    "topics": [{"name": TOPIC, "partitions": [0]}],
                }
            ],
        },
        25: {  # AddOffsetsToTxn
            "transactional_id": "sweep-txn",
            "producer_id": 1,
            "producer_epoch": 0,
            "group_id": GROUP,
        },
        26: {  # EndTxn
            "transactional_id": "sweep-txn",
            "producer_id": 1,
            "producer_epoch": 0,
            "committed": True,
        },
        28: {  # TxnOffsetCommit
            "transactional_id": "sweep-txn",
            "group_id": GROUP,
            "producer_id": 1,
            "producer_epoch": 0,
            "generation_id": -1,
            "member_id": "",
            "group_instance_id": None,
            "topics": [
                {
                    "name": TOPIC,
                    "topic_id": topic_id,  # v6 names topics by id
                    "partitions": [
                        {
                            "partition_index": 0,
                            "committed_offset": 0,
                            "committed_leader_epoch": -1,
                            "committed_metadata": None,
                        }
                    ],
                }
            ],
        },
        32: {  # DescribeConfigs
            "resources": [{"resource_type": 2, "resource_name": TOPIC, "configuration_keys": None}],
            "include_synonyms": True,
            "include_documentation": True,
        },
        33: {  # AlterConfigs (validate only)
            "resources": [
                {
                    "resource_type": 2,
                    "resource_name": TOPIC,
                    "configs": [{"name": "retention.ms", "value": "604800000"}],
                }
            ],
            "validate_only": True,
        },
        37: {  # CreatePartitions (validate only)
            "topics": [{"name": TOPIC, "count": 2, "assignments": None}],
            "timeout": 5000,
            "validate_only": True,
        },
        42: {"groups_names": ["sweep-absent-group"]},  # DeleteGroups
        35: {"topics": [{"topic": TOPIC, "partitions": [0]}]},  # DescribeLogDirs
        43: {  # ElectLeaders: the partition's leader is its target (ELECTION_NOT_NEEDED)
            "election_type": 0,
            "topic_partitions": [{"topic": TOPIC, "partitions": [0]}],
            "timeout": 5000,
        },
        45: {  # AlterPartitionReassignments: cancel with none in progress
            "timeout": 5000,
            "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "replicas": None}]}],
        },
        46: {"timeout": 5000, "topics": None},  # ListPartitionReassignments: every move
        55: {  # DescribeQuorum: the one partition Kafka answers
            "topics": [{"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}]
        },
        74: {"resource_types": []},  # ListConfigResources: the default types
        75: {  # DescribeTopicPartitions: the sweep topic from its first partition
            "topics": [{"name": TOPIC}],
            "response_partition_limit": 2000,
            "cursor": {"topic_name": TOPIC, "partition_index": 0},
        },
        44: {  # IncrementalAlterConfigs (validate only)
            "resources": [
                {
                    "resource_type": 2,
                    "resource_name": TOPIC,
                    "configs": [
                        {"name": "retention.ms", "config_operation": 0, "value": "604800000"}
                    ],
                }
            ],
            "validate_only": True,
        },
        47: {  # OffsetDelete
            "group_id": GROUP,
            "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0}]}],
        },
        29: {  # DescribeAcls: every binding
            "resource_type_filter": 1,
            "resource_name_filter": None,
            "pattern_type_filter": 1,
            "principal_filter": None,
            "host_filter": None,
            "operation": 1,
            "permission_type": 1,
        },
        30: {  # CreateAcls
            "creations": [
                {
                    "resource_type": 2,
                    "resource_name": TOPIC,
                    "resource_pattern_type": 3,
                    "principal": "User:ANONYMOUS",
                    "host": "*",
                    "operation": 2,
                    "permission_type": 3,
                }
            ]
        },
        31: {  # DeleteAcls: a binding nobody created
            "filters": [
                {
                    "resource_type_filter": 2,
                    "resource_name_filter": "sweep-never",
                    "pattern_type_filter": 3,
                    "principal_filter": None,
                    "host_filter": None,
                    "operation": 1,
                    "permission_type": 1,
                }
            ]
        },
        48: {  # DescribeClientQuotas: every entity with a user
            "components": [{"entity_type": "user", "match_type": 2, "match": None}],
            "strict": False,
        },
        49: {  # AlterClientQuotas: validated only
            "entries": [
                {
                    "entity": [{"entity_type": "client-id", "entity_name": "sweep"}],
                    "ops": [{"key": "producer_byte_rate", "value": 1048576.0, "remove": False}],
                }
            ],
            "validate_only": True,
        },
        17: {"mechanism": "SCRAM-SHA-512"},  # SaslHandshake: ILLEGAL_SASL_STATE on PLAINTEXT
        36: {"auth_bytes": b"n,,n=sweep,r=x"},  # SaslAuthenticate: ILLEGAL_SASL_STATE too
        50: {"users": None},  # DescribeUserScramCredentials: every user
        51: {  # AlterUserScramCredentials
            "deletions": [],
            "upsertions": [
                {
                    "name": "sweep-user",
                    "mechanism": 2,
                    "iterations": 4096,
                    "salt": b"s" * 32,
                    "salted_password": b"p" * 64,
                }
            ],
        },
        60: {  # DescribeCluster
            "include_cluster_authorized_operations": True,
            "endpoint_type": 1,
            "include_fenced_brokers": False,
        },
        27: {  # WriteTxnMarkers: an ABORT for a producer with nothing open (a no-op)
            "markers": [
                {
                    "producer_id": 9999,
                    "producer_epoch": 0,
                    "transaction_result": False,
                    "topics": [{"name": TOPIC, "partition_indexes": [0]}],
                    "coordinator_epoch": 0,
                    "transaction_version": 0,
                }
            ]
        },
        61: {"topics": [{"name": TOPIC, "partition_indexes": [0]}]},  # DescribeProducers
        65: {"transactional_ids": ["sweep-unknown"]},  # DescribeTransactions
        66: {  # ListTransactions
            "state_filters": ["Ongoing", "NoSuchState"],
            "producer_id_filters": [],
            "duration_filter": -1,
            "transactional_id_pattern": "sweep-.*",
        },
        69: {  # ConsumerGroupDescribe: the group joined by the heartbeat below, and none
            "group_ids": [GROUP + "-848", "sweep-unknown"],
            "include_authorized_operations": True,
        },
        68: {  # ConsumerGroupHeartbeat: a member joins (KIP-848)
            "group_id": GROUP + "-848",
            "member_id": str(uuid.uuid4()),
            "member_epoch": 0,
            "instance_id": None,
            "rack_id": None,
            "rebalance_timeout": 30000,
            "subscribed_topic_names": [TOPIC],
            "subscribed_topic_regex": None,
            "server_assignor": None,
            "topic_partitions": [],
        },
        76: {  # ShareGroupHeartbeat: a member joins a share group (KIP-932)
            "group_id": GROUP + "-share",
            "member_id": str(uuid.uuid4()),
            "member_epoch": 0,
            "rack_id": None,
            "subscribed_topic_names": [TOPIC],
        },
        77: {  # ShareGroupDescribe: the share group joined above, and none
            "group_ids": [GROUP + "-share", "sweep-unknown"],
            "include_authorized_operations": True,
        },
        78: {  # ShareFetch: opens a share session, fetching nothing
            "group_id": GROUP + "-share",
            "member_id": "sweep-member",
            "share_session_epoch": 0,
            "max_wait": 0,
            "min_bytes": 1,
            "max_bytes": 1 << 20,
            "max_records": 10,
            "batch_size": 10,
            "topics": [],
            "forgotten_topics_data": [],
        },
        79: {  # ShareAcknowledge: closes the session opened above
            "group_id": GROUP + "-share",
            "member_id": "sweep-member",
            "share_session_epoch": -1,
            "topics": [],
        },
        90: {  # DescribeShareGroupOffsets: every partition of one group, named ones of another
            "groups": [
                {"group_id": GROUP + "-share", "topics": None},
                {
                    "group_id": GROUP + "-offsets",
                    "topics": [{"topic_name": TOPIC, "partitions": [0]}],
                },
            ]
        },
        91: {  # AlterShareGroupOffsets: an empty share group's SPSO
            "group_id": GROUP + "-offsets",
            "topics": [
                {"topic_name": TOPIC, "partitions": [{"partition_index": 0, "start_offset": 0}]}
            ],
        },
        92: {  # DeleteShareGroupOffsets: the state altered above
            "group_id": GROUP + "-offsets",
            "topics": [{"topic_name": TOPIC}],
        },
    }


def _error_codes(value: Any) -> Iterator[tuple[str, ErrorCode]]:
    """Every (path, error code) in a decoded response entity."""
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            if isinstance(item, ErrorCode):
                yield field.name, item
            else:
                for path, code in _error_codes(item):
                    yield f"{field.name}.{path}", code
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            for path, code in _error_codes(item):
                yield f"[{index}].{path}", code


# Without an authorizer, and with Kafka's StandardAuthorizer (every route's declaration of
# what it needs is then evaluated for every version of its request).
AUTHORIZERS = {
    "no-authorizer": {},
    "standard-authorizer": {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "true",
    },
}


@pytest.fixture(scope="module", params=list(AUTHORIZERS))
def sweep_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessBroker]:
    data = tmp_path_factory.mktemp("sweep") / "broker"
    settings = {"group.initial.rebalance.delay.ms": "0", **AUTHORIZERS[request.param]}
    process = InProcessBroker(data, settings=settings).start()
    yield process
    process.stop()


def _advertised(client: RawClient) -> list[tuple[int, int, int]]:
    response = client.request(18, 3, client_software_name="sweep", client_software_version="1")
    return [(k.api_key, k.min_version, k.max_version) for k in response.api_keys]


def test_every_advertised_api_version_answers_a_well_formed_request(
    sweep_broker: InProcessBroker,
) -> None:
    with RawClient(sweep_broker.bootstrap, client_id="sweep") as client:
        created = client.request(
            19,
            7,
            topics=[
                {
                    "name": TOPIC,
                    "num_partitions": 1,
                    "replication_factor": 1,
                    "assignments": [],
                    "configs": [],
                }
            ],
            timeout=5000,
            validate_only=False,
        )
        assert created.topics[0].error_code == ErrorCode.none
        topic_id = created.topics[0].topic_id
        advertised = _advertised(client)
        known = requests_for(0, topic_id)
        missing = [key for key, _, _ in advertised if key not in known]
        assert not missing, f"advertised API keys without a sweep request: {missing}"

        failures: list[str] = []
        for api_key, low, high in advertised:
            for version in range(low, high + 1):
                values = requests_for(version, topic_id)[api_key]
                try:
                    response = client.request(api_key, version, **values)
                except (ConnectionError, OSError) as exc:
                    failures.append(f"api {api_key} v{version}: connection lost ({exc})")
                    client = RawClient(sweep_broker.bootstrap, client_id="sweep")
                    continue
                unknown = [
                    p for p, c in _error_codes(response) if c == ErrorCode.unknown_server_error
                ]
                if unknown:
                    failures.append(f"api {api_key} v{version}: UNKNOWN_SERVER_ERROR at {unknown}")
        # The connection that carried the whole sweep still serves.
        assert _advertised(client) == advertised
        client.close()
    assert not failures, "\n".join(failures)
