"""`contextplane mirror`: copy topics from a source Kafka cluster into contextplane at
the offsets they have there, with their topic configs and consumer group offsets.

    contextplane mirror --source-bootstrap-server kafka:9092 --bootstrap-server cp:9092 \\
        --topics orders,payments --group-offsets --once

Missing topics are created on the target with the source's partition count and the
configs the source sets on them (not its defaults). Batches are fetched as the source
holds them and appended with MirrorAppend (the target's principal needs ALTER on the
cluster); offsets, keys, values, headers, timestamps, transactions and gaps stay as they
are. Progress is kept in the target's `__contextplane_mirror` topic, so a mirror that was
stopped resumes. `--once` stops when every partition has caught up with the source's
high watermark; otherwise the mirror runs until interrupted, showing each round's lag.
Either way (Ctrl-C or SIGTERM too, exit 130) it ends with the lag per partition. Exit status 2 for
arguments it cannot use (`--mode offsets` into a target that is not contextplane among
them), 1 for what a cluster refused or did not answer, named by its side.

A target that is not contextplane (found by an empty MirrorAppend), or `--mode copy`,
gets the copy mirror instead (`mirror_copy.py`): records produced in transactions with
the progress, group offsets translated through an offset map; the rollback into Kafka.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contextplane.cli import mirror_copy_command, mirror_groups, mirror_state
from contextplane.cli.kafka_client import (
    BrokerUnreachable,
    CommandError,
    ConfigError,
    Connection,
    answer,
    run_command,
    security_config,
)
from contextplane.cli.mirror_copy import CopyMirror
from contextplane.cli.mirror_run import Mirror, PartitionProgress, answers_mirror_append
from contextplane.cli.output import add_output_argument, print_json, print_table
from contextplane.cli.progress import Bar, mirrored
from contextplane.cli.wire import Cluster, WireError
from contextplane.cli.wire_security import Security, SecurityError
from contextplane.clock import SystemClock
from contextplane.logsafe import escape
from contextplane.services.schema_registry.records import SCHEMAS_TOPIC

TOPICS_MAX = 10_000
NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
IDLE_SLEEP_S = 0.2  # between rounds that moved nothing (each fetch already waits)


def add_parser(sub: Any) -> None:
    mirror = sub.add_parser(
        "mirror", help="copy topics from a Kafka cluster into contextplane, offsets kept"
    )
    mirror.add_argument(
        "--source-bootstrap-server", required=True, help="host:port of the source cluster"
    )
    mirror.add_argument(
        "--bootstrap-server", required=True, help="host:port of the target (contextplane)"
    )
    mirror.add_argument(
        "--source-command-config",
        type=Path,
        help="the source's client security properties (Kafka's names)",
    )
    mirror.add_argument(
        "--command-config",
        type=Path,
        help="the target's client security properties (Kafka's names)",
    )
    which = mirror.add_mutually_exclusive_group(required=True)
    which.add_argument("--topics", help="comma-separated topic names")
    which.add_argument("--topics-regex", help="a regular expression the whole name matches")
    mirror.add_argument(
        "--group-offsets",
        action="store_true",
        help="copy consumer groups' committed offsets on the mirrored topics",
    )
    mirror.add_argument("--groups", help="comma-separated groups to copy (default: all)")
    mirror.add_argument(
        "--once", action="store_true", help="stop once every partition has caught up"
    )
    mirror.add_argument(
        "--interval", type=float, default=5.0, help="seconds between progress lines (5)"
    )
    mirror.add_argument(
        "--mode",
        choices=("auto", "offsets", "copy"),
        default="auto",
        help="offsets: batches appended at the source's offsets (the target must be "
        "contextplane); copy: records produced in transactions, group offsets translated "
        "(a rollback into Kafka); auto (default): offsets if the target is contextplane",
    )
    mirror.add_argument(
        "--name",
        default="default",
        help="the mirror's name in copy mode: its transactional.id and progress records",
    )
    add_output_argument(mirror)


def run(args: argparse.Namespace) -> int:
    # SIGTERM (systemd, Kubernetes) stops the mirror as Ctrl-C does: progress saved,
    # the summary printed, exit status 130.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return run_command("mirror", lambda: _mirror(args))
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(*_: object) -> None:
    # A second SIGTERM must not cut the save and the summary short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _mirror(args: argparse.Namespace) -> int:
    if not 0.1 <= args.interval <= 3600:
        raise ConfigError("--interval must be between 0.1 and 3600 seconds")
    if not NAME.fullmatch(args.name):
        raise ConfigError("--name: 1 to 100 letters, digits, '.', '_' or '-'")
    source_config, source_security = _config(
        args.source_bootstrap_server, args.source_command_config, "--source-command-config"
    )
    target_config, target_security = _config(
        args.bootstrap_server, args.command_config, "--command-config"
    )
    source_admin, source_metadata = _admin(source_config, "source")
    target_admin, target_metadata = _admin(target_config, "target")
    source = Cluster(args.source_bootstrap_server, "source", source_security)
    target = Cluster(args.bootstrap_server, "target", target_security)
    try:
        copy = _connected(lambda: _copies(args.mode, target))
        topics = _topics(args, source_metadata)
        created = _create_missing(
            source_admin, target_admin, source_metadata, target_metadata, topics
        )
        mirror_state.ensure_topic(target_admin, target_metadata)
        if copy:
            partitions = [
                (topic, p) for topic in topics for p in source_metadata.topics[topic].partitions
            ]
            copier = CopyMirror(source_config, target_config, args.name, partitions, created)
            return _copy(args, source_admin, source_config, target_admin, target_config, copier)
        stored = mirror_state.read(target_config)
        progress = [
            PartitionProgress(topic, p, stored.get((topic, p), 0), stored=(topic, p) in stored)
            for topic in topics
            for p in sorted(source_metadata.topics[topic].partitions)
        ]
        named = _names(args.groups, "--groups")
        groups = mirror_groups.source_groups(source_admin, named) if args.group_offsets else []

        def copy_groups(positions: dict[tuple[str, int], int]) -> mirror_groups.GroupsPass:
            return mirror_groups.copy_offsets(
                source_config,
                target_admin,
                target_config,
                groups,
                positions,
                named=named is not None,
            )

        writer = mirror_state.StateWriter(target_config)
        seen = mirror_groups.GroupsSeen(_note)
        try:
            mirror = _connected(lambda: Mirror(source, target, progress))
            _loop(args, mirror, progress, writer, copy_groups if groups else None, seen)
        except KeyboardInterrupt:
            # Ctrl-C: what was appended is recorded and the summary shown, as with --once.
            # Only partitions stored already: one interrupted before its first save may
            # not have been checked empty on the target yet.
            writer.save({(p.topic, p.partition): p.position for p in progress if p.stored})
            _summary(args, progress, seen)
            return 130
    finally:
        source.close()
        target.close()
    _summary(args, progress, seen)
    return 0


def _loop(
    args: argparse.Namespace,
    mirror: Mirror,
    progress: list[PartitionProgress],
    writer: mirror_state.StateWriter,
    copy_groups: Callable[[dict[tuple[str, int], int]], mirror_groups.GroupsPass] | None,
    seen: mirror_groups.GroupsSeen,
) -> None:
    """Rounds until every partition has caught up (`--once`) or until interrupted."""
    clock = SystemClock()
    shown_at = clock.monotonic_ms()
    # Stored before the first append: a partition the target holds records of is then
    # always one with a stored position (Mirror refuses the others).
    saved = {(p.topic, p.partition): p.position for p in progress}
    writer.save({(p.topic, p.partition): p.position for p in progress if not p.stored})
    for p in progress:
        p.stored = True
    started = {(p.topic, p.partition): p.position for p in progress}
    bar = Bar(args.output, "mirror")
    try:
        while True:
            moved = _connected(mirror.round)
            positions = {(p.topic, p.partition): p.position for p in progress}
            changed = {key: at for key, at in positions.items() if saved.get(key) != at}
            if changed:
                writer.save(changed)
                saved = positions
            caught_up = all(p.lag == 0 for p in progress)
            done = sum(at - started[key] for key, at in positions.items())
            mirrored(bar, done, [p.lag for p in progress], force=caught_up)
            due = clock.monotonic_ms() - shown_at >= args.interval * 1000
            # Groups are copied once per interval (each is a request per group to both
            # clusters), and at the end of `--once`.
            if copy_groups is not None and (caught_up if args.once else due):
                seen.take(copy_groups(positions))
            if args.once and caught_up:
                return
            if due:
                _show_progress(args, bar, progress)
                shown_at = clock.monotonic_ms()
            if not moved:
                time.sleep(IDLE_SLEEP_S)
    finally:
        bar.close()


def _copies(mode: str, target: Cluster) -> bool:
    """Whether the mirror copies records (else it appends batches at their offsets),
    decided before anything is created on the target: `--mode offsets` into a target
    that is not contextplane is a ConfigError."""
    if mode == "copy":
        return True
    if answers_mirror_append(target):
        return False
    if mode == "offsets":
        raise ConfigError(
            f"the target ({target.bootstrap}) is not contextplane: it does not serve "
            "MirrorAppend, which --mode offsets writes with; give a contextplane cluster as "
            "--bootstrap-server, or --mode copy"
        )
    _note(
        f"the target ({target.bootstrap}) is not contextplane: copying records, "
        "group offsets translated (--mode copy)"
    )
    return True


def _copy(
    args: argparse.Namespace,
    source_admin: Any,
    source_config: dict[str, str],
    target_admin: Any,
    target_config: dict[str, str],
    copier: CopyMirror,
) -> int:
    """Copy mode (`mirror_copy_command.py`)."""
    named = _names(args.groups, "--groups")
    groups = mirror_groups.source_groups(source_admin, named) if args.group_offsets else []

    def copy_groups(
        positions: dict[tuple[str, int], int], translate: mirror_groups.Translate
    ) -> mirror_groups.GroupsPass:
        return mirror_groups.copy_offsets(
            source_config,
            target_admin,
            target_config,
            groups,
            positions,
            named is not None,
            translate,
        )

    seen = mirror_groups.GroupsSeen(_note)
    return mirror_copy_command.run(args, copier, copy_groups if groups else None, seen, _show_line)


def _config(
    bootstrap: str, command_config: Path | None, flag: str
) -> tuple[dict[str, str], Security]:
    """One side's librdkafka settings (its bootstrap servers and the security properties
    of its command config file) and the raw connection's security from the same;
    ConfigError naming the flag."""
    try:
        config = security_config(command_config) | {"bootstrap.servers": bootstrap}
        return config, Security.from_config(config)
    except (OSError, ConfigError, SecurityError) as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def _admin(config: dict[str, str], side: str) -> tuple[Any, Any]:
    """An AdminClient of one side and its metadata; BrokerUnreachable naming the side."""
    from confluent_kafka.admin import AdminClient

    connection = Connection(config)
    admin = AdminClient(connection.client_config())
    try:
        return admin, connection.metadata(admin, 30.0)
    except BrokerUnreachable as exc:
        raise BrokerUnreachable(f"the {side} ({config['bootstrap.servers']}): {exc}") from None


def _names(text: str | None, flag: str) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or len(names) > TOPICS_MAX:
        raise ConfigError(f"{flag}: between 1 and {TOPICS_MAX} names")
    return names


def _topics(args: argparse.Namespace, metadata: Any) -> list[str]:
    """The source topics to mirror; CommandError naming one it does not have."""
    if args.topics_regex is not None:
        try:
            pattern = re.compile(args.topics_regex)
        except re.error as exc:
            raise ConfigError(f"--topics-regex: {exc}") from None
        chosen = sorted(t for t in metadata.topics if _mirrored(t) and pattern.fullmatch(t))
        if not chosen:
            raise CommandError(f"no topic of the source matches {args.topics_regex}")
        return chosen
    chosen = _names(args.topics, "--topics") or []
    for name in chosen:
        if not _mirrored(name):
            raise ConfigError(
                f"topic {name} is not mirrored: `__` topics and {SCHEMAS_TOPIC} hold each "
                "cluster's own state (MirrorAppend refuses them)"
            )
        if name not in metadata.topics:
            raise CommandError(f"topic {name} is not on the source: UNKNOWN_TOPIC_OR_PARTITION")
    return sorted(set(chosen))


def _mirrored(topic: str) -> bool:
    """Not a topic of a cluster's own state (the ones the broker refuses to mirror into),
    so nothing is created on the target for a name that is refused anyway."""
    return not topic.startswith("__") and topic != SCHEMAS_TOPIC


def _create_missing(
    source_admin: Any, target_admin: Any, source: Any, target: Any, topics: list[str]
) -> set[str]:
    """Create on the target the topics it lacks, with the source's partition count and
    the configs set on the source topic; CommandError for a target topic with fewer
    partitions. The names of those created."""
    from confluent_kafka.admin import ConfigResource, ConfigSource, NewTopic, ResourceType

    created: set[str] = set()
    for name in topics:
        partitions = len(source.topics[name].partitions)
        existing = target.topics.get(name)
        if existing is not None:
            if len(existing.partitions) < partitions:
                raise CommandError(
                    f"topic {name} has {len(existing.partitions)} partitions on the target "
                    f"and {partitions} on the source"
                )
            continue
        resource = ConfigResource(ResourceType.TOPIC, name)
        entries = answer(source_admin.describe_configs([resource])[resource], f"configs of {name}")
        configs = {
            key: entry.value
            for key, entry in entries.items()
            if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value and entry.value is not None
        }
        creating = target_admin.create_topics([NewTopic(name, partitions, 1, config=configs)])
        answer(creating[name], f"creating topic {name} on the target")
        created.add(name)
    return created


def _connected(step: Any) -> Any:
    try:
        return step()
    except WireError as exc:
        raise CommandError(str(exc)) from None


def _show_progress(args: argparse.Namespace, bar: Bar, progress: list[PartitionProgress]) -> None:
    if bar.drawn or args.once:
        return
    lag = sum(max(p.lag, 0) for p in progress)
    behind = sum(1 for p in progress if p.lag != 0)
    _show_line(f"mirror: {len(progress)} partitions, {behind} behind, lag {lag} records")


class _Stderr:
    line_open = False  # a progress line rewritten in place ends without a newline


def _show_line(line: str) -> None:
    """A lag line of a mirror that runs on (not `--once`) where no bar is drawn: each
    --interval on stderr, rewritten in place on a terminal (there only with --output
    json: a table gets the bar), one line each in a pipe or a file (the running mirror's
    log)."""
    if sys.stderr.isatty():
        print(f"\r{line}", end="", file=sys.stderr, flush=True)
        _Stderr.line_open = True
    else:
        print(line, file=sys.stderr, flush=True)


def _note(line: str) -> None:
    if _Stderr.line_open:
        print(file=sys.stderr)  # past the progress line
        _Stderr.line_open = False
    print(f"mirror: {line}", file=sys.stderr, flush=True)


def _summary(
    args: argparse.Namespace, progress: list[PartitionProgress], groups: mirror_groups.GroupsSeen
) -> None:
    rows = [
        {
            "topic": p.topic,
            "partition": p.partition,
            "source_end": p.source_end,
            "mirrored_end": p.position,
            "lag": p.lag,
        }
        for p in progress
    ]
    if args.output == "json":
        print_json(
            {
                "mode": "offsets",
                "partitions": rows,
                "groups": groups.copied,
                "groups_not_copied": groups.not_copied,
            }
        )
        return
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print_table(
        ["TOPIC", "PARTITION", "SOURCE-END", "MIRRORED-END", "LAG"],
        [list(row.values()) for row in rows],
    )
    for group, offsets in sorted(groups.copied.items()):
        print(f"group {escape(group)}: {len(offsets)} offsets copied")
