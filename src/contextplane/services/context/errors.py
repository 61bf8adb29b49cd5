"""The context service's errors, answered as RFC 9457 problem details
(`application/problem+json`): `type` names the kind, `detail` says what to do.

* ContextError
  - 400 bad-request       a body or query that is not what the route reads
  - 400 bad-fence         a fence naming a partition the view does not read, or a wait
                          longer than the bound
  - 400 bad-as-of         an as_of vector naming a partition the view does not read, a
                          negative offset, or given with a fence
  - 404 unknown-view
  - 408 body-timeout      a request body trickled in too slowly
  - 409 as-of-ahead       an as_of offset past its partition's end (the last stable
                          offset); `ahead` lists each with its end; or an as_of
                          timestamp not yet past (`timestamp_ms`, `now_ms`)
  - 410 as-of-deleted     records an as_of read needs were deleted by retention and no
                          snapshot starts after them; `deleted` lists each partition;
                          or an as_of timestamp older than a partition's retained log
  - 413 body-too-large
  - 421 not-owner         a partitioned instance asked for an entity (or a fence on a
                          partition) another instance owns; `owner` names it (client id,
                          host, and `url` when it advertised one), `partition` the number
  - 422 as-of-too-far     an as_of read would scan more records than the bound, or keep
                          more bytes of one entity's records than its bound
  - 503 too-many-waits    more fenced reads waiting at once than the bound
  - 503 too-many-as-of    more point-in-time reads running at once than the bound
  - 503 as-of-failed      reading the sources for an as_of read failed
  - 503 partition-moving  the entity's partition is being handed over (a rebalance):
                          no instance serves it yet; retry
  - 503 not-applying      the apply loop stopped (fenced by a newer instance, or a fault)
  - 504 fence-timeout     the view did not reach the fence in time; `short` lists where
                          each partition is
  - 504 as-of-timeout     an as_of read did not finish within its time bound
"""

from __future__ import annotations

from typing import Any


class ContextError(Exception):
    def __init__(self, status: int, kind: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {
            "type": f"/problems/{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


def bad_request(detail: str) -> ContextError:
    return ContextError(400, "bad-request", "Bad request", detail)


def bad_fence(detail: str) -> ContextError:
    return ContextError(400, "bad-fence", "Bad read fence", detail)


def unknown_view(view: str, known: list[str]) -> ContextError:
    return ContextError(
        404, "unknown-view", "Unknown view", f"no view {view!r}; views: {', '.join(known)}"
    )


def body_timeout(seconds: float) -> ContextError:
    return ContextError(
        408,
        "body-timeout",
        "Request body too slow",
        f"the body did not arrive within {seconds:g} s",
    )


def body_too_large(limit_bytes: int) -> ContextError:
    return ContextError(
        413, "body-too-large", "Request body too large", f"a body is at most {limit_bytes} bytes"
    )


def too_many_waits(limit: int) -> ContextError:
    return ContextError(
        503,
        "too-many-waits",
        "Too many fenced reads waiting",
        f"{limit} fenced reads are already waiting; retry later",
    )


def not_applying(reason: str) -> ContextError:
    return ContextError(
        503, "not-applying", "The view stopped applying", f"the apply loop stopped: {reason}"
    )


def fence_timeout(view: str, timeout_ms: int, short: dict[tuple[str, int], int]) -> ContextError:
    listed = [
        {"topic": topic, "partition": partition, "position": position}
        for (topic, partition), position in sorted(short.items())
    ]
    where = ", ".join(f"{t}[{p}] at {position}" for (t, p), position in sorted(short.items()))
    return ContextError(
        504,
        "fence-timeout",
        "Read fence not reached",
        f"view {view!r} did not apply the fence's offsets within {timeout_ms} ms: {where}",
        short=listed,
    )


Ends = dict[tuple[str, int], tuple[int, int]]  # (topic, partition) -> (offset asked, bound)


def _partitions(found: Ends, asked: str, bound: str) -> list[dict[str, Any]]:
    return [
        {"topic": topic, "partition": partition, asked: offset, bound: limit}
        for (topic, partition), (offset, limit) in sorted(found.items())
    ]


def bad_as_of(detail: str) -> ContextError:
    return ContextError(400, "bad-as-of", "Bad as_of vector", detail)


def as_of_ahead(ahead: Ends) -> ContextError:
    where = ", ".join(f"{t}[{p}] {at} > {end}" for (t, p), (at, end) in sorted(ahead.items()))
    return ContextError(
        409,
        "as-of-ahead",
        "as_of is ahead of the log",
        f"as_of names offsets past the end (last stable offset) of their partitions: {where};"
        " a state there does not exist yet",
        ahead=_partitions(ahead, "as_of", "end"),
    )


def as_of_deleted(deleted: Ends) -> ContextError:
    where = ", ".join(
        f"{t}[{p}] from {start} (log starts at {low})"
        for (t, p), (start, low) in sorted(deleted.items())
    )
    return ContextError(
        410,
        "as-of-deleted",
        "Records needed were deleted",
        f"the state as of this vector needs records that retention deleted and no snapshot"
        f" starts after them: {where}",
        deleted=_partitions(deleted, "from", "log_start"),
    )


def as_of_time_ahead(timestamp_ms: int, now_ms: int) -> ContextError:
    return ContextError(
        409,
        "as-of-ahead",
        "as_of is ahead of the log",
        f"as_of timestamp_ms {timestamp_ms} is not in the past (now {now_ms}): records"
        " stamped up to it may still arrive, so a state as of it does not exist yet",
        timestamp_ms=timestamp_ms,
        now_ms=now_ms,
    )


def as_of_time_deleted(starts: dict[tuple[str, int], int]) -> ContextError:
    where = ", ".join(f"{t}[{p}] starts at {low}" for (t, p), low in sorted(starts.items()))
    return ContextError(
        410,
        "as-of-deleted",
        "Records needed were deleted",
        "the as_of timestamp is older than the retained log: the first record retained is"
        f" stamped after it, so where it fell among the deleted records is unknown: {where}",
        deleted=[
            {"topic": topic, "partition": partition, "log_start": low}
            for (topic, partition), low in sorted(starts.items())
        ],
    )


def as_of_too_far(detail: str) -> ContextError:
    return ContextError(422, "as-of-too-far", "as_of needs too much reading", detail)


def too_many_as_of(limit: int) -> ContextError:
    return ContextError(
        503,
        "too-many-as-of",
        "Too many point-in-time reads",
        f"{limit} as_of reads are already running; retry later",
    )


def as_of_failed(reason: str) -> ContextError:
    return ContextError(
        503, "as-of-failed", "Reading the sources failed", f"the as_of read failed: {reason}"
    )


def as_of_timeout(timeout_ms: int) -> ContextError:
    return ContextError(
        504,
        "as-of-timeout",
        "Point-in-time read too slow",
        f"the as_of read did not finish within {timeout_ms} ms",
    )


def not_owner(view: str, entity: str, partition: int, owner: dict[str, Any]) -> ContextError:
    where = owner.get("url") or owner.get("client_id")
    return ContextError(
        421,
        "not-owner",
        "Another instance owns this entity",
        f"{view}/{entity} is in partition {partition}, which instance {where} serves: ask it",
        partition=partition,
        owner=owner,
    )


def partition_moving(view: str, entity: str, partition: int) -> ContextError:
    return ContextError(
        503,
        "partition-moving",
        "Partition being handed over",
        f"{view}/{entity} is in partition {partition}, which no instance serves yet"
        " (the group is rebalancing); retry",
        partition=partition,
    )
