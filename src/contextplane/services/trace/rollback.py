"""A trace on the cluster a copy mirror rolled back into (`contextplane mirror --mode
copy`, RFC 0007 "Mirror back as built"): the mirror renumbers offsets (the source's
aborted records and transaction markers are left out, its own markers added), so every
position a decision recorded on the source names another record there. The mirror keeps
where it put each source record in its state topic on the target (per partition, at
most RUNS_MAX runs: `cli/mirror_offset_map.py`); the trace reads that map and translates
each recorded position through it.

Only a decision the mirror copied is translated: its own offset on the target lies in
its partition's copied runs (a decision recorded on the target after the rollback names
the target's own offsets). A record position the kept runs do not hold is never guessed:
it is missing, saying why (not copied, or in the runs dropped, with the target offsets
it lies between). A read position (the next offset of a source partition) is rounded
down where runs were dropped, as the mirror translates a group's offsets, and flagged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contextplane.cli.mirror_offset_map import RUNS_MAX, OffsetMap, offset_field
from contextplane.services.trace.link import Link, cut

if TYPE_CHECKING:
    from contextplane.services.trace.reader import Reader

# The mirror's state topic on the target (cli/mirror_state.py) and the key a copy
# mirror's progress has there (cli/mirror_copy.py's `state_key`).
STATE_TOPIC = "__contextplane_mirror"
_COPY = "copy"
# A progress record read, at most (a map of RUNS_MAX runs is about 20 KB of JSON).
PROGRESS_BYTES_MAX = 1024 * 1024

TP = tuple[str, int]


@dataclass
class Copied:
    """One copy mirror's progress of one partition: every committed source record below
    `copied_to` is on the target, where `offsets` says."""

    mirror: str
    copied_to: int
    offsets: OffsetMap


@dataclass
class Translation:
    partitions: dict[TP, Copied] = field(default_factory=dict)
    # Partitions two copy mirrors copied: which numbering a position is in is unknown.
    ambiguous: dict[TP, list[str]] = field(default_factory=dict)

    def describe(self) -> str:
        mirrors = sorted({c.mirror for c in self.partitions.values()})
        return (
            f"copied here by the copy mirror {', '.join(map(cut, mirrors))}: recorded"
            " positions translated through its offset map"
        )

    def record(self, topic: str, partition: int, offset: int) -> int | str:
        """Where the record the source had at `offset` is here, or why that is not known
        (a partition no copy mirror copied: the offset, untranslated)."""
        if (topic, partition) in self.ambiguous:
            named = ", ".join(self.ambiguous[(topic, partition)])
            return f"{topic}[{partition}] was copied by more than one copy mirror ({named})"
        copied = self.partitions.get((topic, partition))
        if copied is None:
            return offset
        if offset >= copied.copied_to:
            return f"not copied: the mirror copied {topic}[{partition}] below {copied.copied_to}"
        runs = copied.offsets.runs
        for run in runs:
            if run.source <= offset < run.source_end:
                return run.target + (offset - run.source)
        if copied.offsets.trimmed and runs[0].source_end <= offset < runs[1].source:
            return (
                f"in the part of the mirror's offset map that was dropped (it keeps"
                f" {RUNS_MAX} runs): if copied, at a target offset from"
                f" {runs[0].target_end} to {runs[1].target - 1}"
            )
        return (
            "no record copied from there: on the source an aborted record, a transaction"
            " marker or a record compacted away before the mirror read it"
        )

    def position(self, topic: str, partition: int, offset: int) -> tuple[int, bool] | None:
        """A recorded next offset of a partition here, and whether it was rounded down
        (runs dropped); None when not known (past what was copied, or ambiguous)."""
        if (topic, partition) in self.ambiguous:
            return None
        copied = self.partitions.get((topic, partition))
        if copied is None:
            return offset, False
        translated = copied.offsets.translate(offset, copied.copied_to)
        if translated is None:
            return None
        runs = copied.offsets.runs
        rounded = (
            copied.offsets.trimmed
            and len(runs) > 1
            and runs[0].source_end <= offset < runs[1].source
        )
        return translated, rounded

    def copied(self, topic: str, partition: int, offset: int) -> bool:
        """Is the record here at `offset` one a copy mirror copied (not written here)?"""
        found = self.partitions.get((topic, partition))
        runs = found.offsets.runs if found is not None else []
        return bool(runs) and runs[0].target <= offset < runs[-1].target_end


def translate_if_copied(reader: Reader, message: Any, root: Link) -> None:
    """When a copy mirror copied the decision `message` here, the positions it recorded
    (the source cluster's) are translated from now on (`reader.translation`), and the
    decision's link says so."""
    found = load(reader)
    if found is not None and found.copied(message.topic(), message.partition(), message.offset()):
        reader.translation = found
        root.detail["offset_map"] = found.describe()


def positions(
    translation: Translation | None, recorded: list[dict[str, Any]], detail: dict[str, Any]
) -> str:
    """A read's positions (`topic[partition]=next offset`, comma separated), translated;
    `detail` gets the recorded ones when any moved, and names those rounded or unknown."""
    shown: list[str] = []
    rounded: list[str] = []
    for p in recorded:
        topic, partition, offset = p.get("topic"), p.get("partition"), p.get("position")
        text = f"{topic}[{partition}]={offset}"
        if translation is not None and isinstance(topic, str):
            here = None
            if isinstance(partition, int) and isinstance(offset, int) and offset >= 0:
                here = translation.position(topic, partition, offset)
            if here is None:
                rounded.append(f"{text}: not known here")
            elif here[0] != offset:
                text = f"{topic}[{partition}]={here[0]}"
                if here[1]:
                    rounded.append(f"{text}: rounded down (runs of the map dropped)")
        shown.append(text)
    recorded_text = ", ".join(
        f"{p.get('topic')}[{p.get('partition')}]={p.get('position')}" for p in recorded
    )
    if translation is not None and ", ".join(shown) != recorded_text:
        detail["recorded_positions"] = recorded_text
    if rounded:
        detail["positions_not_exact"] = rounded
    return ", ".join(shown)


def load(reader: Reader) -> Translation | None:
    """The copy mirrors' offset maps kept on this cluster (None: no copy mirror wrote
    here, or its state topic could not be read: the trace says nothing is translated)."""
    if not reader.listed(STATE_TOPIC):
        return None
    latest: dict[bytes, bytes | None] = {}

    def keep(message: Any) -> None:
        key = message.key()
        if key is not None and key.startswith(b'["copy"'):
            latest[key] = message.value()

    if reader.scan(STATE_TOPIC, keep) is not None and not latest:
        return None
    found = Translation()
    for key, value in latest.items():
        parsed = _progress(key, value)
        if parsed is None:
            continue
        at, copied = parsed
        if at in found.ambiguous:
            found.ambiguous[at].append(copied.mirror)
        elif at in found.partitions:
            found.ambiguous[at] = [found.partitions.pop(at).mirror, copied.mirror]
        else:
            found.partitions[at] = copied
    return found if found.partitions or found.ambiguous else None


def _progress(key: bytes, value: bytes | None) -> tuple[TP, Copied] | None:
    """A copy mirror's progress record, read strictly (anyone may write the state topic);
    None for one the mirror never writes."""
    if value is None or len(value) > PROGRESS_BYTES_MAX or len(key) > PROGRESS_BYTES_MAX:
        return None
    try:
        kind, mirror, topic, partition = json.loads(key)
        parsed = json.loads(value)
        if kind != _COPY or not isinstance(mirror, str) or not isinstance(topic, str):
            return None
        partition = offset_field(partition)
        copied_to = offset_field(parsed["next"])
        offsets = OffsetMap.from_json(parsed, copied_to)
    except (TypeError, ValueError, KeyError, RecursionError):
        return None
    return (topic, partition), Copied(mirror, copied_to, offsets)
