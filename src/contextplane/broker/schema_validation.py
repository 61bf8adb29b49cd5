"""Broker-side schema id validation of produced batches, as Confluent Server does it.

A topic with `confluent.value.schema.validation=true` (or the key's) accepts a batch only
if every record's value (key) carries, in Confluent's wire format, the id of a live schema
registered under the subject its strategy names (`subject_strategies.py`). Otherwise the
whole batch is refused with INVALID_RECORD and a record error (KIP-467) per offending
record, and nothing is appended (on a topic with a dead-letter topic, `dead_letters.py`
then writes it there, from each record's reason in `schema_refusals`). A null value (a
tombstone) or a null key passes, as in Confluent Server. The ids are judged against the
`_schemas` fold in `schema_catalog.py`.

The produce handler calls `check_schema_ids` after the records' framing was validated.
Only the first bytes of each key and value are read (`record_codec.record_heads`, the
compiled walker). A batch record validation would walk on the event loop (at most 1,000
records, 1 MiB decompressed) is read there; the others in the record validation pool,
decompressed within the bound validation applied.
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
from contextplane.broker.schema_catalog import NO_SCHEMA_ID, Refusal, SchemaCatalog
from contextplane.broker.schema_ids import (
    GUID_HEADERS,
    GUID_NOT_SUPPORTED,
    KEY_GUID_HEADER,
    PATH_BYTES_MAX,
    PREFIX_BYTES,
    VALUE_GUID_HEADER,
    carried,
)
from contextplane.broker.subject_strategies import Strategy, parse_strategy
from contextplane.errors import KafkaError
from contextplane.protocol.decompress import DecompressedTooLarge, DecompressionError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.record_codec import header_names, record_heads
from contextplane.protocol.record_validation import RecordPolicy, invalid_records
from contextplane.protocol.record_walk import HeadTable
from contextplane.protocol.records import BatchHeader

if TYPE_CHECKING:
    from contextplane.broker.context import RequestContext


@dataclass(frozen=True, slots=True)
class Heads:
    """What was read of a batch: the heads of its keys and of its values
    (`record_codec.record_heads`), and the GUID headers of the first records that carry
    no schema id (to say so in their refusal)."""

    keys: HeadTable
    values: HeadTable
    guid_headers: dict[int, set[bytes]]


class ProducedBatch(Protocol):
    """What the produce handler knows of one partition's batch."""

    topic: str
    header: BatchHeader
    batch: memoryview
    policy: RecordPolicy
    error: KafkaError | None
    schema_refusals: dict[int, str] | None


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
    found: dict[int, Heads | None] = {}
    deferred = []
    for item, rule in todo:
        try:
            found[id(item)] = _heads(item, rule, inline=True)
        except _NotInline:
            deferred.append((item, rule))
    if deferred:
        loop = asyncio.get_running_loop()
        read = await loop.run_in_executor(executor, _all_heads, deferred)
        found.update((id(item), heads) for (item, _), heads in zip(deferred, read, strict=True))
    catalog: SchemaCatalog = ctx.services.schemas
    async with catalog.current(ctx.log, catalog.topic in known):
        for item, rule in todo:
            heads = found[id(item)]
            if heads is not None:
                _judge(ctx, catalog, item, rule, heads)


class _NotInline(Exception):
    """The batch is too large to read on the event loop."""


def _all_heads(batches: list[tuple[ProducedBatch, Rule]]) -> list[Heads | None]:
    return [_heads(item, rule, inline=False) for item, rule in batches]


def _heads(item: ProducedBatch, rule: Rule, inline: bool) -> Heads | None:
    """The heads of the batch's keys and values; None, with its error set, if it does
    not read. `inline` (on the event loop): as record validation decides, at most
    RECORD_VALIDATION_INLINE_RECORDS records and RECORD_VALIDATION_INLINE_BYTES
    decompressed, else _NotInline."""
    limit = item.policy.decompressed_bytes_max
    if inline:
        if item.header.records_count > limits.RECORD_VALIDATION_INLINE_RECORDS:
            raise _NotInline
        limit = min(limit, limits.RECORD_VALIDATION_INLINE_BYTES)
    with_path = any(s is not None and s.needs_record_name for s in (rule.key, rule.value))
    head_bytes = PREFIX_BYTES + (PATH_BYTES_MAX if with_path else 0)
    try:
        keys, values = record_heads(item.batch, limit, head_bytes)
        unprefixed = _unprefixed(rule, keys, values)
        guids = header_names(item.batch, limit, unprefixed, GUID_HEADERS) if unprefixed else {}
        return Heads(keys, values, guids)
    except DecompressedTooLarge as exc:
        if inline:
            raise _NotInline from None
        # Validation read it within this bound already; kept an answer all the same.
        item.error = KafkaError(ErrorCode.message_too_large, str(exc))
    except (ValueError, IndexError, DecompressionError) as exc:
        item.error = KafkaError(ErrorCode.invalid_record, f"Records do not read: {exc}")
    return None


def _unprefixed(rule: Rule, keys: HeadTable, values: HeadTable) -> set[int]:
    """The first RECORD_ERRORS_LISTED_MAX records whose validated key or value carries
    no schema id prefix."""
    found: set[int] = set()
    for table, strategy in ((keys, rule.key), (values, rule.value)):
        if strategy is None:
            continue
        missing = {c for c, head in enumerate(table.distinct) if carried(head, False).problem}
        if missing:
            found.update(i for i, code in enumerate(table.codes()) if code in missing)
    return set(sorted(found)[: limits.RECORD_ERRORS_LISTED_MAX])


def _judge(
    ctx: RequestContext, catalog: SchemaCatalog, item: ProducedBatch, rule: Rule, heads: Heads
) -> None:
    """Refuse the batch if a record fails; each distinct head is judged once (a batch's
    records mostly carry one id), and records are visited one by one only on a refusal."""
    refused: dict[int, tuple[Refusal, bool]] = {}  # batch index -> (refusal, of its key)
    sides = ((heads.keys, True, rule.key), (heads.values, False, rule.value))
    for table, is_key, strategy in sides:
        if strategy is None:
            continue
        bad: dict[int, Refusal] = {}
        for code, head in enumerate(table.distinct):
            found = carried(head, strategy.needs_record_name)
            refusal = catalog.refusal(found, item.topic, is_key, strategy)
            if refusal is not None:
                bad[code] = refusal
        if bad:
            for index, code in enumerate(table.codes()):
                if code in bad:
                    refused.setdefault(index, (bad[code], is_key))
    if not refused:
        return
    messages = {
        index: _message(heads, index, refusal, is_key)
        for index, (refusal, is_key) in sorted(refused.items())
    }
    listed = list(messages.items())[: limits.RECORD_ERRORS_LISTED_MAX]
    item.error = invalid_records(len(refused), listed)
    item.schema_refusals = messages  # each record's reason, for a dead-letter topic
    reasons = Counter(refusal[0] for refusal, _ in refused.values())
    for reason, count in reasons.items():
        ctx.services.stats.schema_rejected(item.topic, reason, count)


def _message(heads: Heads, index: int, refusal: Refusal, is_key: bool) -> str:
    """A record without an id whose header names a schema GUID is told so."""
    guid = KEY_GUID_HEADER if is_key else VALUE_GUID_HEADER
    if refusal[0] == NO_SCHEMA_ID and guid in heads.guid_headers.get(index, ()):
        return GUID_NOT_SUPPORTED
    return refusal[1]
