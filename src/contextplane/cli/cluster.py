"""`contextplane cluster ...`: commands about a cluster of brokers. `cluster up` runs a
local one for trying failover and moves (cli/cluster_up.py)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    cluster = sub.add_parser("cluster", help="run or manage a cluster of brokers")
    what = cluster.add_subparsers(dest="cluster_command", required=True)
    from contextplane.cli import cluster_up

    cluster_up.add_parser(what)


def run(args: argparse.Namespace) -> int:
    from contextplane.cli import cluster_up

    return {"up": cluster_up.run}[args.cluster_command](args)
