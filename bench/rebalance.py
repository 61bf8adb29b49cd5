"""Rebalance time of a consumer group, classic protocol beside KIP-848's, contextplane
beside Apache Kafka 4.4 in one run.

    .venv/bin/python -m bench.rebalance                       # 10 members, 20 partitions, 3 rounds
    .venv/bin/python -m bench.rebalance --protocols consumer --targets contextplane-file

Per round, protocol and target (rounds interleaved, target order rotating): `--members`
confluent-kafka consumers, one thread each in this process (librdkafka's poll releases
the GIL), subscribe one after another to a `--partitions` topic in a fresh group; `join_s`
is the time from the first subscribe until every member holds its final assignment (every
partition owned exactly once, each member ⌊P/N⌋ or ⌈P/N⌉ of them). Then one member closes;
`leave_s` is the time from its close() until the others own every partition again, exactly
once and balanced. Assignments are read with `assignment()` after each poll (20 ms polls),
so each figure is late by at most one poll. Writes `rebalance-results.json` and
`rebalance-results.md` (medians and contextplane ÷ Kafka per protocol) to `--out`.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from bench import group_targets, workloads
from bench.targets import Instance

TOPIC = "rebalance"
POLL_S = 0.02
PHASE_TIMEOUT_S = 180.0

PROTOCOLS: dict[str, dict[str, str]] = {
    "classic-cooperative": {
        "group.protocol": "classic",
        "partition.assignment.strategy": "cooperative-sticky",
    },
    "classic-range": {"group.protocol": "classic", "partition.assignment.strategy": "range"},
    # KIP-848: the broker assigns (its default assignor, `uniform` on both sides).
    "consumer": {"group.protocol": "consumer"},
}
DEFAULT_PROTOCOLS = ("classic-cooperative", "classic-range", "consumer")


class Board:
    """Each member's current assignment; notes the first moment the expected members
    own every partition exactly once, balanced."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.owned: dict[int, frozenset[int]] = {}
        self.expected: set[int] = set()
        self.settled_at: float | None = None
        self.snapshot: dict[int, list[int]] = {}  # the expected members' partitions then
        self.lock = threading.Lock()
        self.settled = threading.Event()

    def expect(self, members: set[int]) -> None:
        with self.lock:
            self.expected = set(members)
            self.settled_at = None
            self.settled.clear()

    def update(self, member: int, partitions: frozenset[int]) -> None:
        now = time.monotonic()
        with self.lock:
            self.owned[member] = partitions
            if self.settled_at is None and self._balanced():
                self.settled_at = now
                self.snapshot = {m: sorted(self.owned[m]) for m in sorted(self.expected)}
                self.settled.set()

    def forget(self, member: int) -> None:
        with self.lock:
            self.owned.pop(member, None)

    def _balanced(self) -> bool:
        if not self.expected or any(m not in self.owned for m in self.expected):
            return False
        held = [self.owned[m] for m in self.expected]
        low = self.partitions // len(held)
        high = -(-self.partitions // len(held))
        every = set().union(*held)
        return (
            sum(len(h) for h in held) == self.partitions
            and len(every) == self.partitions
            and all(low <= len(h) <= high for h in held)
        )


class Member(threading.Thread):
    """One consumer polling in its own thread until told to close."""

    def __init__(self, index: int, config: dict[str, Any], board: Board) -> None:
        super().__init__(name=f"member-{index}", daemon=True)
        self.index = index
        self.board = board
        self.consumer = Consumer(config)
        self.subscribed = threading.Event()
        self.leave = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            self.consumer.subscribe([TOPIC])
            self.subscribed.set()
            while not self.leave.is_set():
                self.consumer.poll(POLL_S)
                owned = frozenset(p.partition for p in self.consumer.assignment())
                self.board.update(self.index, owned)
        except Exception as exc:  # noqa: BLE001 - reported with the round
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.consumer.close()


def one_round(
    bootstrap: str, group: str, protocol: str, members: int, partitions: int
) -> dict[str, Any]:
    """join_s and leave_s of one group (see the module's docstring)."""
    board = Board(partitions)
    board.expect(set(range(members)))
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **PROTOCOLS[protocol],
        **workloads._QUIET,
    }
    crew = [Member(i, {**config, "client.id": f"m{i}"}, board) for i in range(members)]
    result: dict[str, Any] = {"members": members, "partitions": partitions}
    try:
        started = time.monotonic()
        for member in crew:
            member.start()
            member.subscribed.wait(30)
        if not board.settled.wait(PHASE_TIMEOUT_S):
            return {**result, "error": f"join: not settled in {PHASE_TIMEOUT_S:.0f} s"}
        assert board.settled_at is not None
        result["join_s"] = board.settled_at - started
        result["after_join"] = board.snapshot
        leaver = crew[-1]
        board.expect({m.index for m in crew[:-1]})
        left = time.monotonic()
        board.forget(leaver.index)
        leaver.leave.set()
        if not board.settled.wait(PHASE_TIMEOUT_S):
            return {**result, "error": f"leave: not settled in {PHASE_TIMEOUT_S:.0f} s"}
        assert board.settled_at is not None
        result["leave_s"] = board.settled_at - left
        result["after_leave"] = board.snapshot
        errors = [m.error for m in crew if m.error]
        if errors:
            result["error"] = "; ".join(errors)
        return result
    finally:
        for member in crew:
            member.leave.set()
        for member in crew:
            member.join(60)


