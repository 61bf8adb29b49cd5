"""Broker-side schema id validation of produced batches, as Confluent Server does it.

A topic with `confluent.value.schema.validation=true` (or the key's) accepts a batch only
if every record's value (key) carries, in Confluent's wire format, the id of a live schema
registered under the subject its strategy names (`subject_strategies.py`). Otherwise the
whole batch is refused with INVALID_RECORD and a record error (KIP-467) per offending
record, and nothing is appended. A null value (a tombstone) or a null key passes, as in
Confluent Server. The ids are judged against the `_schemas` fold in `schema_catalog.py`.

The produce handler calls `check_schema_ids` after the records' framing was validated.
Small uncompressed batches are read on the event loop; the others in the record
validation pool, decompressed within the bound that validation applied.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from contextplane import limits
from contextplane.broker import subject_strategies as subjects
from contextplane.broker.schema_catalog import Refusal, SchemaCatalog
from contextplane.broker.schema_ids import Carried, carried
from contextplane.broker.subject_strategies import Strategy, parse_strategy
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.record_codec import read_records
from contextplane.protocol.record_validation import RecordPolicy, invalid_records
from contextplane.protocol.records import BatchHeader

if TYPE_CHECKING:
    from contextplane.broker.context import RequestContext

# Per record: what its key and its value carry (None: not checked, or null).
RecordIds = list[tuple[Carried | None, Carried | None]]


class ProducedBatch(Protocol):
    """What the produce handler knows of one partition's batch."""

    topic: str
    header: BatchHeader
    batch: memoryview
    policy: RecordPolicy
    error: KafkaError | None


@dataclass(frozen=True, slots=True)
class Rule:
    """A validating topic's strategies; None for the side it does not validate."""

    key: Strategy | None
    value: Strategy | None


def rule_for(configs: Mapping[str, str]) -> Rule | None:
    """The topic's validation, from its config overrides; None if it validates nothing."""
    key = _side(configs, subjects.KEY_VALIDATION, subjects.KEY_STRATEGY)
    value = _side(configs, subjects.VALUE_VALIDATION, subjects.VALUE_STRATEGY)
    return None if key is None and value is None else Rule(key, value)


def _side(configs: Mapping[str, str], enabled: str, strategy: str) -> Strategy | None:
    if configs.get(enabled, "false").lower() != "true":
        return None
    return parse_strategy(configs.get(strategy, subjects.DEFAULT_STRATEGY)) or Strategy.TOPIC


async def check_schema_ids(
    ctx: RequestContext, batches: Sequence[ProducedBatch], executor: Executor
) -> None:
    """Set `error` on each batch of a validating topic that a record fails."""
    known = ctx.topics.topics()
    todo: list[tuple[ProducedBatch, Rule]] = []
    for item in batches:
        record = known.get(item.topic) if item.error is None else None
        rule = rule_for(record.configs) if record is not None else None
        if rule is not None:
            todo.append((item, rule))
    if not todo:
        return
    found: dict[int, RecordIds] = {}
    deferred = []
    for item, rule in todo:
        if _read_inline(item.header):
            found[id(item)] = _record_ids(item, rule)
        else:
            deferred.append((item, rule))
    if deferred:
        loop = asyncio.get_running_loop()
        read = await loop.run_in_executor(executor, _all_record_ids, deferred)
        found.update((id(item), ids) for (item, _), ids in zip(deferred, read, strict=True))
    catalog: SchemaCatalog = ctx.services.schemas
    async with catalog.current(ctx.log):
        for item, rule in todo:
            if item.error is None:
                _judge(ctx, catalog, item, rule, found[id(item)])


def _read_inline(header: BatchHeader) -> bool:
    return (
        not header.compression and header.records_count <= limits.RECORD_VALIDATION_INLINE_RECORDS
    )


def _all_record_ids(batches: list[tuple[ProducedBatch, Rule]]) -> list[RecordIds]:
    return [_record_ids(item, rule) for item, rule in batches]


def _record_ids(item: ProducedBatch, rule: Rule) -> RecordIds:
    """What each record carries; on a batch that does not read, its error is set."""
    try:
        _, records = read_records(item.batch, item.policy.decompressed_bytes_max)
    except (ValueError, IndexError) as exc:
        item.error = KafkaError(ErrorCode.invalid_record, f"Records do not read: {exc}")
        return []
    key_rule, value_rule = rule.key, rule.value
    found: RecordIds = []
    for record in records:
        key = value = None
        if key_rule is not None and record.key is not None:
            key = carried(record.key, record.headers, True, key_rule.needs_record_name)
        if value_rule is not None and record.value is not None:
            value = carried(record.value, record.headers, False, value_rule.needs_record_name)
        found.append((key, value))
    return found


def _judge(
    ctx: RequestContext,
    catalog: SchemaCatalog,
    item: ProducedBatch,
    rule: Rule,
    record_ids: RecordIds,
) -> None:
    # Most records of a batch carry the same id: each distinct one is judged once.
    verdicts: dict[tuple[Carried, bool], Refusal | None] = {}
    listed: list[tuple[int, str]] = []
    reasons: Counter[str] = Counter()
    for index, (key, value) in enumerate(record_ids):
        refusal = None
        for found, is_key, strategy in ((key, True, rule.key), (value, False, rule.value)):
            if found is None or strategy is None:
                continue
            verdict = (found, is_key)
            if verdict not in verdicts:
                verdicts[verdict] = catalog.refusal(found, item.topic, is_key, strategy)
            refusal = verdicts[verdict]
            if refusal is not None:
                break
        if refusal is not None:
            reasons[refusal[0]] += 1
            if len(listed) < limits.RECORD_ERRORS_LISTED_MAX:
                listed.append((index, refusal[1]))
    if not reasons:
        return
    item.error = invalid_records(sum(reasons.values()), listed)
    for reason, count in reasons.items():
        ctx.services.stats.schema_rejected(item.topic, reason, count)
