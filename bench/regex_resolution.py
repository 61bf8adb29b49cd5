"""How long a consumer group's regex resolution holds the event loop, in process.

    .venv/bin/python -m bench.regex_resolution [--topics 10000 --patterns 10 --rounds 5]

A group of 100 members subscribing to 10 regexes over 10,000 topics; each round creates
a topic (a new topic-table version) and sends one heartbeat, which resolves every regex
of the group again. A probe task sleeps 1 ms at a time on the same loop, as any other
connection's request would wait: its worst gap less the 1 ms is the loop's stall. Four
ways, interleaved round by round in one process:

* `before`: on the loop, each pattern matched over every name through RE2's Python
  wrapper (the code before resolutions moved off the loop);
* `sets_on_loop`: on the loop, one RE2 set per 16 patterns, each name matched once;
* `each_in_thread`: the `before` matching in the worker thread;
* `after`: RE2 sets in the worker thread (the broker's way), the result applied on the
  loop when it is done.

Prints one JSON line per round and way, then the medians and after ÷ before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

from contextplane.coordinators.consumer_group import regex, regex_resolution
from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.coordinators.consumer_group.messages import ConsumerHeartbeat
from contextplane.coordinators.consumer_group.regex import RegexTopics
from contextplane.coordinators.consumer_group_regexes import RegexResolver

MEMBERS = 100
PROBE_S = 0.001


def _each(
    patterns: list[str], names: Iterable[str], pause: object = None
) -> dict[str, frozenset[str]]:
    listed = list(names)
    return {p: regex._match_each(p, listed) for p in patterns}


WAYS: dict[str, tuple[bool, Callable[..., dict[str, frozenset[str]]]]] = {
    "before": (False, _each),
    "sets_on_loop": (False, regex.match_names),
    "each_in_thread": (True, _each),
    "after": (True, regex.match_names),
}


class Probe:
    """Sleeps PROBE_S at a time on the loop and keeps the worst overshoot."""

    def __init__(self) -> None:
        self.worst_s = 0.0
        self.gaps: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(PROBE_S)
            gap = time.perf_counter() - started - PROBE_S
            self.gaps.append(gap)
            self.worst_s = max(self.worst_s, gap)

    async def __aenter__(self) -> Probe:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(PROBE_S * 3)  # running before the work starts
        self.worst_s, self.gaps = 0.0, []
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


class Group:
    """The group and its topic table, one per way (each way matches afresh per round)."""

    def __init__(self, topics: int, patterns: int) -> None:
        self.topics = {f"topic-{i % patterns}-{i:06d}": 3 for i in range(topics)}
        self.patterns = [f"topic-{k}-.*" for k in range(patterns)]
        self.version = 1
        self.machine = ConsumerGroupMachine(lambda: 0)
        self.machine.resolutions.inline_names_max = 1 << 62  # set up on the loop
        for i in range(MEMBERS):
            self.heartbeat(f"m{i}", self.patterns[i % patterns])
        self.created = 0

    def heartbeat(self, member: str, pattern: str | None = None) -> dict[str, Any]:
        group = self.machine.groups.get("g")
        held = group.members.get(member) if group is not None else None
        request = ConsumerHeartbeat(
            "g",
            member,
            0 if held is None else held.epoch,
            rebalance_timeout_ms=30_000,
            subscribed_topic_regex=pattern,
            owned=frozenset() if held is None else held.assigned,
        )
        topics = self.topics
        return self.machine.heartbeat(
            request, lambda t: topics.get(t, 0), self.version, RegexTopics(lambda: topics)
        )


async def _round(group: Group, way: str) -> dict[str, Any]:
    off_loop, matcher = WAYS[way]
    group.machine.resolutions.inline_names_max = 0 if off_loop else 1 << 62
    regex_resolution.match_names = matcher  # type: ignore[assignment]
    resolver = RegexResolver(group.machine, _nothing_to_save)
    machine = group.machine
    applying: list[float] = []

    def timed_apply(*args: Any) -> bool:
        started = time.perf_counter()
        try:
            return type(machine).regex_resolved(machine, *args)
        finally:
            applying.append(time.perf_counter() - started)

    machine.regex_resolved = timed_apply  # type: ignore[method-assign]
    group.created += 1
    group.topics = {**group.topics, f"topic-0-new-{group.created}": 1}
    group.version += 1
    try:
        async with Probe() as probe:
            started = time.perf_counter()
            group.heartbeat("m0")
            answered = time.perf_counter() - started
            resolver.start_due()
            await resolver.settled()
            applied = time.perf_counter() - started
            await asyncio.sleep(PROBE_S * 3)  # the probe's last gap is counted
    finally:
        del machine.regex_resolved
        await resolver.stop()
        regex_resolution.match_names = regex.match_names
    resolved = group.machine.groups["g"].resolved_regexes["topic-0-.*"]
    assert f"topic-0-new-{group.created}" in resolved  # the result was applied
    gaps = sorted(probe.gaps)
    return {
        "way": way,
        "heartbeat_ms": round(answered * 1000, 2),
        "applied_ms": round(applied * 1000, 1),
        "apply_step_ms": round(sum(applying) * 1000, 2),
        "loop_stall_max_ms": round(probe.worst_s * 1000, 2),
        "loop_stall_p99_ms": round(gaps[int(0.99 * (len(gaps) - 1))] * 1000, 2) if gaps else 0,
    }


async def _nothing_to_save(group_id: str) -> bool:
    return True


async def _main(args: argparse.Namespace) -> None:
    groups = {way: Group(args.topics, args.patterns) for way in WAYS}
    results: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    ways = list(WAYS)
    for round_ in range(args.rounds):
        for way in ways[round_ % len(ways) :] + ways[: round_ % len(ways)]:
            result = await _round(groups[way], way)
            results[way].append(result)
            print(json.dumps({"round": round_, **result}), flush=True)
    keys = ("heartbeat_ms", "applied_ms", "apply_step_ms", "loop_stall_max_ms", "loop_stall_p99_ms")
    medians = {
        way: {k: statistics.median(r[k] for r in rounds) for k in keys}
        for way, rounds in results.items()
    }
    for way, summary in medians.items():
        print(json.dumps({"way": way, "median": summary}))
    ratios = {
        k: round(medians["after"][k] / medians["before"][k], 4) if medians["before"][k] else None
        for k in keys
    }
    print(json.dumps({"after_over_before": ratios}))


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.regex_resolution")
    parser.add_argument("--topics", type=int, default=10_000)
    parser.add_argument("--patterns", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
