"""Topic and config administration, including the error cases clients rely on."""

from __future__ import annotations

from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.wire import BROKER_RESOURCE, TOPIC_RESOURCE, err

# Topic configs whose values and sources are compared (the full list differs by design).
WATCHED_CONFIGS = [
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "compression.type",
]


def _configs(entries: Any, names: list[str]) -> dict[str, Any]:
    out = {}
    for entry in entries or ():
        if entry.name in names:
            out[entry.name] = {
                "value": entry.value,
                "read_only": entry.read_only,
                "source": int(entry.config_source),
                "sensitive": entry.is_sensitive,
            }
    return dict(sorted(out.items()))


@scenario()
def api_versions(ctx: Ctx) -> None:
    """ApiVersions v3 and v0: error code and the advertised (min, max) per API key;
    v3 and v4: the transaction.version feature (supported and finalized)."""
    client = ctx.raw()
    seen = {}
    for version in (0, 3):
        response = wire.api_versions(client, version)
        ctx.record(f"v{version}.error", err(response.error_code))
        seen[version] = {
            str(k.api_key): f"{int(k.min_version)}..{int(k.max_version)}"
            for k in sorted(response.api_keys, key=lambda k: k.api_key)
        }
    ctx.record("apis", seen[3])
    ctx.record("v0_lists_the_same", seen[0] == seen[3])
    # The feature clients read to choose transactions v2 (KIP-890); the others
    # (metadata.version, kraft.version, ...) are KRaft's.
    for version in (3, 4):
        _record_transaction_version(ctx, version, wire.api_versions(client, version))


def _record_transaction_version(ctx: Ctx, version: int, response: Any) -> None:
    ctx.record(
        f"v{version}.transaction.version",
        {
            "supported": [
                [int(f.min_version), int(f.max_version)]
                for f in response.supported_features
                if f.name == "transaction.version"
            ],
            "finalized": [
                [int(f.min_version_level), int(f.max_version_level)]
                for f in response.finalized_features
                if f.name == "transaction.version"
            ],
        },
    )


@scenario()
def api_versions_unsupported(ctx: Ctx) -> None:
    """ApiVersions at a version the broker does not know: UNSUPPORTED_VERSION in v0 form."""
    import struct

    client = ctx.raw()
    frame = struct.pack(">hhih", wire.API_VERSIONS, 99, 4242, 4) + b"conf" + b"\x00\x00"
    client.send_raw(struct.pack(">i", len(frame)) + frame)
    body = client.read_frame()
    correlation, error = struct.unpack_from(">ih", body, 0)
    (count,) = struct.unpack_from(">i", body, 6)
    ctx.record("correlation_echoed", correlation == 4242)
    ctx.record("error", err(error))
    versions = {}
    for i in range(count):
        key, low, high = struct.unpack_from(">hhh", body, 10 + 6 * i)
        versions[key] = (low, high)
    ctx.record("lists_api_versions", 18 in versions)
    ctx.record("api_versions_range", list(versions.get(18, ())))


