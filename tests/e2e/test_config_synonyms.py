"""DescribeConfigs' synonyms, sources, types and documentation (KIP-226), as Kafka
reports them: a topic override first, then the broker settings given, then the default
of the broker setting the topic config falls back to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient

DESCRIBE_CONFIGS, CREATE_TOPICS = 32, 19
TOPIC_RESOURCE = 2
TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5
INT, LONG, LIST = 3, 5, 7


def _describe(
    client: RawClient, topic: str, keys: list[str], documentation: bool = False
) -> dict[str, Any]:
    response = client.request(
        DESCRIBE_CONFIGS,
        4,
        resources=[
            {"resource_type": TOPIC_RESOURCE, "resource_name": topic, "configuration_keys": keys}
        ],
        include_synonyms=True,
        include_documentation=documentation,
    )
    return {c.name: c for c in response.results[0].configs}


def _create(client: RawClient, topic: str, configs: dict[str, str]) -> None:
    created = client.request(
        CREATE_TOPICS,
        5,
        topics=[
            {
                "name": topic,
                "num_partitions": 1,
                "replication_factor": 1,
                "assignments": [],
                "configs": [{"name": n, "value": v} for n, v in configs.items()],
            }
        ],
        timeout=10_000,
        validate_only=False,
    )
    assert created.topics[0].error_code == 0


def _synonyms(entry: Any) -> list[tuple[str, str, int]]:
    return [(s.name, s.value, s.source) for s in entry.synonyms]


def test_synonyms_name_the_override_the_given_broker_setting_and_the_default(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start(**{"log.retention.hours": "48", "log.cleanup.policy": "compact"})
    with RawClient(broker.bootstrap) as client:
        _create(client, "synonyms", {"segment.bytes": "2097152"})
        configs = _describe(
            client,
            "synonyms",
            ["retention.ms", "cleanup.policy", "segment.bytes", "max.message.bytes"],
        )
    retention = configs["retention.ms"]
    # Kafka drops the synonyms before the first one's own (ConfigHelper.configSynonyms):
    # with only log.retention.hours given, retention.ms lists none, so its source is
    # DEFAULT_CONFIG, though its value is the given one (Kafka 4.4 answers the same).
    assert (retention.value, retention.config_source) == ("172800000", DEFAULT_CONFIG)
    assert _synonyms(retention) == []
    assert retention.config_type == LONG
    policy = configs["cleanup.policy"]
    assert (policy.value, policy.config_source) == ("compact", STATIC_BROKER_CONFIG)
    assert _synonyms(policy) == [
        ("log.cleanup.policy", "compact", STATIC_BROKER_CONFIG),
        ("log.cleanup.policy", "delete", DEFAULT_CONFIG),
    ]
    assert policy.config_type == LIST
    segment = configs["segment.bytes"]
    assert (segment.value, segment.config_source) == ("2097152", TOPIC_CONFIG)
    assert _synonyms(segment) == [
        ("segment.bytes", "2097152", TOPIC_CONFIG),
        ("log.segment.bytes", str(1024**3), DEFAULT_CONFIG),
    ]
    assert configs["max.message.bytes"].config_source == DEFAULT_CONFIG
    assert configs["max.message.bytes"].config_type == INT
    assert not any(c.documentation for c in configs.values())  # not asked for


def test_documentation_only_when_asked(shared_broker: InProcessBroker) -> None:
    with RawClient(shared_broker.bootstrap) as client:
        _create(client, "documented", {})
        configs = _describe(client, "documented", [], documentation=True)
    assert len(configs) == 42  # Kafka's 37 and contextplane's own 5
    assert all(c.documentation for c in configs.values())


def test_configs_not_acted_on_are_described_and_checked_as_kafka(
    shared_broker: InProcessBroker,
) -> None:
    with RawClient(shared_broker.bootstrap) as client:
        _create(client, "not-acted-on", {"segment.index.bytes": "4096"})
        configs = _describe(client, "not-acted-on", [], documentation=True)

        def alter(name: str, value: str) -> tuple[int, str | None]:
            change = {"name": name, "config_operation": 0, "value": value}
            resource = {"resource_type": TOPIC_RESOURCE, "resource_name": "not-acted-on"}
            answer = client.request(
                44, 1, resources=[{**resource, "configs": [change]}], validate_only=True
            )
            return answer.responses[0].error_code, answer.responses[0].error_message

        refusals = [
            alter("remote.storage.enable", "true"),
            alter("compression.gzip.level", "0"),
            alter("preallocate", "yes"),
        ]
        accepted = [alter("remote.storage.enable", "false"), alter("compression.zstd.level", "-5")]
        broker = client.request(
            DESCRIBE_CONFIGS,
            4,
            resources=[
                {
                    "resource_type": 4,
                    "resource_name": "1",
                    "configuration_keys": ["ssl.key.password", "background.threads"],
                }
            ],
            include_synonyms=True,
            include_documentation=True,
        )
    assert (
        len(set(configs) - {n for n in configs if n.startswith(("confluent.", "contextplane."))})
        == 37
    )
    index = configs["segment.index.bytes"]
    assert (index.value, index.config_source, index.config_type) == ("4096", TOPIC_CONFIG, INT)
    assert _synonyms(index) == [
        ("segment.index.bytes", "4096", TOPIC_CONFIG),
        ("log.index.size.max.bytes", "10485760", DEFAULT_CONFIG),
    ]
    level = configs["compression.gzip.level"]
    assert (level.value, level.config_source, level.read_only, level.is_sensitive) == (
        "-1",
        DEFAULT_CONFIG,
        False,
        False,
    )
    assert level.documentation.startswith("Not acted on by contextplane")
    remote = configs["remote.storage.enable"]
    assert (remote.value, remote.config_type, _synonyms(remote)) == ("false", 1, [])
    invalid_config = 40
    assert refusals == [
        (
            invalid_config,
            "Tiered Storage functionality is disabled in the broker. Topic cannot be "
            "configured with remote log storage.",
        ),
        (
            invalid_config,
            "Invalid value 0 for configuration compression.gzip.level: Value must be between "
            "1 and 9 or equal to -1",
        ),
        (
            invalid_config,
            "Invalid value yes for configuration preallocate: Expected value to be either "
            "true or false",
        ),
    ]
    assert accepted == [(0, None), (0, None)]
    described = {c.name: c for c in broker.results[0].configs}
    password = described["ssl.key.password"]
    assert (password.value, password.is_sensitive, password.config_type) == (None, True, 9)
    threads = described["background.threads"]
    assert (threads.value, threads.config_source) == ("10", DEFAULT_CONFIG)
    assert _synonyms(threads) == [("background.threads", "10", DEFAULT_CONFIG)]
    assert threads.documentation.startswith("No equivalent in contextplane")


def test_contextplane_own_broker_settings_are_described_with_secrets_hidden(
    start: Callable[..., InProcessBroker],
) -> None:
    broker = start(
        **{
            "upload.interval.ms": "2500",
            "contextplane.masking.hmac.key": "00ff00ff",
            "console.context.url": "http://ops:hunter2@127.0.0.1:1/?token=t0k&region=a",
        }
    )
    with RawClient(broker.bootstrap) as client:
        response = client.request(
            DESCRIBE_CONFIGS,
            4,
            resources=[{"resource_type": 4, "resource_name": "1", "configuration_keys": None}],
            include_synonyms=True,
            include_documentation=True,
        )
    assert response.results[0].error_code == 0
    described = {c.name: c for c in response.results[0].configs}
    upload = described["upload.interval.ms"]
    assert (upload.value, upload.config_source, upload.read_only, upload.config_type) == (
        "2500",
        STATIC_BROKER_CONFIG,
        True,
        LONG,
    )
    assert _synonyms(upload) == [
        ("upload.interval.ms", "2500", STATIC_BROKER_CONFIG),
        ("upload.interval.ms", "5000", DEFAULT_CONFIG),
    ]
    assert "the oldest pending byte has waited this long" in upload.documentation
    proxy = described["zone.produce.proxy.enable"]
    assert (proxy.value, proxy.config_source, proxy.config_type) == ("false", DEFAULT_CONFIG, 1)
    assert _synonyms(proxy) == [("zone.produce.proxy.enable", "false", DEFAULT_CONFIG)]
    wal = described["wal.url"]
    assert (wal.value, wal.config_source, _synonyms(wal)) == ("", DEFAULT_CONFIG, [])
    key = described["contextplane.masking.hmac.key"]
    assert (key.value, key.is_sensitive, key.config_type) == (None, True, 9)
    assert _synonyms(key) == [("contextplane.masking.hmac.key", None, STATIC_BROKER_CONFIG)]
    url = described["console.context.url"]
    shown = "http://ops:***@127.0.0.1:1/?token=***&region=a"
    assert (url.value, url.is_sensitive) == (shown, False)
    assert _synonyms(url) == [("console.context.url", shown, STATIC_BROKER_CONFIG)]
