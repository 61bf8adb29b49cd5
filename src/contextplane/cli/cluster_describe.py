"""`contextplane cluster describe`: the brokers a cluster lists (DescribeCluster), each
with its node id, endpoint, rack, whether it is the controller, as `kafka-cluster.sh`
and `rpk cluster info` show them, and its state (`live`, `draining`, `shutting_down`:
the balancer's `contextplane.broker.state` config, as `cluster drain` sets it)."""

from __future__ import annotations

import argparse
from typing import Any

from contextplane.cli.cluster_balance import BROKER_RESOURCE, STATE
from contextplane.cli.kafka_client import (
    add_connection_arguments,
    answer,
    connect_admin,
    run_command,
)
from contextplane.cli.output import add_output_argument, print_json, print_table


def add_parser(what: Any) -> None:
    describe = what.add_parser(
        "describe", help="the brokers: node id, endpoint, rack and the controller"
    )
    add_connection_arguments(describe)
    add_output_argument(describe)


def run(args: argparse.Namespace) -> int:
    return run_command("cluster describe", lambda: _describe(args))


def _describe(args: argparse.Namespace) -> int:
    admin, _ = connect_admin(args)
    cluster = answer(admin.describe_cluster(), "the cluster")
    controller, states = _controller_and_states(args, [node.id for node in cluster.nodes])
    brokers = [
        {
            "node_id": node.id,
            "host": node.host,
            "port": node.port,
            "rack": node.rack,
            "controller": node.id == controller,
            "state": states.get(node.id),
        }
        for node in sorted(cluster.nodes, key=lambda n: n.id)
    ]
    if args.output == "json":
        print_json({"cluster_id": cluster.cluster_id, "controller": controller, "brokers": brokers})
        return 0
    print(f"cluster {cluster.cluster_id}")
    print()
    print_table(
        ("NODE", "ENDPOINT", "RACK", "CONTROLLER", "STATE"),
        [
            (
                b["node_id"],
                f"{b['host']}:{b['port']}",
                b["rack"] or "-",
                "yes" if b["controller"] else "",
                b["state"] or "-",
            )
            for b in brokers
        ],
    )
    return 0


def _controller_and_states(
    args: argparse.Namespace, nodes: list[int]
) -> tuple[int | None, dict[int, str]]:
    """The node holding the controller's lease, from a DescribeCluster request (a
    broker's Metadata, which librdkafka's describe_cluster reads, names the broker asked,
    as a KRaft broker names a live broker, since every broker takes admin requests), and
    each broker's state (None: a cluster that does not describe it, such as Kafka)."""
    from kafka.protocol.admin import DescribeClusterRequest, DescribeConfigsRequest

    from contextplane.cli import protocol_admin

    admin = protocol_admin.connect(args)
    try:
        cluster = DescribeClusterRequest[0](include_cluster_authorized_operations=False)
        answered = protocol_admin.send(admin, cluster, "the cluster's controller")
        configs = DescribeConfigsRequest(
            resources=[(BROKER_RESOURCE, str(node), [STATE]) for node in sorted(nodes)],
            include_synonyms=False,
        )
        described = protocol_admin.send(admin, configs, "the brokers' states").results
    finally:
        admin.close()
    states = {
        int(result.resource_name): str(config.value)
        for result in described
        if result.error_code == 0
        for config in result.configs
        if config.name == STATE and config.value
    }
    controller = None if answered.controller_id < 0 else int(answered.controller_id)
    return controller, states