@scenario()
def metadata_shape(ctx: Ctx) -> None:
    """Metadata v12 for a 3-partition topic: brokers, controller, partitions, leaders, ids."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "md-shape", 3).error_code))
    ctx.check(wire.wait_for_topic(client, "md-shape", 3), "topic has leaders")
    response = wire.metadata(client, ["md-shape"])
    brokers = [
        {
            "node": ctx.ident("node", b.node_id),
            "host": b.host,
            "port_is_listener": f"{b.host}:{b.port}" == ctx.bootstrap,
            "rack": b.rack,
        }
        for b in response.brokers
    ]
    ctx.record("brokers", brokers)
    ctx.record("cluster_id_set", bool(response.cluster_id))
    ctx.record("controller", ctx.ident("node", response.controller_id))
    topic = response.topics[0]
    ctx.record("topic.error", err(topic.error_code))
    ctx.record("topic.name", topic.name)
    ctx.record("topic.is_internal", topic.is_internal)
    ctx.record("topic.id_set", str(topic.topic_id) != "00000000-0000-0000-0000-000000000000")
    ctx.record(
        "partitions",
        [
            {
                "index": p.partition_index,
                "error": err(p.error_code),
                "leader": ctx.ident("node", p.leader_id),
                "leader_epoch_non_negative": p.leader_epoch >= 0,
                "replicas": [ctx.ident("node", r) for r in p.replica_nodes],
                "isr": [ctx.ident("node", r) for r in p.isr_nodes],
                "offline": list(p.offline_replicas),
            }
            for p in sorted(topic.partitions, key=lambda p: p.partition_index)
        ],
    )
    again = wire.metadata(client, ["md-shape"])
    ctx.record("topic_id_stable", again.topics[0].topic_id == topic.topic_id)
    # All-topics metadata lists the new topic (internal topics are not compared).
    everything = wire.metadata(client, None)
    ctx.record("all_topics_contains_it", "md-shape" in {t.name for t in everything.topics})
    ctx.record(
        "all_topics_non_internal",
        sorted(t.name for t in everything.topics if not t.is_internal and t.name.startswith("md-")),
    )


@scenario()
def metadata_unknown_topic(ctx: Ctx) -> None:
    """Metadata for an unknown topic without and with auto-creation; an invalid name."""
    client = ctx.raw()
    response = wire.metadata(client, ["md-unknown"], auto_create=False)
    ctx.record("no_auto_create.error", err(response.topics[0].error_code))
    ctx.record("no_auto_create.partitions", len(response.topics[0].partitions))
    response = wire.metadata(client, ["md-auto"], auto_create=True)
    ctx.record("auto_create.first_error", err(response.topics[0].error_code))
    ctx.check(wire.wait_for_topic(client, "md-auto", 1), "auto-created topic has a leader")
    response = wire.metadata(client, ["md-auto"], auto_create=False)
    ctx.record("auto_create.later_error", err(response.topics[0].error_code))
    ctx.record("auto_create.partitions", len(response.topics[0].partitions))
    response = wire.metadata(client, ["bad name!"], auto_create=True)
    ctx.record("invalid_name.error", err(response.topics[0].error_code))


@scenario()
def create_topics_errors(ctx: Ctx) -> None:
    """CreateTopics: success, existing topic, bad partition counts, replication, names,
    unknown and invalid configs, validate-only, and a batch that mixes them."""
    client = ctx.raw()

    def one(step: str, **topic: Any) -> None:
        response = wire.create_topics(client, [topic], validate_only=topic.pop("validate", False))
        result = response.topics[0]
        ctx.record(
            step,
            {
                "error": err(result.error_code),
                "has_message": bool(result.error_message),
                "partitions": result.num_partitions,
                "replication_factor": result.replication_factor,
            },
        )

    one("ok", name="ct-ok", partitions=3)
    one("existing", name="ct-ok", partitions=3)
    one("zero_partitions", name="ct-zero", partitions=0)
    one("negative_partitions", name="ct-neg", partitions=-5)
    one("default_partitions", name="ct-default", partitions=-1)
    one("replication_3", name="ct-rf3", partitions=1, replication_factor=3)
    one("replication_0", name="ct-rf0", partitions=1, replication_factor=0)
    one("invalid_name", name="bad name!", partitions=1)
    one("dot_name", name="..", partitions=1)
    one("long_name", name="t" * 250, partitions=1)
    one("empty_name", name="", partitions=1)
    one("unknown_config", name="ct-cfg1", partitions=1, configs={"no.such.config": "1"})
    one("invalid_config_value", name="ct-cfg2", partitions=1, configs={"retention.ms": "abc"})
    one(
        "invalid_enum_value",
        name="ct-cfg3",
        partitions=1,
        configs={"cleanup.policy": "shred"},
    )
    one("valid_config", name="ct-cfg4", partitions=1, configs={"retention.ms": "3600000"})
    one("validate_only", name="ct-validate", partitions=2, validate=True)
    one("validate_only_existing", name="ct-ok", partitions=2, validate=True)
    md = wire.metadata(client, ["ct-validate", "ct-zero", "ct-cfg1", "ct-cfg4"])
    ctx.record("not_created_by_failures", {t.name: err(t.error_code) for t in md.topics})
    # A batch: one good, one duplicate of the good one in the same request.
    response = wire.create_topics(
        client,
        [{"name": "ct-batch", "partitions": 1}, {"name": "ct-ok", "partitions": 1}],
    )
    ctx.record("batch", {t.name: err(t.error_code) for t in response.topics})
    response = wire.create_topics(
        client,
        [{"name": "ct-dup", "partitions": 1}, {"name": "ct-dup", "partitions": 1}],
    )
    ctx.record("duplicate_in_request", sorted(err(t.error_code) for t in response.topics))


@scenario()
def create_topics_returns_configs(ctx: Ctx) -> None:
    """CreateTopics v5+ returns the new topic's configs (values, sources, read-only flag)."""
    client = ctx.raw()
    response = wire.create_topics(
        client,
        [{"name": "ct-configs", "partitions": 2, "configs": {"retention.ms": "86400000"}}],
    )
    result = response.topics[0]
    ctx.record("error", err(result.error_code))
    ctx.record("configs", _configs(result.configs, WATCHED_CONFIGS))
    ctx.record("config_count_nonzero", bool(result.configs))
    ctx.record("topic_id_set", str(result.topic_id) != "00000000-0000-0000-0000-000000000000")


