"""`contextplane cluster describe`: the brokers a cluster lists (DescribeCluster), each
with its node id, endpoint, rack and whether it is the controller, as
`kafka-cluster.sh` and `rpk cluster info` show them."""

from __future__ import annotations

import argparse
from typing import Any

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
    controller = _controller(args)
    brokers = [
        {
            "node_id": node.id,
            "host": node.host,
            "port": node.port,
            "rack": node.rack,
            "controller": node.id == controller,
        }
        for node in sorted(cluster.nodes, key=lambda n: n.id)
    ]
    if args.output == "json":
        print_json({"cluster_id": cluster.cluster_id, "controller": controller, "brokers": brokers})
        return 0
    print(f"cluster {cluster.cluster_id}")
    print()
    print_table(
        ("NODE", "ENDPOINT", "RACK", "CONTROLLER"),
        [
            (
                b["node_id"],
                f"{b['host']}:{b['port']}",
                b["rack"] or "-",
                "yes" if b["controller"] else "",
            )
            for b in brokers
        ],
    )
    return 0


def _controller(args: argparse.Namespace) -> int | None:
    """The node holding the controller's lease, from a DescribeCluster request: a
    broker's Metadata (which librdkafka's describe_cluster reads) names the broker asked,
    as a KRaft broker names a live broker, since every broker takes admin requests."""
    from kafka.protocol.admin import DescribeClusterRequest

    from contextplane.cli import protocol_admin

    request = DescribeClusterRequest[0](include_cluster_authorized_operations=False)
    admin = protocol_admin.connect(args)
    try:
        answered = protocol_admin.send(admin, request, "the cluster's controller")
    finally:
        admin.close()
    return None if answered.controller_id < 0 else int(answered.controller_id)
