"""Counters the request path keeps for the /metrics endpoint (console/metrics.py).

Plain integers in dicts, updated once per partition or request on the hot path;
prometheus_client's metric objects (a lock and a label lookup per increment) are built only
when Prometheus scrapes. What the broker already knows elsewhere (offsets, group commits,
the memory budget, object-store requests) is read at scrape time instead of counted here.

Per-topic counters exist only for topics the broker hosts (a produce to an unknown topic
counts in the all-topics totals only), and the exporter drops those of deleted topics, so a
client cannot grow this state with made-up names.
"""

from __future__ import annotations

from dataclasses import dataclass

from contextplane.broker.zones import ZoneLedger

# Each API's most recent requests kept for its latency quantiles: a window, like the JMX
# exporter's view of Kafka's histograms (which decay over about five minutes).
REQUEST_TIMES_KEPT = 1024
# What a request keeps (`RequestTimes.add`): its frame's size, then the perf_counter_ns of
# the six points Kafka's RequestChannel times, as this broker's connection meets them,
# then the throttle time (ms) its response reported.
REQUEST_FIELDS = 8
Row = tuple[int, int, int, int, int, int, int, int]


@dataclass(slots=True)
class TopicCounters:
    """Kafka's BrokerTopicMetrics for one topic (or for all: the `topic`-less series)."""

    messages_in: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    produce_requests: int = 0
    failed_produce_requests: int = 0
    fetch_requests: int = 0


class RequestTimes:
    """One API's requests: how many, and the latest ones' points in a ring, one tuple
    per request (a tuple into a list is ~0.1 µs; seven stores into an array.array are
    six times that). About 330 bytes a request, 0.35 MB for a full ring."""

    __slots__ = ("count", "ring", "_next")

    def __init__(self, count: int = 0, ring: list[Row] | None = None, next_: int = 0) -> None:
        self.count = count
        self.ring: list[Row] = ring if ring is not None else []
        self._next = next_

    def add(self, row: Row) -> None:
        """A request answered: its frame's size and its points (perf_counter_ns): the
        frame whole (received), its handler called (handled) and returned (local), its
        response's turn to be written (dequeued), the response in hand (ready: after
        any wait for the handler's delayed part) and written (written); then the
        response's throttle time (ms)."""
        self.count += 1
        ring = self.ring
        if len(ring) < REQUEST_TIMES_KEPT:
            ring.append(row)
        else:
            ring[self._next] = row
            self._next = (self._next + 1) % REQUEST_TIMES_KEPT

    def copy(self) -> RequestTimes:
        return RequestTimes(self.count, list(self.ring), self._next)

    def rows(self) -> list[Row]:
        """The requests the ring holds, oldest first."""
        return self.ring[self._next :] + self.ring[: self._next]

    def rows_since(self, count: int) -> list[Row]:
        """The rows of the requests after the first `count`, oldest first (as many of
        them as the ring still holds)."""
        rows = self.rows()
        new = min(self.count - count, len(rows))
        return rows[len(rows) - new :] if new > 0 else []

    def since(self, count: int) -> list[float]:
        """The total times (ms, frame whole to response written) of the requests after
        the first `count`, oldest first (as many of them as the ring still holds)."""
        return [(r[6] - r[1]) / 1e6 for r in self.rows_since(count)]