@scenario()
def delete_topics(ctx: Ctx) -> None:
    """DeleteTopics: existing, unknown, then the topic is gone and can be created again."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "dt-one", 2).error_code))
    ctx.check(wire.wait_for_topic(client, "dt-one", 2), "topic ready")
    wire.produce(client, "dt-one", wire.encode_batch([b"a", b"b"]))
    response = wire.delete_topics(client, ["dt-one", "dt-unknown"])
    ctx.record(
        "delete",
        {r.name: err(r.error_code) for r in response.responses},
    )
    # Kafka's broker learns of the deletion from its metadata image, which may trail the
    # controller's answer: read until the topic is gone (or 10 s pass).
    ctx.record(
        "metadata_after",
        wire.wait_changed(
            lambda: err(wire.metadata(client, ["dt-one"]).topics[0].error_code),
            "none",
            timeout_s=10.0,
        ),
    )
    created = wire.create_topic(client, "dt-one", 1)
    ctx.record("recreate", err(created.error_code))
    ctx.check(wire.wait_for_topic(client, "dt-one", 1), "recreated topic ready")
    part = wire.fetch_one(client, "dt-one", 0)
    ctx.record("recreated_is_empty", {"error": err(part.error_code), "hw": part.high_watermark})


@scenario()
def create_partitions(ctx: Ctx) -> None:
    """CreatePartitions: grow, validate-only, same count, shrink, unknown topic."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "cp-grow", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "cp-grow", 1), "topic ready")
    for step, count, validate in [
        ("validate_only_3", 3, True),
        ("grow_to_3", 3, False),
        ("same_count", 3, False),
        ("shrink_to_2", 2, False),
        ("zero", 0, False),
    ]:
        result = wire.create_partitions(client, "cp-grow", count, validate)
        ctx.record(
            step, {"error": err(result.error_code), "has_message": bool(result.error_message)}
        )
    ctx.check(wire.wait_for_topic(client, "cp-grow", 3), "three partitions have leaders")
    md = wire.metadata(client, ["cp-grow"])
    ctx.record("partitions_after", sorted(p.partition_index for p in md.topics[0].partitions))
    result = wire.create_partitions(client, "cp-unknown", 4)
    ctx.record("unknown_topic", err(result.error_code))
    part = wire.produce(client, "cp-grow", wire.encode_batch([b"x"]), partition=2)
    ctx.record(
        "produce_to_new_partition", {"error": err(part.error_code), "offset": part.base_offset}
    )


