"""`contextplane cluster ...`: commands about a cluster of brokers. `cluster up` runs a
local one for trying failover and moves (cli/cluster_up.py); `rebalance`, `drain` and
`undrain` move partitions by measured load (cli/cluster_balance.py); `describe` lists
the brokers with their racks (cli/cluster_describe.py)."""

from __future__ import annotations

import argparse
from typing import Any

BALANCE_COMMANDS = ("rebalance", "drain", "undrain")


def add_parser(sub: Any) -> None:
    cluster = sub.add_parser("cluster", help="run, describe, balance or drain a cluster of brokers")
    what = cluster.add_subparsers(dest="cluster_command", required=True)
    from contextplane.cli import cluster_balance, cluster_describe, cluster_up

    cluster_up.add_parser(what)
    cluster_describe.add_parser(what)
    cluster_balance.add_parsers(what)


def run(args: argparse.Namespace) -> int:
    if args.cluster_command in BALANCE_COMMANDS:
        from contextplane.cli import cluster_balance

        return cluster_balance.run(args)
    if args.cluster_command == "describe":
        from contextplane.cli import cluster_describe

        return cluster_describe.run(args)
    from contextplane.cli import cluster_up

    return cluster_up.run(args)
