"""The context service's errors, answered as RFC 9457 problem details
(`application/problem+json`): `type` names the kind, `detail` says what to do.

* ContextError
  - 400 bad-request       a body or query that is not what the route reads
  - 400 bad-fence         a fence naming a partition the view does not read, or a wait
                          longer than the bound
  - 404 unknown-view
  - 408 body-timeout      a request body trickled in too slowly
  - 413 body-too-large
  - 503 too-many-waits    more fenced reads waiting at once than the bound
  - 503 not-applying      the apply loop stopped (fenced by a newer instance, or a fault)
  - 504 fence-timeout     the view did not reach the fence in time; `short` lists where
                          each partition is
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