@scenario()
def describe_configs(ctx: Ctx) -> None:
    """DescribeConfigs: a topic with an override (value and source), selected keys,
    an unknown topic, an unknown key, and the broker resource."""
    client = ctx.raw()
    created = wire.create_topic(client, "dc-topic", 1, retention_ms="7200000")
    ctx.record("create", err(created.error_code))
    ctx.check(wire.wait_for_topic(client, "dc-topic", 1), "topic ready")
    result = wire.describe_configs(client, TOPIC_RESOURCE, "dc-topic")
    ctx.record("topic.error", err(result.error_code))
    ctx.record("topic.configs", _configs(result.configs, WATCHED_CONFIGS))
    result = wire.describe_configs(client, TOPIC_RESOURCE, "dc-topic", ["retention.ms"])
    ctx.record("selected.names", sorted(c.name for c in result.configs))
    result = wire.describe_configs(client, TOPIC_RESOURCE, "dc-topic", ["no.such.config"])
    ctx.record(
        "unknown_key", {"error": err(result.error_code), "names": [c.name for c in result.configs]}
    )
    result = wire.describe_configs(client, TOPIC_RESOURCE, "dc-unknown")
    ctx.record("unknown_topic.error", err(result.error_code))
    md = wire.metadata(client, None)
    node = md.brokers[0].node_id
    result = wire.describe_configs(client, BROKER_RESOURCE, str(node), ["num.partitions"])
    ctx.record(
        "broker.num_partitions",
        {
            "error": err(result.error_code),
            "configs": {c.name: c.value for c in result.configs},
        },
    )
    result = wire.describe_configs(
        client, BROKER_RESOURCE, str(node), ["advertised.listeners", "listeners"]
    )
    ctx.record(
        "broker.listeners_present",
        {"error": err(result.error_code), "names": sorted(c.name for c in result.configs)},
    )
    result = wire.describe_configs(client, BROKER_RESOURCE, "999", ["num.partitions"])
    ctx.record("other_broker.error", err(result.error_code))


