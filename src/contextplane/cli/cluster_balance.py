"""`contextplane cluster rebalance [--dry-run] [--max-moves N]`, `cluster drain N
[--wait]` and `cluster undrain N` (RFC 0004 §6): Kafka clients of the cluster, as
`partitions move` is (kafka-python; the moves sent to the controller Metadata names).

Each broker's measured load and state are its two `contextplane.broker.*` BROKER
configs (broker/handlers/broker_balance.py): read with DescribeConfigs, and `draining`
set or cleared with IncrementalAlterConfigs, so the commands are authorized and audited
as config changes are. The moves are planned here (cluster/balance_plan.py) from those
loads and Metadata's leaders, and sent as AlterPartitionReassignments batches. Every
partition may move, internal topics included: a coordinator shard moves with its
partition, and the brokers' own writes follow the leader (cluster/forwarder.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

from contextplane.cli.kafka_client import ADMIN_TIMEOUT_S, CommandError, run_command
from contextplane.cli.kafka_client import add_connection_arguments as add_connection
from contextplane.cli.output import add_output_argument, print_json, print_table
from contextplane.cli.partitions import controller_request
from contextplane.cli.protocol_admin import connect, response_error, send
from contextplane.clock import SystemClock
from contextplane.cluster.balance_plan import (
    LEAVING_STATES,
    Broker,
    Led,
    Move,
    NoBrokerLeft,
    measured,
    plan,
)

LOAD = "contextplane.broker.load"
STATE = "contextplane.broker.state"
BROKER_RESOURCE = 4
DEFAULT_MAX_MOVES = 50  # cluster.rebalance.max.moves
BATCH = 500  # partitions per AlterPartitionReassignments
_POLL_S = 0.2
_CLOCK = SystemClock()


def add_parsers(what: Any) -> None:
    """`rebalance`, `drain` and `undrain` under `contextplane cluster` (cli/cluster.py)."""
    rebalance = what.add_parser("rebalance", help="move partitions to even the measured load")
    rebalance.add_argument("--dry-run", action="store_true", help="print the plan, move nothing")
    rebalance.add_argument(
        "--max-moves",
        type=int,
        default=DEFAULT_MAX_MOVES,
        metavar="N",
        help=f"at most this many moves (default {DEFAULT_MAX_MOVES})",
    )
    drain = what.add_parser("drain", help="move every partition off a broker; place none there")
    undrain = what.add_parser("undrain", help="make a drained broker eligible again")
    for parser in (drain, undrain):
        parser.add_argument("node", type=int, metavar="N", help="the broker's node id")
    drain.add_argument("--wait", action="store_true", help="return once the broker leads none")
    drain.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="how long --wait waits (default 300)",
    )
    for parser in (rebalance, drain, undrain):
        add_connection(parser)
        add_output_argument(parser)


def run(args: argparse.Namespace) -> int:
    body = {"rebalance": _rebalance, "drain": _drain, "undrain": _undrain}[args.cluster_command]
    return run_command(f"cluster {args.cluster_command}", lambda: body(args))


Loads = dict[tuple[str, int], float]


def _brokers(admin: Any) -> tuple[list[Broker], Loads]:
    """The live brokers with their racks, states and loads not listed per partition;
    the partitions' loads as their brokers measured them."""
    from kafka.protocol.admin import DescribeConfigsRequest

    described = admin.describe_cluster()["brokers"]
    rows = []
    for broker in sorted(described, key=lambda b: b["broker_id"]):
        node = int(broker["broker_id"])
        request = DescribeConfigsRequest(
            resources=[(BROKER_RESOURCE, str(node), [LOAD, STATE])], include_synonyms=False
        )
        (result,) = send(admin, request, f"describe broker {node}").results
        response_error(result.error_code, result.error_message, f"describe broker {node}")
        values = {c.name: c.value for c in result.configs}
        leaving = values.get(STATE) in LEAVING_STATES
        rows.append((node, broker.get("rack"), leaving, values.get(LOAD) or "{}"))
    return measured(rows)


def _leaders(admin: Any) -> dict[tuple[str, int], int]:
    return {
        (str(t["name"]), int(p["partition_index"])): int(p["leader_id"])
        for t in admin.describe_topics()
        for p in t["partitions"]
    }


def _current(admin: Any) -> tuple[list[Broker], list[Led]]:
    brokers, loads = _brokers(admin)
    partitions = [
        Led(key, leader, loads.get(key, 0.0))
        for key, leader in sorted(_leaders(admin).items())
        if leader >= 0
    ]
    return brokers, partitions


