"""The golden request frames (tests/protocol/golden/, captured by capture.py) and what
each one must decode to. One row per file; test_golden_frames.py checks that the rows and
the files match one for one.

A file holds one whole request frame as the client sent it, size prefix included. Its
name says the API, the version and the client: `{api}_request_v{N}_{client}.bin`. Each
client's run used the topic `golden-{client}` and the group `golden-{client}-group`, so a
row names which of the two the decoded request must carry (the first Metadata requests
ask for no topic; Fetch v13 and later name topics by id).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

# Kafka's API keys (clients/src/main/resources/common/message/*Request.json).
API_KEYS: dict[str, int] = {
    "produce": 0,
    "fetch": 1,
    "list_offsets": 2,
    "metadata": 3,
    "offset_commit": 8,
    "offset_fetch": 9,
    "find_coordinator": 10,
    "join_group": 11,
    "heartbeat": 12,
    "leave_group": 13,
    "sync_group": 14,
    "api_versions": 18,
    "create_topics": 19,
    "init_producer_id": 22,
}

# Each client's default client.id (the Python producers number theirs).
AIOKAFKA = "aiokafka-0.14.0"
RDKAFKA = "rdkafka"
JAVA = "contextplane-clienttool"  # harness/java_client's ClientTool sets it
KAFKA_PYTHON = "kafka-python-3.0.12"


class Name(enum.Enum):
    TOPIC = "golden-{client}"
    GROUP = "golden-{client}-group"


TOPIC = Name.TOPIC
GROUP = Name.GROUP

_FILE_NAME = re.compile(r"(?P<api>[a-z_]+)_request_v(?P<version>\d+)_(?P<client>[a-z_]+)")


@dataclass(frozen=True)
class Golden:
    stem: str  # the file name without .bin
    correlation_id: int
    client_id: str
    names: tuple[Name, ...]  # the topic and/or group the request must carry

    @property
    def path(self) -> Path:
        return GOLDEN_DIR / f"{self.stem}.bin"

    def frame(self) -> bytes:
        """The whole frame, size prefix included."""
        return self.path.read_bytes()

    def _part(self, name: str) -> str:
        match = _FILE_NAME.fullmatch(self.stem)
        if match is None:
            raise ValueError(f"{self.stem}: not {{api}}_request_v{{N}}_{{client}}")
        return match[name]

    @property
    def api_key(self) -> int:
        return API_KEYS[self._part("api")]

    @property
    def api_version(self) -> int:
        return int(self._part("version"))

    @property
    def client(self) -> str:
        return self._part("client").replace("_", "-")

    def expected_names(self) -> set[str]:
        return {name.value.format(client=self.client) for name in self.names}


GOLDEN: tuple[Golden, ...] = (
    Golden("api_versions_request_v0_aiokafka", 1, AIOKAFKA, ()),
    Golden("api_versions_request_v3_librdkafka", 1, RDKAFKA, ()),
    Golden("api_versions_request_v4_java", 1, JAVA, ()),
    Golden("api_versions_request_v4_kafka_python", 1, KAFKA_PYTHON, ()),
    Golden("create_topics_request_v3_aiokafka", 2, AIOKAFKA, (TOPIC,)),
    Golden("create_topics_request_v4_librdkafka", 3, RDKAFKA, (TOPIC,)),
    Golden("create_topics_request_v7_java", 5, JAVA, (TOPIC,)),
    Golden("create_topics_request_v7_kafka_python", 3, KAFKA_PYTHON, (TOPIC,)),
    Golden("fetch_request_v11_aiokafka", 5, AIOKAFKA, (TOPIC,)),
    Golden("fetch_request_v12_kafka_python", 6, KAFKA_PYTHON, (TOPIC,)),
    Golden("fetch_request_v16_java", 14, JAVA, ()),
    Golden("fetch_request_v16_librdkafka", 7, RDKAFKA, ()),
    Golden("find_coordinator_request_v1_aiokafka", 3, AIOKAFKA, (GROUP,)),
    Golden("find_coordinator_request_v2_librdkafka", 3, RDKAFKA, (GROUP,)),
    Golden("find_coordinator_request_v6_java", 0, JAVA, (GROUP,)),
    Golden("find_coordinator_request_v6_kafka_python", 2, KAFKA_PYTHON, (GROUP,)),
    Golden("heartbeat_request_v3_librdkafka", 6, RDKAFKA, (GROUP,)),
    Golden("init_producer_id_request_v4_kafka_python", 2, "kafka-python-producer-1", ()),
    Golden("init_producer_id_request_v5_java", 3, JAVA, ()),
    Golden("join_group_request_v5_aiokafka", 2, AIOKAFKA, (GROUP,)),
    Golden("join_group_request_v5_librdkafka", 2, RDKAFKA, (GROUP,)),
    Golden("join_group_request_v7_kafka_python", 2, KAFKA_PYTHON, (GROUP,)),
    Golden("join_group_request_v9_java", 5, JAVA, (GROUP,)),
    Golden("leave_group_request_v1_aiokafka", 7, AIOKAFKA, (GROUP,)),
    Golden("leave_group_request_v1_librdkafka", 9, RDKAFKA, (GROUP,)),
    Golden("leave_group_request_v5_java", 17, JAVA, (GROUP,)),
    Golden("leave_group_request_v5_kafka_python", 7, KAFKA_PYTHON, (GROUP,)),
    Golden("list_offsets_request_v3_aiokafka", 4, AIOKAFKA, (TOPIC,)),
    Golden("list_offsets_request_v7_librdkafka", 6, RDKAFKA, (TOPIC,)),
    Golden("list_offsets_request_v8_java", 11, JAVA, (TOPIC,)),
    Golden("list_offsets_request_v8_kafka_python", 5, KAFKA_PYTHON, (TOPIC,)),
    Golden("metadata_request_v12_java", 2, JAVA, ()),
    Golden("metadata_request_v12_kafka_python", 2, KAFKA_PYTHON, ()),
    Golden("metadata_request_v12_librdkafka", 2, RDKAFKA, ()),
    Golden("metadata_request_v5_aiokafka", 2, AIOKAFKA, ()),
    Golden("offset_commit_request_v3_aiokafka", 6, AIOKAFKA, (TOPIC, GROUP)),
    Golden("offset_commit_request_v8_kafka_python", 6, KAFKA_PYTHON, (TOPIC, GROUP)),
    Golden("offset_commit_request_v9_java", 16, JAVA, (TOPIC, GROUP)),
    Golden("offset_commit_request_v9_librdkafka", 8, RDKAFKA, (TOPIC, GROUP)),
    Golden("offset_fetch_request_v3_aiokafka", 5, AIOKAFKA, (TOPIC, GROUP)),
    Golden("offset_fetch_request_v8_kafka_python", 5, KAFKA_PYTHON, (TOPIC, GROUP)),
    Golden("offset_fetch_request_v9_java", 10, JAVA, (TOPIC, GROUP)),
    Golden("offset_fetch_request_v9_librdkafka", 7, RDKAFKA, (TOPIC, GROUP)),
    Golden("produce_request_v10_librdkafka", 2, RDKAFKA, (TOPIC,)),
    Golden("produce_request_v11_java", 7, JAVA, (TOPIC,)),
    Golden("produce_request_v7_aiokafka", 3, "aiokafka-producer-1", (TOPIC,)),
    Golden("produce_request_v9_kafka_python", 4, "kafka-python-producer-1", (TOPIC,)),
    Golden("sync_group_request_v3_aiokafka", 4, AIOKAFKA, (GROUP,)),
    Golden("sync_group_request_v3_librdkafka", 5, RDKAFKA, (GROUP,)),
    Golden("sync_group_request_v5_java", 9, JAVA, (GROUP,)),
    Golden("sync_group_request_v5_kafka_python", 4, KAFKA_PYTHON, (GROUP,)),
)


def by_client(client: str) -> list[Golden]:
    """One client's frames in the order it sent them (correlation ids)."""
    return sorted((g for g in GOLDEN if g.client == client), key=lambda g: g.correlation_id)