@scenario()
def alter_configs(ctx: Ctx) -> None:
    """AlterConfigs (legacy, whole set) and IncrementalAlterConfigs: SET, DELETE, APPEND,
    SUBTRACT, unknown names, invalid values, unknown topic, validate-only."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "ac-topic", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "ac-topic", 1), "topic ready")

    def current() -> dict[str, Any]:
        result = wire.describe_configs(client, TOPIC_RESOURCE, "ac-topic")
        return {
            name: value["value"]
            for name, value in _configs(result.configs, WATCHED_CONFIGS).items()
            if value["source"] == 1  # DYNAMIC_TOPIC_CONFIG: the overrides
        }

    before = current()
    result = wire.alter_configs(client, "ac-topic", {"retention.ms": "1000000"})
    ctx.record("legacy.set", err(result.error_code))
    before = wire.wait_changed(current, before)
    ctx.record("legacy.after_set", before)
    result = wire.alter_configs(client, "ac-topic", {"max.message.bytes": "2000000"})
    ctx.record("legacy.replace", err(result.error_code))
    ctx.record("legacy.after_replace", wire.wait_changed(current, before))
    result = wire.alter_configs(client, "ac-topic", {"no.such.config": "1"})
    ctx.record("legacy.unknown", err(result.error_code))
    result = wire.alter_configs(client, "ac-topic", {"retention.ms": "soon"})
    ctx.record("legacy.invalid", err(result.error_code))
    result = wire.alter_configs(client, "ac-unknown", {"retention.ms": "1"})
    ctx.record("legacy.unknown_topic", err(result.error_code))
    result = wire.alter_configs(client, "ac-topic", {"retention.ms": "5"}, validate_only=True)
    ctx.record("legacy.validate_only", err(result.error_code))
    ctx.record("legacy.after_validate_only", current())

    steps = [
        ("incr.set", [("retention.ms", 0, "3000000")]),
        ("incr.set_second", [("retention.bytes", 0, "1048576")]),
        ("incr.delete", [("retention.bytes", 1, None)]),
        ("incr.append", [("cleanup.policy", 2, "compact")]),
        ("incr.subtract", [("cleanup.policy", 3, "delete")]),
        ("incr.append_non_list", [("retention.ms", 2, "5")]),
        ("incr.unknown", [("no.such.config", 0, "1")]),
        ("incr.invalid", [("retention.ms", 0, "-5x")]),
        ("incr.delete_unset", [("segment.ms", 1, None)]),
        ("incr.bad_operation", [("retention.ms", 9, "1")]),
        ("incr.deprecated_message_format_version", [("message.format.version", 0, "0.10.0")]),
    ]
    state = current()
    for step, ops in steps:
        result = wire.incremental_alter_configs(client, "ac-topic", ops)
        ctx.record(step, err(result.error_code))
        changed = err(result.error_code) == "none"
        state = wire.wait_changed(current, state) if changed else current()
        ctx.record(f"{step}.after", state)
    result = wire.incremental_alter_configs(client, "ac-unknown", [("retention.ms", 0, "1")])
    ctx.record("incr.unknown_topic", err(result.error_code))


@scenario()
def partitions_per_request_bounds(ctx: Ctx) -> None:
    """The controller's per-request bounds (all validate-only): CreateTopics past 10,000
    partitions in all, or past 10,000 metadata records (10,000 partitions plus the topic's
    record), refuses every topic; CreatePartitions adding 10,000 passes, 10,001 does not."""
    client = ctx.raw()

    def answers(topics: list[dict[str, Any]]) -> list[Any]:
        response = wire.create_topics(client, topics, validate_only=True)
        return [(t.name, err(t.error_code), t.error_message) for t in response.topics]

    ctx.record(
        "int32_max_and_a_valid_topic",
        answers(
            [{"name": "bound-a", "partitions": 2**31 - 1}, {"name": "bound-b", "partitions": 1}]
        ),
    )
    ctx.record(
        "split_10001",
        answers([{"name": "bound-a", "partitions": 10_000}, {"name": "bound-b", "partitions": 1}]),
    )
    ctx.record("one_topic_10000", answers([{"name": "bound-a", "partitions": 10_000}]))
    ctx.record("one_topic_9999", answers([{"name": "bound-a", "partitions": 9_999}]))
    ctx.record("create", err(wire.create_topic(client, "bound-grow", 1).error_code))
    ctx.check(wire.wait_for_topic(client, "bound-grow", 1), "topic ready")
    for step, count in [("add_10000", 10_001), ("add_10001", 10_002), ("int32_max", 2**31 - 1)]:
        result = wire.create_partitions(client, "bound-grow", count, validate_only=True)
        ctx.record(step, (err(result.error_code), result.error_message))


@scenario()
def newest_cluster_versions(ctx: Ctx) -> None:
    """Metadata v13 (a top-level error code, KIP-1102) and DescribeCluster v2 (fenced
    brokers, KIP-1073) as Kafka 4.4 answers them."""
    client = ctx.raw()
    ctx.record("create", err(wire.create_topic(client, "md-v13", 2).error_code))
    ctx.check(wire.wait_for_topic(client, "md-v13", 2), "topic has leaders")
    response = wire.metadata(client, ["md-v13", "md-v13-unknown"], version=13)
    ctx.record("metadata.error", err(response.error_code))
    ctx.record(
        "metadata.topics",
        [(t.name, err(t.error_code), len(t.partitions)) for t in response.topics],
    )
    ctx.record("metadata.brokers", len(response.brokers))
    for include_fenced in (False, True):
        cluster = wire.describe_cluster(client, version=2, include_fenced_brokers=include_fenced)
        ctx.record(
            f"describe_cluster.fenced_{include_fenced}",
            {
                "error": err(cluster.error_code),
                "endpoint_type": cluster.endpoint_type,
                "brokers": [(ctx.ident("node", b.broker_id), b.is_fenced) for b in cluster.brokers],
            },
        )
    for endpoint_type in (2, 3):
        other = wire.describe_cluster(client, version=2, endpoint_type=endpoint_type)
        ctx.record(
            f"describe_cluster.endpoint_type_{endpoint_type}",
            {
                "error": err(other.error_code),
                "message": other.error_message,
                "brokers": len(other.brokers),
            },
        )


@scenario()
def api_versions_v5_names_the_node(ctx: Ctx) -> None:
    """ApiVersions v5 (KIP-1242): a client that names the cluster id and node id it means
    to reach is told REBOOTSTRAP_REQUIRED when the broker is another cluster or node."""
    client = ctx.raw()
    described = wire.metadata(client, [])
    cluster_id, node_id = described.cluster_id, described.brokers[0].node_id
    cases = {
        "neither": (None, -1),
        "both_right": (cluster_id, node_id),
        "cluster_wrong": ("another-cluster-id", node_id),
        "node_wrong": (cluster_id, node_id + 7),
        "cluster_only": (cluster_id, -1),
        "node_only": (None, node_id),
        "cluster_only_wrong": ("another-cluster-id", -1),
    }
    for name, (cluster, node) in cases.items():
        response = wire.api_versions(ctx.raw(), version=5, cluster_id=cluster, node_id=node)
        ctx.record(
            name,
            {
                "error": err(response.error_code),
                "lists_apis": len(response.api_keys) > 0,
                "lists_itself": any(k.api_key == wire.API_VERSIONS for k in response.api_keys),
            },
        )


# Topic configs contextplane accepts, compared with their synonyms (KIP-226) and types.
SYNONYM_CONFIGS = [
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "unclean.leader.election.enable",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
]


@scenario()
def describe_configs_synonyms(ctx: Ctx) -> None:
    """DescribeConfigs with synonyms and documentation: each topic config's source, type
    and the broker settings it falls back to, for an override and for defaults."""
    client = ctx.raw()
    created = wire.create_topic(client, "dc-synonyms", 1, retention_ms="7200000")
    ctx.record("create", err(created.error_code))
    ctx.check(wire.wait_for_topic(client, "dc-synonyms", 1), "topic ready")
    result = wire.describe_configs(
        client,
        TOPIC_RESOURCE,
        "dc-synonyms",
        SYNONYM_CONFIGS,
        include_synonyms=True,
        include_documentation=True,
    )
    ctx.record("error", err(result.error_code))
    ctx.record(
        "configs",
        {
            c.name: {
                "source": c.config_source,
                "type": c.config_type,
                "read_only": c.read_only,
                "sensitive": c.is_sensitive,
                "documented": bool(c.documentation),
                "synonyms": [(s.name, s.source) for s in c.synonyms],
            }
            for c in result.configs
        },
    )
    # A topic with no override: what each default falls back to.
    created = wire.create_topic(client, "dc-synonyms-defaults", 1)
    ctx.record("create_defaults", err(created.error_code))
    ctx.check(wire.wait_for_topic(client, "dc-synonyms-defaults", 1), "topic ready")
    result = wire.describe_configs(
        client,
        TOPIC_RESOURCE,
        "dc-synonyms-defaults",
        ["retention.ms", "segment.ms", "flush.ms"],
        include_synonyms=True,
    )
    ctx.record(
        "defaults",
        {
            c.name: {
                "source": c.config_source,
                "documentation": c.documentation,
                "synonyms": [(s.name, s.source) for s in c.synonyms],
            }
            for c in result.configs
        },
    )