def _set_state(admin: Any, node: int, state: str) -> None:
    from kafka.protocol.admin import IncrementalAlterConfigsRequest

    request = IncrementalAlterConfigsRequest(
        resources=[(BROKER_RESOURCE, str(node), [(STATE, 0, state)])], validate_only=False
    )
    for result in send(admin, request, f"set broker {node} {state}").responses:
        response_error(result.error_code, result.error_message, f"set broker {node} {state}")


def _execute(admin: Any, moves: list[Move]) -> None:
    from kafka.protocol.admin import AlterPartitionReassignmentsRequest

    topic_type = AlterPartitionReassignmentsRequest.ReassignableTopic
    partition_type = topic_type.ReassignablePartition
    for start in range(0, len(moves), BATCH):
        by_topic: dict[str, list[Any]] = {}
        for move in moves[start : start + BATCH]:
            by_topic.setdefault(move.key[0], []).append(
                partition_type(partition_index=move.key[1], replicas=[move.target])
            )
        request = AlterPartitionReassignmentsRequest(
            timeout_ms=int(ADMIN_TIMEOUT_S * 1000),
            topics=[topic_type(name=name, partitions=parts) for name, parts in by_topic.items()],
        )
        response = controller_request(admin, request, "move partitions")
        for answered in response.responses:
            for result in answered.partitions:
                what = f"move {answered.name}-{result.partition_index}"
                response_error(result.error_code, result.error_message, what)


def _report(args: argparse.Namespace, moves: list[Move], status: str, **extra: Any) -> None:
    max_moves = getattr(args, "max_moves", None)
    limit = max_moves if max_moves and len(moves) >= max_moves else None
    if args.output == "json":
        print_json(
            {
                "status": status,
                **extra,
                "moves": [
                    {
                        "topic": m.key[0],
                        "partition": m.key[1],
                        "from": m.source,
                        "to": m.target,
                        "load": round(m.load),
                    }
                    for m in moves
                ],
            }
        )
        return
    if moves:  # no header over nothing
        print_table(
            ("PARTITION", "FROM", "TO", "LOAD B/S"),
            [(f"{m.key[0]}-{m.key[1]}", m.source, m.target, round(m.load)) for m in moves],
        )
    took = extra.get("elapsed_ms")
    print(
        f"{len(moves)} {'move' if len(moves) == 1 else 'moves'} {status}"
        + ("" if took is None else f" in {took / 1000:.1f} s")
        + (f" (as many as --max-moves {limit}: run it again for any more)" if limit else "")
    )


def _rebalance(args: argparse.Namespace) -> int:
    admin = connect(args)
    try:
        brokers, partitions = _current(admin)
        try:
            moves = plan(brokers, partitions, args.max_moves, spread_idle=True)
        except NoBrokerLeft as exc:
            raise CommandError(str(exc)) from None
        if not args.dry_run:
            _execute(admin, moves)
    finally:
        admin.close()
    _report(args, moves, "planned" if args.dry_run else "started")
    return 0


def _drain(args: argparse.Namespace) -> int:
    admin = connect(args)
    try:
        # Planned as if drained before the drain is recorded: a drain that would leave
        # nowhere to move to is refused with the broker's state unchanged.
        brokers, partitions = _current(admin)
        brokers = [
            dataclasses.replace(b, draining=True) if b.node_id == args.node else b for b in brokers
        ]
        try:
            moves = plan(brokers, partitions, 0, draining_only=True)
        except NoBrokerLeft as exc:
            raise CommandError(f"{exc} (broker {args.node} left as it was)") from None
        _set_state(admin, args.node, "draining")
        moves = [m for m in moves if m.source == args.node]
        started = _CLOCK.monotonic_ms()
        _execute(admin, moves)
        status, elapsed = "started", None
        if args.wait:
            _wait_empty(admin, args.node, started + int(args.timeout * 1000))
            status, elapsed = "done", _CLOCK.monotonic_ms() - started
    finally:
        admin.close()
    _report(args, moves, status, node=args.node, elapsed_ms=elapsed)
    return 0


def _wait_empty(admin: Any, node: int, deadline_ms: int) -> None:
    """Until Metadata names no partition led by `node` and no move is listed (or the
    monotonic `deadline_ms`)."""
    while True:
        led = [key for key, leader in _leaders(admin).items() if leader == node]
        if not led and not admin.list_partition_reassignments():
            return
        if _CLOCK.monotonic_ms() >= deadline_ms:
            raise CommandError(
                f"broker {node} still leads {len(led)} partitions when --timeout ran out"
            )
        time.sleep(_POLL_S)


def _undrain(args: argparse.Namespace) -> int:
    admin = connect(args)
    try:
        _set_state(admin, args.node, "live")
    finally:
        admin.close()
    if args.output == "json":
        print_json({"node": args.node, "state": "live"})
    else:
        print_table(("NODE", "STATE"), [(args.node, "live")])
    return 0
