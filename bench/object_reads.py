"""Object GETs of a cold read, counted on every store, and the one-partition replay.

GETs are counted twice where possible: by the broker itself (its object store counter,
read from the debug probe lines; the only count on file://) and, on s3://, per HTTP
request by tests/support/s3proxy.py. The broker's counter restarts with each process, so a window
opens on the first probe line of the process (at most a second after start) and closes on
the first line written after the read.

The one-partition replay reads partition 0 of the many-partition topic from offset 0
after a restart (log cache empty) and a page-cache eviction: every multi-partition object
holding some of that partition is read for a small share of it, which is what object
compaction is meant to change.
"""

from __future__ import annotations

from typing import Any

import confluent_kafka as ck

from bench import workloads
from bench.probes import summarize
from bench.profiles import GIB
from bench.targets import Instance

MB = 1e6
HTTP_GETS = ("GET", "GET_RANGE")


class GetWindow:
    """The GETs (and the probe summary) between `open` and `close` of one broker process."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self._first: dict[str, Any] | None = None
        self._mark = 0
        self._http: dict[str, int] = {}

    def open(self, lifetime_mark: int | None = None) -> GetWindow:
        """`lifetime_mark`: the probe file's line count before this process started (its
        first line then opens the window); None opens it at the next line."""
        probes = self.inst.probes
        if probes is not None:
            self._first = probes.next_line(lifetime_mark, timeout=15)
            self._mark = probes.mark()
        self._http = self.inst.object_counts() or {}
        return self

    def close(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.inst.object_counting.startswith("HTTP"):
            now = self.inst.object_counts() or {}
            out["http_gets"] = sum(now.get(k, 0) - self._http.get(k, 0) for k in HTTP_GETS)
        probes = self.inst.probes
        if probes is not None and self._first is not None:
            last = probes.next_line(timeout=15)
            lines = probes.since(self._mark)
            out["probes"] = summarize(lines)
            first_store = self._first.get("object_store") or {}
            last_store = (last or {}).get("object_store") or {}
            if "gets" in first_store and "gets" in last_store:
                out["broker_gets"] = last_store["gets"] - first_store["gets"]
                out["broker_get_bytes"] = last_store["get_bytes"] - first_store["get_bytes"]
        # The figure: the proxy's count where there is one, else the broker's own.
        out["gets"] = out.get("http_gets", out.get("broker_gets"))
        return out


def consume_partition(
    bootstrap: str, topic: str, partition: int, expected_messages: int, timeout: float
) -> dict[str, Any]:
    """Read one partition from offset 0 until `expected_messages` arrived."""
    assignment = [ck.TopicPartition(topic, partition, 0)]
    return workloads.consume_assigned(bootstrap, assignment, expected_messages, timeout)


def replay_one_partition(
    inst: Instance, topic: str, partitions: int, expected_messages: int, timeout: float
) -> dict[str, Any]:
    """With the broker stopped after the load: start it, evict the page cache, read
    partition 0 from offset 0; MB/s and GETs per GiB. Leaves the broker stopped."""
    mark = inst.probes.mark() if inst.probes is not None else None
    inst.start()
    try:
        window = GetWindow(inst).open(mark)
        inst.evict_page_cache()
        read = consume_partition(inst.bootstrap, topic, 0, expected_messages, timeout)
        counted = window.close()
        inst.sample_rss()
    finally:
        inst.stop()
    gib = read["bytes"] / GIB
    gets = counted.get("gets")
    return {
        "partitions": partitions,
        "partition": 0,
        "read": read,
        "MBps": read["MBps"],
        **counted,
        "gets_per_gib": gets / gib if gets is not None and gib else None,
    }
