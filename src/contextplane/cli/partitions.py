"""`contextplane partitions move TOPIC-PARTITION --to N [--wait]` and `partitions moves`:
operator moves of any Kafka cluster (AlterPartitionReassignments and
ListPartitionReassignments, spoken through cli/protocol_admin.py and sent to the
controller Metadata names, as `kafka-reassign-partitions.sh` sends them). Against
contextplane a move copies nothing (RFC 0004 §6): the leader uploads its tail and
hands the partition over. `--wait` returns once the cluster names the new leader and
reports how long the move took from the request."""

from __future__ import annotations

import argparse
import time
from typing import Any

from contextplane.cli.kafka_client import ADMIN_TIMEOUT_S, CommandError, ConfigError, run_command
from contextplane.cli.kafka_client import add_connection_arguments as add_connection
from contextplane.cli.output import add_output_argument, print_json, print_table
from contextplane.cli.protocol_admin import connect, error_text, response_error
from contextplane.clock import SystemClock

_POLL_S = 0.1
_PROBE_S = 2.0  # how long a leader has to take a TCP connection
_CONNECT_ATTEMPTS = 4  # a request the connection to a dead broker failed is sent again
# While the controller's broker is dead and its lease lasts, no broker is the controller:
# the request is sent again this long (Kafka's admin client retries NOT_CONTROLLER up to
# its default.api.timeout.ms), each try after _NO_CONTROLLER_BACKOFF_S.
_NO_CONTROLLER_WAIT_S = ADMIN_TIMEOUT_S
_NO_CONTROLLER_BACKOFF_S = 0.5
_CLOCK = SystemClock()


def add_parser(sub: Any) -> None:
    partitions = sub.add_parser("partitions", help="move partitions between brokers")
    what = partitions.add_subparsers(dest="partitions_command", required=True)
    move = what.add_parser("move", help="move a partition to another broker")
    move.add_argument("partition", metavar="TOPIC-PARTITION", help="e.g. orders-3")
    move.add_argument("--to", type=int, required=True, metavar="N", help="the broker's node id")
    move.add_argument(
        "--wait", action="store_true", help="return once the broker leads the partition"
    )
    move.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="how long --wait waits (default 60)",
    )
    moves = what.add_parser("moves", help="the moves in progress")
    for parser in (move, moves):
        add_connection(parser)
        add_output_argument(parser)


def run(args: argparse.Namespace) -> int:
    body = {"move": _move, "moves": _moves}[args.partitions_command]
    return run_command(f"partitions {args.partitions_command}", lambda: body(args))


def parse_partition(text: str) -> tuple[str, int]:
    """`orders-3` as ("orders", 3); ConfigError for anything else."""
    topic, _, index = text.rpartition("-")
    if not topic or not index.isdigit():
        raise ConfigError(f"expected TOPIC-PARTITION (e.g. orders-3), got {text!r}")
    return topic, int(index)


def controller_request(admin: Any, request: Any, what: str) -> Any:
    """`request`'s response from the controller (kafka-python resends it once to a new
    controller on NOT_CONTROLLER); CommandError naming `what` on a top-level error."""
    import kafka.errors as errors

    def top_level(response: Any) -> Any:
        yield errors.for_code(response.error_code)

    refused = 0
    deadline_ms = _CLOCK.monotonic_ms() + int(_NO_CONTROLLER_WAIT_S * 1000)
    while True:
        try:
            response = admin._manager.run(
                admin._send_request_to_controller, request, top_level, False
            )
            break
        except (errors.KafkaConnectionError, errors.NodeNotReadyError):
            # kafka-python may pick a broker killed while its lease lasts (Metadata still
            # lists it) to ask: it backs that one off, so the next try asks another.
            refused += 1
            if refused == _CONNECT_ATTEMPTS:
                raise CommandError(f"{what}: no broker of the cluster answered") from None
            time.sleep(_POLL_S * refused)
        except RuntimeError as exc:
            # kafka-python's words for NOT_CONTROLLER twice: the controller is gone and
            # its lease has not lapsed, so no broker has taken over yet.
            if "active controller" not in str(exc):
                raise CommandError(f"{what}: {error_text(type(exc), str(exc))}") from None
            if _CLOCK.monotonic_ms() >= deadline_ms:
                raise CommandError(
                    f"{what}: no live controller within {_NO_CONTROLLER_WAIT_S:g} s (a"
                    " controller that stopped is replaced once its lease lapses,"
                    " broker.session.timeout.ms); try again"
                ) from None
            admin._controller_id = None  # Metadata names the next one
            time.sleep(_NO_CONTROLLER_BACKOFF_S)
        except errors.KafkaError as exc:
            raise CommandError(f"{what}: {error_text(type(exc), str(exc))}") from None
    response_error(response.error_code, response.error_message, what)
    return response


