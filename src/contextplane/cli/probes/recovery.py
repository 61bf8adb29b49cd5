"""Recovery probes: a group replays what it read after resetting its committed offset to
an earlier time, and (with `--restart-command`) acknowledged records and committed
offsets survive the restart that command makes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from typing import Any

from contextplane.cli.probes.base import NotApplicable, ProbeContext, ProbeFailure
from contextplane.cli.probes.clients import Record, poll, produce, read_back

_RECORDS = 6
_REPLAY_FROM = 2  # the offset of the record the reset time names
# The restart command's output kept as evidence: its last line, this long at most.
_OUTPUT_TAIL = 2000


def _records(ctx: ProbeContext) -> tuple[int, list[Record]]:
    base_ms = ctx.clock.wall_ms() - 60_000
    return base_ms, [
        Record(b"value-%d" % i, b"key-%d" % i, [("n", b"%d" % i), ("h", b"x")], base_ms + 1000 * i)
        for i in range(_RECORDS)
    ]


def _shown(message: Any) -> tuple[object, ...]:
    return (
        message.offset(),
        message.key(),
        message.value(),
        list(message.headers() or []),
        message.timestamp()[1],
    )


def consumer_replay(ctx: ProbeContext) -> str:
    """A member reads and commits everything; the group's offset is reset (OffsetCommit
    by the member) to the offset a timestamp names; a new member of the group starts
    there and reads the same records again: offsets, keys, values, headers, timestamps."""
    from confluent_kafka import Consumer, TopicPartition

    topic = ctx.create_topic()
    base_ms, sent = _records(ctx)
    produce(ctx, topic, sent)
    group = ctx.group()
    config = {"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    first = Consumer(ctx.client_config(**config))
    try:
        first.subscribe([topic])
        read = [_shown(m) for m in poll(ctx, first, _RECORDS)]
        first.commit(asynchronous=False)
        at = TopicPartition(topic, 0, base_ms + 1000 * _REPLAY_FROM - 500)
        (found,) = first.offsets_for_times([at], timeout=ctx.remaining_s())
        if found.offset != _REPLAY_FROM:
            raise ProbeFailure(f"offset by time {found.offset}, expected {_REPLAY_FROM}")
        first.commit(offsets=[TopicPartition(topic, 0, found.offset)], asynchronous=False)
    finally:
        first.close()
    again = Consumer(ctx.client_config(**config))
    try:
        again.subscribe([topic])
        replayed = [_shown(m) for m in poll(ctx, again, _RECORDS - _REPLAY_FROM)]
    finally:
        again.close()
    if replayed != read[_REPLAY_FROM:]:
        raise ProbeFailure(f"replayed {replayed[:1]}..., first read {read[_REPLAY_FROM:][:1]}...")
    return (
        f"a group read and committed {_RECORDS} records, reset its offset by time to "
        f"{_REPLAY_FROM}, and a new member read offsets {_REPLAY_FROM}-{_RECORDS - 1} again "
        "identically (keys, values, headers, timestamps)"
    )


def restart(ctx: ProbeContext) -> str:
    """Records acknowledged with acks=all and a group's committed offset, then the
    `--restart-command` run (no shell, bounded by the probe's time), then every record
    and the offset read back once the cluster answers again."""
    command = ctx.settings.restart_command
    if not command:
        raise NotApplicable("no --restart-command given")
    from confluent_kafka import Consumer, TopicPartition

    topic = ctx.create_topic()
    _, sent = _records(ctx)
    delivered = produce(ctx, topic, sent, **{"enable.idempotence": True})
    group = ctx.group()
    committed = TopicPartition(topic, 0, _REPLAY_FROM)
    member = Consumer(ctx.client_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        member.commit(offsets=[committed], asynchronous=False)
    finally:
        member.close()
    ran = run_command(ctx, command)
    read = read_back(ctx, topic, len(sent))
    expected = [(d.offset, d.record.key, d.record.value) for d in delivered]
    seen = [(m.offset(), m.key(), m.value()) for m in read]
    if seen != expected:
        raise ProbeFailure(f"after the restart read {seen}, acknowledged {expected}")
    reader = Consumer(ctx.client_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        (after,) = reader.committed([TopicPartition(topic, 0)], timeout=ctx.remaining_s())
    finally:
        reader.close()
    if after.offset != committed.offset:
        raise ProbeFailure(f"committed offset {after.offset} after the restart, was {_REPLAY_FROM}")
    return (
        f"{ran}; then all {len(sent)} acknowledged records and the group's committed "
        f"offset {_REPLAY_FROM} read back"
    )


def run_command(ctx: ProbeContext, argv: tuple[str, ...]) -> str:
    """Run `argv` (no shell: a user who wants one writes `sh -c '...'`) in a session of
    its own, killed with all it started when the probe's time runs out; ProbeFailure
    with its exit status and last line of output when it does not exit 0."""
    limit_s = ctx.remaining_s()
    started_ms = ctx.clock.monotonic_ms()
    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProbeFailure(f"restart command {argv[0]!r}: {exc.strerror}") from None
        try:
            status = process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise ProbeFailure(
                "restart command: still running at the probe's deadline, killed"
            ) from None
        output.seek(max(0, output.seek(0, os.SEEK_END) - _OUTPUT_TAIL))
        lines = output.read().decode(errors="replace").strip().splitlines()
    said = f" ({lines[-1].strip()})" if lines else ""
    if status != 0:
        raise ProbeFailure(f"restart command exited with status {status}{said}")
    took_s = (ctx.clock.monotonic_ms() - started_ms) / 1000
    return f"restart command exited 0 after {took_s:.1f} s{said}"