def run(
    names: list[str],
    protocols: list[str],
    rounds: int,
    members: int,
    partitions: int,
    tmp: Path,
) -> dict[str, Any]:
    t0 = time.monotonic()
    results: dict[str, Any] = {
        "meta": group_targets.meta(names),
        "settings": {
            "rounds": rounds,
            "members": members,
            "partitions": partitions,
            "threads": "one thread per consumer, one process",
            "protocols": {p: PROTOCOLS[p] for p in protocols},
            "poll_s": POLL_S,
        },
        "errors": {},
        "runs": {p: {n: [] for n in names} for p in protocols},
    }
    insts: dict[str, Instance] = {}
    try:
        for name in names:
            insts[name] = group_targets.start_with_topic(name, tmp, TOPIC, partitions)
            group_targets.log(f"{name}: started at {insts[name].bootstrap}", t0)
        for i in range(rounds):
            for protocol in protocols:
                for name in group_targets.rotated(names, i):
                    group = f"rb-{protocol}-{i}"
                    res = one_round(insts[name].bootstrap, group, protocol, members, partitions)
                    results["runs"][protocol][name].append(res)
                    group_targets.log(f"  round {i} {protocol} {name}: {res}", t0)
    finally:
        group_targets.stop_all(insts)
    group_targets.finish(results, t0)
    results["summary"] = summarize(results)
    return results


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per protocol and phase: each target's median and contextplane ÷ Kafka."""
    rows = []
    for protocol, by_target in results["runs"].items():
        for phase in ("join_s", "leave_s"):
            figure = group_targets.figure(by_target, phase)
            rows.append({"protocol": protocol, "phase": phase, **figure})
    return rows


def markdown(results: dict[str, Any]) -> str:
    names = results["meta"]["targets"]
    head = ["protocol", "phase", *(f"{n} median (s)" for n in names)]
    if len(names) == 2:
        head.append("contextplane ÷ Kafka")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in results["summary"]:
        cells = [row["protocol"], row["phase"].removesuffix("_s")]
        cells += [group_targets.fmt(row["medians"][n]) for n in names]
        if len(names) == 2:
            cells.append(group_targets.fmt(row["ratio"]))
        lines.append("| " + " | ".join(cells) + " |")
    meta, settings = results["meta"], results["settings"]
    lines += [
        "",
        f"{settings['members']} members (threads), {settings['partitions']} partitions, medians "
        f"of {settings['rounds']} interleaved rounds; " + group_targets.load_line(meta),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rebalance")
    parser.add_argument("--targets", default=",".join(group_targets.TARGET_NAMES))
    parser.add_argument("--protocols", default=",".join(DEFAULT_PROTOCOLS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--tmp", type=Path, default=None, help="where brokers keep data")
    args = parser.parse_args(argv)
    names = [n for n in args.targets.split(",") if n]
    protocols = [p for p in args.protocols.split(",") if p]
    unknown = [n for n in names if n not in group_targets.TARGET_NAMES]
    unknown += [p for p in protocols if p not in PROTOCOLS]
    if unknown or not names or not protocols or args.members < 2:
        raise SystemExit(f"unknown targets or protocols: {unknown} (or fewer than 2 members)")
    return group_targets.run_and_write(
        args.out,
        args.tmp,
        "rebalance",
        lambda tmp: run(names, protocols, args.rounds, args.members, args.partitions, tmp),
        markdown,
    )


if __name__ == "__main__":
    sys.exit(main())
