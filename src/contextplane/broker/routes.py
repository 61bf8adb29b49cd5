"""`ROUTES` is the whole list of Kafka APIs a broker answers (ApiVersions is computed
from it)."""

from __future__ import annotations

from contextplane.broker import authorization as authz
from contextplane.broker import authorization_ops as authz_ops
from contextplane.broker import authorization_txn as authz_txn
from contextplane.broker.authorization import NeedsOf, Refusal
from contextplane.broker.handlers import (
    acls,
    admin,
    cluster,
    config_resources,
    configs,
    consumer_groups,
    fetch,
    groups,
    log_dirs,
    mirror,
    offsets,
    produce,
    producer_ids,
    quotas,
    sasl,
    scram,
    share_fetch,
    share_groups,
    share_offsets,
    transactions,
    transactions_admin,
)
from contextplane.broker.pipeline import Handler, Route

# (api key, lowest version, highest version, handler, what it needs authorized, how a
# refused gate is answered). The floors are those Kafka 4.x keeps (KIP-896); the
# ceilings are the versions whose semantics are implemented. The authorization column
# follows Kafka's KafkaApis (broker/authorization.py).
ROUTES: list[tuple[int, int, int, Handler, NeedsOf, Refusal]] = [
    (0, 3, 13, produce.produce, authz.produce, authz.refuse_produce),
    (1, 4, 18, fetch.fetch, authz.fetch, authz.refuse_top_level),
    (2, 1, 11, offsets.list_offsets, authz.list_offsets, authz.refuse_top_level),
    (3, 0, 13, cluster.metadata, authz.metadata, authz.refuse_top_level),
    (8, 2, 10, groups.offset_commit, authz.offset_commit, authz.refuse_offset_commit),
    (9, 1, 10, groups.offset_fetch, authz.offset_fetch, authz.refuse_top_level),
    (10, 0, 6, groups.find_coordinator, authz.find_coordinator, authz.refuse_top_level),
    (11, 0, 9, groups.join_group, authz.group_member, authz.refuse_top_level),
    (12, 0, 4, groups.heartbeat, authz.group_member, authz.refuse_top_level),
    (13, 0, 5, groups.leave_group, authz.group_member, authz.refuse_top_level),
    (14, 0, 5, groups.sync_group, authz.group_member, authz.refuse_top_level),
    (15, 0, 6, groups.describe_groups, authz.describe_groups, authz.refuse_top_level),
    (16, 0, 5, groups.list_groups, authz.list_groups, authz.refuse_top_level),
    (17, 0, 1, sasl.sasl_handshake, authz.nothing, authz.refuse_top_level),
    (18, 0, 5, cluster.api_versions, authz.nothing, authz.refuse_top_level),
    (19, 2, 7, admin.create_topics, authz.create_topics, authz.refuse_top_level),
    (20, 1, 6, admin.delete_topics, authz.delete_topics, authz.refuse_top_level),
    (21, 0, 2, offsets.delete_records, authz.delete_records, authz.refuse_top_level),
    (22, 0, 5, producer_ids.init_producer_id, authz.init_producer_id, authz.refuse_producer_id),
    (
        24,
        0,
        5,
        transactions.add_partitions_to_txn,
        authz_txn.add_partitions_to_txn,
        authz_txn.refuse_add_partitions,
    ),
    (
        25,
        0,
        4,
        transactions.add_offsets_to_txn,
        authz_txn.add_offsets_to_txn,
        authz.refuse_top_level,
    ),
    (26, 0, 5, transactions.end_txn, authz_txn.end_txn, authz.refuse_top_level),
    (
        27,
        1,
        2,
        transactions_admin.write_txn_markers,
        authz_txn.write_txn_markers,
        transactions_admin.refuse_write_txn_markers,
    ),
    (
        28,
        0,
        6,
        transactions.txn_offset_commit,
        authz_txn.txn_offset_commit,
        authz.refuse_offset_commit,
    ),
    (29, 1, 3, acls.describe_acls, authz.describe_acls, authz.refuse_top_level),
    (30, 1, 3, acls.create_acls, authz.alter_acls, authz.refuse_create_acls),
    (31, 1, 3, acls.delete_acls, authz.alter_acls, authz.refuse_delete_acls),
    (32, 1, 4, configs.describe_configs, authz.describe_configs, authz.refuse_top_level),
    (33, 0, 2, configs.alter_configs, authz.alter_configs, authz.refuse_top_level),
    (35, 1, 5, log_dirs.describe_log_dirs, authz_ops.describe_log_dirs, log_dirs.refuse),
    (36, 0, 2, sasl.sasl_authenticate, authz.nothing, authz.refuse_top_level),
    (37, 0, 3, admin.create_partitions, authz.create_partitions, authz.refuse_top_level),
    (42, 0, 3, groups.delete_groups, authz.delete_groups, authz.refuse_top_level),
    (44, 0, 1, configs.incremental_alter_configs, authz.alter_configs, authz.refuse_top_level),
    (47, 0, 0, groups.offset_delete, authz.offset_delete, authz.refuse_top_level),
    (
        48,
        0,
        1,
        quotas.describe_client_quotas,
        authz.describe_client_quotas,
        authz.refuse_describe_client_quotas,
    ),
    (
        49,
        0,
        1,
        quotas.alter_client_quotas,
        authz.alter_client_quotas,
        authz.refuse_alter_client_quotas,
    ),
    (
        50,
        0,
        0,
        scram.describe_user_scram_credentials,
        authz.describe_user_scram_credentials,
        authz.refuse_top_level,
    ),
    (
        51,
        0,
        0,
        scram.alter_user_scram_credentials,
        authz.alter_user_scram_credentials,
        authz.refuse_alter_user_scram_credentials,
    ),
    (60, 0, 2, cluster.describe_cluster, authz.describe_cluster, authz.refuse_top_level),
    (
        61,
        0,
        0,
        transactions_admin.describe_producers,
        authz_txn.describe_producers,
        authz.refuse_top_level,
    ),
    (
        65,
        0,
        0,
        transactions_admin.describe_transactions,
        authz_txn.describe_transactions,
        authz.refuse_top_level,
    ),
    (
        66,
        0,
        2,
        transactions_admin.list_transactions,
        authz_txn.list_transactions,
        authz.refuse_top_level,
    ),
    (
        68,
        0,
        1,
        consumer_groups.consumer_group_heartbeat,
        authz.group_member,
        authz.refuse_top_level,
    ),
    (
        69,
        0,
        1,
        consumer_groups.consumer_group_describe,
        authz.consumer_group_describe,
        authz.refuse_top_level,
    ),
    (
        74,
        0,
        1,
        config_resources.list_config_resources,
        authz_ops.list_config_resources,
        config_resources.refuse,
    ),
    (76, 1, 1, share_groups.share_group_heartbeat, authz.group_member, authz.refuse_top_level),
    (
        77,
        1,
        1,
        share_groups.share_group_describe,
        authz.consumer_group_describe,
        authz.refuse_top_level,
    ),
    (78, 1, 2, share_fetch.share_fetch, authz.share_group_member, authz.refuse_top_level),
    (79, 1, 2, share_fetch.share_acknowledge, authz.share_group_member, authz.refuse_top_level),
    (90, 0, 1, share_offsets.describe, authz.describe_share_offsets, authz.refuse_top_level),
    (91, 0, 0, share_offsets.alter, authz.alter_share_offsets, authz.refuse_top_level),
    (92, 0, 0, share_offsets.delete, authz.delete_share_offsets, authz.refuse_top_level),
]


def build_routes() -> list[Route]:
    # Schemas load on a version's first request: importing every version's at start cost
    # seconds (tests/unit/test_routes.py checks each advertised version has them).
    return [Route(*route) for route in ROUTES] + [mirror.ROUTE]  # contextplane's own
