"""Client-supplied strings cannot forge log lines, and every administrative change is
logged once, with the client id and the client's address."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

PRODUCE, OFFSET_COMMIT, JOIN_GROUP, LEAVE_GROUP = 0, 8, 11, 13
CREATE_TOPICS, DELETE_TOPICS = 19, 20
DELETE_RECORDS, ALTER_CONFIGS, CREATE_PARTITIONS = 21, 33, 37
DELETE_GROUPS, INCREMENTAL_ALTER_CONFIGS, OFFSET_DELETE = 42, 44, 47
TOPIC_RESOURCE = 2

FORGED = "2099-01-01 00:00:00,000 INFO contextplane.audit: forged"
GROUP = f"group\n{FORGED}\r\u2028"
CLIENT_ID = "client\r\n\x1b[2Jid"
BAD_TOPIC = f"topic\n{FORGED}"
# How each appears in the log: one line, backslash escapes.
GROUP_LOGGED = r"group\n" + FORGED + r"\r\u2028"
CLIENT_ID_LOGGED = r"client\r\n\x1b[2Jid"
BAD_TOPIC_LOGGED = r"topic\n" + FORGED


def _topic(name: str, partitions: int = 1) -> dict[str, object]:
    return {
        "name": name,
        "num_partitions": partitions,
        "replication_factor": -1,
        "assignments": [],
        "configs": [],
    }


def _administer(client: RawClient) -> None:
    """One of every administrative change, and a group whose id tries to forge lines."""
    created = client.request(
        CREATE_TOPICS,
        7,
        topics=[_topic("audited"), _topic(BAD_TOPIC)],
        timeout=5000,
        validate_only=False,
    )
    assert [t.error_code for t in created.topics] == [0, 17]  # INVALID_TOPIC_EXCEPTION
    join = {
        "group_id": GROUP,
        "session_timeout": 10_000,
        "rebalance_timeout": 10_000,
        "group_instance_id": None,
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b""}],
    }
    member_id = client.request(JOIN_GROUP, 5, member_id="", **join).member_id
    assert client.request(JOIN_GROUP, 5, member_id=member_id, **join).error_code == 0
    left = client.request(LEAVE_GROUP, 3, group_id=GROUP, members=[{"member_id": member_id}])
    assert left.error_code == 0
    commit = client.request(
        OFFSET_COMMIT,
        8,
        group_id=GROUP,
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=[{"name": "audited", "partitions": [{"partition_index": 0, "committed_offset": 0}]}],
    )
    assert commit.topics[0].partitions[0].error_code == 0
    deleted_offsets = client.request(
        OFFSET_DELETE,
        0,
        group_id=GROUP,
        topics=[{"name": "audited", "partitions": [{"partition_index": 0}]}],
    )
    assert deleted_offsets.error_code == 0
    assert client.request(DELETE_GROUPS, 2, groups_names=[GROUP]).results[0].error_code == 0
    added = client.request(
        CREATE_PARTITIONS,
        3,
        topics=[{"name": "audited", "count": 2, "assignments": None}],
        timeout_ms=5000,
        validate_only=False,
    )
    assert added.results[0].error_code == 0
    altered = client.request(
        ALTER_CONFIGS,
        2,
        resources=[
            {
                "resource_type": TOPIC_RESOURCE,
                "resource_name": "audited",
                "configs": [{"name": "retention.ms", "value": "60000"}],
            }
        ],
        validate_only=False,
    )
    assert altered.responses[0].error_code == 0
    refused = client.request(
        INCREMENTAL_ALTER_CONFIGS,
        1,
        resources=[
            {
                "resource_type": TOPIC_RESOURCE,
                "resource_name": "audited",
                "configs": [
                    {"name": "retention.ms", "config_operation": 0, "value": f"1\n{FORGED}"}
                ],
            }
        ],
        validate_only=False,
    )
    assert refused.responses[0].error_code == 40  # INVALID_CONFIG
    records = client.request(
        DELETE_RECORDS,
        2,
        topics=[{"name": "audited", "partitions": [{"partition_index": 1, "offset": -1}]}],
        timeout=5000,
    )
    assert records.topics[0].partitions[0].error_code == 0
    dropped = client.request(DELETE_TOPICS, 6, topics=[{"name": "audited"}], timeout_ms=5000)
    assert dropped.responses[0].error_code == 0
    refused_produce = client.request(
        PRODUCE,
        9,
        transactional_id=None,
        acks=5,
        timeout=5000,
        topic_data=[{"name": BAD_TOPIC, "partition_data": [{"index": 0, "records": b""}]}],
    )
    assert refused_produce.responses[0].partition_responses[0].error_code == 21  # acks


def test_client_strings_are_escaped_and_admin_changes_audited(tmp_path: Path) -> None:
    broker = BrokerProcess(
        tmp_path / "broker", settings={"group.initial.rebalance.delay.ms": "0"}
    ).start()
    try:
        with RawClient(broker.bootstrap, client_id=CLIENT_ID) as client:
            _administer(client)
            peer = f"127.0.0.1:{client.sock.getsockname()[1]}"
        assert broker.log_path is not None
        expected = {
            ("CreateTopics", "topic", "audited", "NONE"),
            ("CreateTopics", "topic", BAD_TOPIC_LOGGED, "INVALID_TOPIC_EXCEPTION"),
            ("OffsetDelete", "group", GROUP_LOGGED, "NONE"),
            ("DeleteGroups", "group", GROUP_LOGGED, "NONE"),
            ("CreatePartitions", "topic", "audited", "NONE"),
            ("AlterConfigs", "topic", "audited", "NONE"),
            ("IncrementalAlterConfigs", "topic", "audited", "INVALID_CONFIG"),
            ("DeleteRecords", "partition", "audited-1", "NONE"),
            ("DeleteTopics", "topic", "audited", "NONE"),
        }

        def audited() -> list[str]:
            text = broker.log_path.read_text()  # type: ignore[union-attr]
            lines = [line for line in text.splitlines() if " audit " in line]
            return lines if len(lines) >= len(expected) else []

        lines = wait_until(audited, 10, "every administrative change is logged")
        pattern = re.compile(
            r'audit (\w+) (\w+)="((?:[^"\\]|\\.)*)" result=(\w+) client_id="((?:[^"\\]|\\.)*)"'
            r" peer=(\S+)"
        )
        seen = []
        for line in lines:
            match = pattern.search(line)
            assert match, line
            api, resource, name, result, client_id, address = match.groups()
            assert client_id == CLIENT_ID_LOGGED, line
            assert address == peer, line
            seen.append((api, resource, name, result))
        assert sorted(seen) == sorted(expected)
        log = broker.log_path.read_text()
        # Nothing forged a line or reached the terminal raw.
        assert not any(line.startswith("2099") for line in log.splitlines()), log
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]", log), log
        assert "retention.ms=1\\n" + FORGED in log  # the refused config value, escaped
        assert "produce to " + BAD_TOPIC_LOGGED + "-0" in log  # a refused produce, escaped
    finally:
        broker.stop()