def _move(args: argparse.Namespace) -> int:
    from kafka.protocol.admin import AlterPartitionReassignmentsRequest

    topic, index = parse_partition(args.partition)
    what = f"move {topic}-{index} to broker {args.to}"
    admin = connect(args)
    try:
        partition = AlterPartitionReassignmentsRequest.ReassignableTopic.ReassignablePartition
        request = AlterPartitionReassignmentsRequest(
            timeout_ms=int(ADMIN_TIMEOUT_S * 1000),
            topics=[
                AlterPartitionReassignmentsRequest.ReassignableTopic(
                    name=topic, partitions=[partition(partition_index=index, replicas=[args.to])]
                )
            ],
        )
        started = _CLOCK.monotonic_ms()
        response = controller_request(admin, request, what)
        for answered in response.responses:
            for result in answered.partitions:
                response_error(result.error_code, result.error_message, what)
        status, elapsed_ms = "started", None
        if args.wait:
            _wait(admin, topic, index, args.to, started + int(args.timeout * 1000), what)
            status, elapsed_ms = "moved", _CLOCK.monotonic_ms() - started
    finally:
        admin.close()
    document = {
        "topic": topic,
        "partition": index,
        "to": args.to,
        "status": status,
        "elapsed_ms": elapsed_ms,
    }
    if args.output == "json":
        print_json(document)
    else:
        took = "" if elapsed_ms is None else f"{elapsed_ms} ms"
        print_table(
            ("PARTITION", "TO", "STATUS", "TOOK"), [(args.partition, args.to, status, took)]
        )
    return 0


def _wait(admin: Any, topic: str, index: int, node: int, deadline_ms: int, what: str) -> None:
    """Until the move is no longer listed and Metadata names `node` the leader (or the
    monotonic `deadline_ms`)."""
    import kafka.errors as errors

    listed: Any = None
    leader: int | None = None  # None: no broker answered yet
    while True:
        try:
            listed = admin.list_partition_reassignments({topic: [index]})
            leader = _leader(admin, topic, index)
        except (errors.KafkaConnectionError, errors.NodeNotReadyError):
            pass  # asked a broker that is gone (see controller_request): ask again
        else:
            if not listed and leader == node:
                return
        if _CLOCK.monotonic_ms() >= deadline_ms:
            why = _why(admin, listed, leader)
            raise CommandError(f"{what}: not done when --timeout ran out ({why})")
        time.sleep(_POLL_S)


def _why(admin: Any, listed: Any, leader: int | None) -> str:
    """What a move not done in time is waiting for, as the cluster shows it now."""
    from contextplane.cli.list_offsets import listening

    if leader is None:
        return "no broker of the cluster answered while it waited"

    waits = (
        "the move goes on once the target can open it: after that broker's session expires"
        " (sooner with an object WAL), or, where its local WAL holds records not yet"
        " uploaded, once that broker is back (`contextplane cluster describe` lists the"
        " live brokers)"
    )
    if leader == -1:
        offline = "the partition has no leader (offline): its broker stopped without handing it"
        return f"{offline} over; {waits}"
    broker = admin._client.cluster.broker_metadata(leader)
    if broker is not None and not listening({leader: broker}, _PROBE_S):
        return f"broker {leader} leads it but takes no connection (stopped or killed); {waits}"
    if listed:
        return f"still moving: broker {leader} leads it and has not handed it over yet"
    return f"the move is no longer listed but broker {leader} leads the partition"


def _leader(admin: Any, topic: str, index: int) -> int:
    for described in admin.describe_topics([topic]):
        for partition in described.get("partitions", ()):
            if partition["partition_index"] == index:
                return int(partition["leader_id"])
    return -1


def _moves(args: argparse.Namespace) -> int:
    from kafka.protocol.admin import ListPartitionReassignmentsRequest

    admin = connect(args)
    try:
        response = controller_request(
            admin,
            ListPartitionReassignmentsRequest(timeout_ms=int(ADMIN_TIMEOUT_S * 1000), topics=None),
            "list moves",
        )
    finally:
        admin.close()
    moves = [
        {
            "topic": t.name,
            "partition": p.partition_index,
            "replicas": list(p.replicas),
            "adding": list(p.adding_replicas),
            "removing": list(p.removing_replicas),
        }
        for t in response.topics
        for p in t.partitions
    ]
    if args.output == "json":
        print_json({"moves": moves})
    elif not moves:
        print("no moves in progress")
    else:
        print_table(
            ("PARTITION", "FROM", "TO"),
            [
                (
                    f"{m['topic']}-{m['partition']}",
                    ",".join(map(str, m["removing"])) or "-",
                    ",".join(map(str, m["adding"])),
                )
                for m in moves
            ],
        )
    return 0
