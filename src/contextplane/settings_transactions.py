"""The transaction coordinator's rows of the settings table (`settings_table.SETTINGS`
ends with them, after the audit's): kept apart so the table stays one readable module.
Each is `Setting`'s fields; the names and defaults are Kafka's."""

from __future__ import annotations

from typing import Any

from contextplane.limits import INT_MAX

TRANSACTION_SETTINGS: tuple[dict[str, Any], ...] = (
    dict(
        name="transaction.max.timeout.ms",
        attr="transaction_max_timeout_ms",
        unit="ms",
        meaning="the largest `transaction.timeout.ms` a producer may ask for in InitProducerId "
        "(larger: INVALID_TRANSACTION_TIMEOUT)",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="transaction.abort.timed.out.transaction.cleanup.interval.ms",
        attr="transaction_abort_timed_out_transaction_cleanup_interval_ms",
        unit="ms",
        meaning="how often the coordinator aborts transactions open longer than their "
        "`transaction.timeout.ms`",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="transactional.id.expiration.ms",
        attr="transactional_id_expiration_ms",
        unit="ms",
        meaning="a transactional id with no transaction (Empty, CompleteCommit, CompleteAbort) "
        "for this long is removed from the coordinator; its next InitProducerId starts afresh "
        "with a new producer id",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="transaction.remove.expired.transaction.cleanup.interval.ms",
        attr="transaction_remove_expired_transaction_cleanup_interval_ms",
        unit="ms",
        meaning="how often the coordinator removes transactional ids idle longer than "
        "`transactional.id.expiration.ms`",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="producer.id.expiration.ms",
        attr="producer_id_expiration_ms",
        unit="ms",
        meaning="a partition forgets a producer (its sequence and epoch state) whose last batch "
        "is older than this and that has no open transaction",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="producer.id.expiration.check.interval.ms",
        attr="producer_id_expiration_check_interval_ms",
        unit="ms",
        meaning="how often partitions look for producers past `producer.id.expiration.ms`",
        low=1,
        high=INT_MAX,
    ),
)
