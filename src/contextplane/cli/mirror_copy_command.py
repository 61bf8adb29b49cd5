"""`contextplane mirror` in copy mode (`--mode copy`, or a target that is not
contextplane): the rounds of a `CopyMirror`, consumer group offsets translated through
its offset map, a progress line per `--interval`, and the summary (records copied per
partition, each group's source and target offsets)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from contextplane.cli import mirror_groups
from contextplane.cli.mirror_copy import CopyMirror, CopyProgress
from contextplane.cli.output import print_json, print_table
from contextplane.cli.progress import Bar, mirrored
from contextplane.clock import SystemClock
from contextplane.logsafe import escape

IDLE_SLEEP_S = 0.2  # between rounds that moved nothing (each consume already waits)

CopyGroups = Callable[[dict[tuple[str, int], int], mirror_groups.Translate], Any]


def run(
    args: argparse.Namespace,
    mirror: CopyMirror,
    copy_groups: CopyGroups | None,
    seen: mirror_groups.GroupsSeen,
    show: Callable[[str], None],
) -> int:
    """Rounds until caught up (`--once`) or interrupted (exit 130, the open round
    aborted: its records are copied again by the next run); then the summary."""
    try:
        _loop(args, mirror, copy_groups, seen, show)
    except KeyboardInterrupt:
        mirror.abort()
        summary(args, list(mirror.progress.values()), seen)
        return 130
    finally:
        mirror.close()
    summary(args, list(mirror.progress.values()), seen)
    sys.stdout.flush()  # the summary is out whatever happens at exit
    return 0


def _loop(
    args: argparse.Namespace,
    mirror: CopyMirror,
    copy_groups: CopyGroups | None,
    seen: mirror_groups.GroupsSeen,
    show: Callable[[str], None],
) -> None:
    clock = SystemClock()
    shown_at = clock.monotonic_ms()
    bar = Bar(args.output, "mirror (copy)")
    try:
        while True:
            moved = mirror.round()
            caught_up = mirror.caught_up()
            progress = list(mirror.progress.values())
            copied = sum(p.copied for p in progress)
            mirrored(bar, copied, [p.lag for p in progress], force=caught_up)
            due = clock.monotonic_ms() - shown_at >= args.interval * 1000
            if copy_groups is not None and (caught_up if args.once else due):
                positions = {key: p.position for key, p in mirror.progress.items()}
                seen.take(copy_groups(positions, mirror.translate))
            if args.once and caught_up:
                return
            if due:
                # Where no bar is drawn, a line per interval of a mirror that runs on.
                if not bar.drawn and not args.once:
                    show(_progress_line(progress))
                shown_at = clock.monotonic_ms()
            if not moved:
                time.sleep(IDLE_SLEEP_S)
    finally:
        bar.close()


def _progress_line(progress: list[CopyProgress]) -> str:
    lag = sum(max(p.lag, 0) for p in progress)
    behind = sum(1 for p in progress if not p.caught_up)
    copied = sum(p.copied for p in progress)
    return (
        f"mirror (copy): {len(progress)} partitions, {behind} behind, lag {lag} records, "
        f"{copied} copied"
    )


def summary(
    args: argparse.Namespace, progress: list[CopyProgress], groups: mirror_groups.GroupsSeen
) -> None:
    rows = [
        {
            "topic": p.topic,
            "partition": p.partition,
            "source_end": p.source_end,
            "copied_to": p.position,
            "copied": p.copied,
            "lag": p.lag,
        }
        for p in progress
    ]
    translated = {
        group: {
            partition: {"source": groups.sources.get(group, {}).get(partition), "target": target}
            for partition, target in offsets.items()
        }
        for group, offsets in groups.copied.items()
    }
    if args.output == "json":
        print_json(
            {
                "mode": "copy",
                "partitions": rows,
                "groups": translated,
                "groups_not_copied": groups.not_copied,
            }
        )
        return
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print("mode: copy (records copied, offsets translated)")
    print_table(
        ["TOPIC", "PARTITION", "SOURCE-END", "COPIED-TO", "COPIED", "LAG"],
        [list(row.values()) for row in rows],
    )
    for group, offsets in sorted(translated.items()):
        for partition, at in sorted(offsets.items()):
            shown = f"group {escape(group)}: {escape(partition)}"
            print(f"{shown} source {at['source']} -> target {at['target']}")