class BrokerStats:
    def __init__(self) -> None:
        self.all_topics = TopicCounters()
        self.topics: dict[str, TopicCounters] = {}
        self.requests: dict[int, RequestTimes] = {}
        # (api key, error code) -> occurrences in responses (Kafka's ErrorsPerSec): at
        # most the APIs served times the error codes Kafka has.
        self.errors: dict[tuple[int, int], int] = {}
        # (operation, resource type) -> authorizations refused: a few dozen keys at most.
        self.denials: dict[tuple[str, str], int] = {}
        # (topic, reason) -> records refused by schema validation (topics hosted here).
        self.schema_rejections: dict[tuple[str, str], int] = {}
        self.schema_dead_letters: dict[tuple[str, str], int] = {}  # (topic, outcome)
        # Share groups' undeliverable records, by outcome (share_dead_letters.py).
        self.share_dead_letters: dict[str, int] = {}
        # KIP-1191's per-group counts, (group, kind) -> count (share_group_metrics.py).
        self.share_dlq_groups: dict[tuple[str, str], int] = {}
        self.masked_records: dict[tuple[str, str], int] = {}  # (topic, action)
        self.zones = ZoneLedger()  # record bytes by the client's zone (zones.py)
        # The continuous balancer's rounds by outcome and the partitions they moved.
        self.balancer_rounds: dict[str, int] = {}
        self.balancer_moves = 0

    def _topic(self, topic: str) -> TopicCounters:
        counters = self.topics.get(topic)
        if counters is None:
            counters = self.topics[topic] = TopicCounters()
        return counters

    def produced(self, topic: str, records: int, size: int) -> None:
        """A batch appended to a partition of `topic` (hosted here). Written out, not
        looped over both counters: this runs once per partition of every produce."""
        counters = self.topics.get(topic) or self._topic(topic)
        counters.messages_in += records
        counters.bytes_in += size
        counters.produce_requests += 1
        every = self.all_topics
        every.messages_in += records
        every.bytes_in += size
        every.produce_requests += 1

    def produce_failed(self, topic: str | None) -> None:
        """A partition's produce refused; `topic` None when it is not hosted here."""
        self.all_topics.produce_requests += 1
        self.all_topics.failed_produce_requests += 1
        if topic is not None:
            counters = self._topic(topic)
            counters.produce_requests += 1
            counters.failed_produce_requests += 1

    def fetched(self, topic: str, size: int) -> None:
        """A partition of `topic` (hosted here) fetched: `size` bytes of records sent."""
        counters = self.topics.get(topic) or self._topic(topic)
        counters.bytes_out += size
        counters.fetch_requests += 1
        every = self.all_topics
        every.bytes_out += size
        every.fetch_requests += 1

    def request_done(
        self,
        api_key: int,
        size: int,
        received: int,
        handled: int,
        local: int,
        dequeued: int,
        ready: int,
        written: int,
        throttle_ms: int = 0,
        errors: dict[int, int] | None = None,
    ) -> None:
        """A request answered (or dropped, for acks=0): `RequestTimes.add`, and its
        response's error codes (code -> occurrences) counted."""
        times = self.requests.get(api_key)
        if times is None:
            times = self.requests[api_key] = RequestTimes()
        times.add((size, received, handled, local, dequeued, ready, written, throttle_ms))
        if errors:
            counts = self.errors
            for code, times_seen in errors.items():
                key = (api_key, code)
                counts[key] = counts.get(key, 0) + times_seen

    def denied(self, operation: str, resource_type: str) -> None:
        key = (operation, resource_type)
        self.denials[key] = self.denials.get(key, 0) + 1

    def schema_rejected(self, topic: str, reason: str, records: int) -> None:
        """`records` of a batch for `topic` refused by schema validation for `reason`."""
        key = (topic, reason)
        self.schema_rejections[key] = self.schema_rejections.get(key, 0) + records

    def schema_dead_lettered(self, topic: str, outcome: str) -> None:
        """A refused batch of `topic` sent to its dead-letter topic: `routed` (the producer
        answered success), `copied` (answered INVALID_RECORD all the same) or `failed`."""
        key = (topic, outcome)
        self.schema_dead_letters[key] = self.schema_dead_letters.get(key, 0) + 1

    def share_dead_lettered(self, outcome: str, records: int) -> None:
        """`records` a share group gave up on: copied to its dead-letter topic (`written`)
        or archived without a copy (`no_topic`, `refused`, `not_here`)."""
        self.share_dead_letters[outcome] = self.share_dead_letters.get(outcome, 0) + records

    def share_dlq_counted(self, group_id: str, kind: str, count: int = 1) -> None:
        """A group's dead-letter copies: `records` written, `produce` appends tried,
        `failed` ones that wrote nothing (Kafka's ShareGroupMetrics DLQ meters)."""
        key = (group_id, kind)
        self.share_dlq_groups[key] = self.share_dlq_groups.get(key, 0) + count

    def masked(self, topic: str, action: str, records: int) -> None:
        """`records` of `topic` masked for a consumer by `action` (or `fail_closed`)."""
        key = (topic, action)
        self.masked_records[key] = self.masked_records.get(key, 0) + records

    def balancer_round(self, moves: int) -> None:
        """A round of the continuous balancer (cluster/autobalancer.py): `moved`
        partitions, or `skipped` (unsettled, in flight, balanced enough)."""
        outcome = "moved" if moves else "skipped"
        self.balancer_rounds[outcome] = self.balancer_rounds.get(outcome, 0) + 1
        self.balancer_moves += moves

    def forget_topics_except(self, hosted: set[str]) -> None:
        """Drop the counters of topics no longer hosted (deleted or moved away)."""
        for topic in [t for t in self.topics if t not in hosted]:
            del self.topics[topic]
        for key in [k for k in self.schema_rejections if k[0] not in hosted]:
            del self.schema_rejections[key]
        for key in [k for k in self.schema_dead_letters if k[0] not in hosted]:
            del self.schema_dead_letters[key]
        for key in [k for k in self.masked_records if k[0] not in hosted]:
            del self.masked_records[key]
