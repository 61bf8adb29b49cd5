"""Where a copy mirror put each source record on the target, per partition, kept compact
and bounded so it fits in one progress record: runs of records whose source offsets and
target offsets both go up by one (a run per transaction of the mirror when the source has
no gaps; aborted records and markers on the source, or the mirror's commit markers on the
target, start a new one). At most `RUNS_MAX` runs are kept: the first run ever copied and
the newest ones; the runs dropped between them are the part of the map that is lost.

A consumer group's committed source offset O is translated to the target offset of the
first copied record whose source offset is at least O. That is exact where the map holds
the records around O; in the part that was dropped it rounds down (to just after the
first run), so a translated offset never passes a record the group has not consumed, as
MirrorMaker 2's checkpoints do. An offset past what was copied is not translated yet.

A stored map is read strictly: the state topic is on the target, which anyone may
write, and its offsets are sought to and committed for groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contextplane.limits import LONG_MAX

RUNS_MAX = 500  # about 20 KB of JSON per partition's progress record


@dataclass
class Run:
    source: int  # first source offset of the run
    target: int  # where that record is on the target
    count: int

    @property
    def source_end(self) -> int:
        return self.source + self.count

    @property
    def target_end(self) -> int:
        return self.target + self.count


@dataclass
class OffsetMap:
    runs: list[Run] = field(default_factory=list)
    trimmed: bool = False  # runs dropped between the first and the second kept

    def add(self, source: int, target: int) -> None:
        """One more copied record (in source order)."""
        last = self.runs[-1] if self.runs else None
        if last is not None and last.source_end == source and last.target_end == target:
            last.count += 1
            return
        self.runs.append(Run(source, target, 1))
        if len(self.runs) > RUNS_MAX:
            del self.runs[1]  # the first run stays: it anchors offsets before everything
            self.trimmed = True

    def translate(self, offset: int, copied_to: int) -> int | None:
        """The target offset for a group's committed source `offset`, given that every
        committed record below `copied_to` has been copied; None if `offset` is past it."""
        if offset > copied_to:
            return None
        if not self.runs:
            return 0  # nothing copied: the target partition has no record of ours
        if offset <= self.runs[0].source:
            return self.runs[0].target
        index = max(i for i, run in enumerate(self.runs) if run.source <= offset)
        run = self.runs[index]
        if offset < run.source_end:
            return run.target + (offset - run.source)
        if index + 1 == len(self.runs):
            return run.target_end  # past every copied record: where the next one goes or later
        if index == 0 and self.trimmed:
            return run.target_end  # the runs after this one are gone: round down
        return self.runs[index + 1].target

    def copy(self) -> OffsetMap:
        return OffsetMap([Run(r.source, r.target, r.count) for r in self.runs], self.trimmed)

    def to_json(self) -> dict[str, Any]:
        return {"runs": [[r.source, r.target, r.count] for r in self.runs], "trimmed": self.trimmed}

    @classmethod
    def from_json(cls, value: dict[str, Any], copied_to: int) -> OffsetMap:
        """The map a progress record holds; ValueError for one this mirror never writes
        (the state topic is the target's: anyone may write it): offsets outside a Kafka
        long, empty or overlapping runs, runs past `copied_to`."""
        runs: list[Run] = []
        listed = value.get("runs", [])
        if not isinstance(listed, list):
            raise ValueError("'runs' is not a list")
        for item in listed:
            if not isinstance(item, list) or len(item) != 3:
                raise ValueError(f"a run {str(item)[:64]} is not [source, target, count]")
            run = Run(*(offset_field(number) for number in item))
            previous = runs[-1] if runs else Run(0, 0, 0)
            if (
                run.count < 1
                or run.source < previous.source_end
                or run.target < previous.target_end
            ):
                raise ValueError(f"the run {item} is empty or overlaps the one before")
            if run.source_end > copied_to or run.target_end > LONG_MAX:
                raise ValueError(f"the run {item} ends past what was copied")
            runs.append(run)
        trimmed = value.get("trimmed", False)
        if not isinstance(trimmed, bool):
            raise ValueError("'trimmed' is not a boolean")
        if len(runs) > RUNS_MAX:
            runs, trimmed = runs[:1] + runs[1 - RUNS_MAX :], True
        return cls(runs, trimmed)


def offset_field(value: object) -> int:
    """An offset as a progress record holds it: an integer in [0, Kafka's long max]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LONG_MAX:
        raise ValueError(f"{str(value)[:64]} is not an offset")
    return value
