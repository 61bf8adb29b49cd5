"""The security audit's rows of the settings table (`settings_table.SETTINGS` ends with
them): kept apart so the table stays one readable module. Each is `Setting`'s fields."""

from __future__ import annotations

from typing import Any

from contextplane.limits import INT_MAX

AUDIT_SETTINGS: tuple[dict[str, Any], ...] = (
    dict(
        name="contextplane.audit.topic.retention.ms",
        attr="audit_topic_retention_ms",
        unit="ms",
        meaning="`retention.ms` of the internal topic `__contextplane_audit` when it is created "
        "(at the first start); -1: no limit",
        low=-1,
    ),
    dict(
        name="contextplane.audit.topic.retention.bytes",
        attr="audit_topic_retention_bytes",
        unit="bytes",
        meaning="`retention.bytes` of the internal topic `__contextplane_audit` (one partition) "
        "when it is created; -1: no limit",
        low=-1,
    ),
    dict(
        name="contextplane.audit.denial.records.per.second",
        attr="audit_denial_records_per_second",
        unit="",
        meaning="authorization denial records (and their log lines) one principal may cause per "
        "second (each names up to 100 denied resources of one request and counts the rest); "
        "past it they are counted and summarised in one `io.contextplane.audit.suppressed` "
        "record and log line per principal and second; failed SASL logins and refused client "
        "certificates are bound the same way per client address",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="contextplane.audit.read.receipts.retention.ms",
        attr="audit_read_receipts_retention_ms",
        unit="ms",
        meaning="`retention.ms` of the internal topic `__contextplane_read_receipts` when it is "
        "created; -1: no limit",
        low=-1,
    ),
    dict(
        name="contextplane.audit.read.receipts.retention.bytes",
        attr="audit_read_receipts_retention_bytes",
        unit="bytes",
        meaning="`retention.bytes` of the internal topic `__contextplane_read_receipts` (one "
        "partition) when it is created; -1: no limit",
        low=-1,
    ),
    dict(
        name="contextplane.audit.file",
        attr="audit_file",
        unit="",
        meaning="also append every audit record to this JSON-lines file (empty: none)",
        default_text="empty (none)",
    ),
    dict(
        name="contextplane.audit.buffer.records",
        attr="audit_buffer_records",
        unit="",
        meaning="audit records and read receipts waiting for the sink; when it is full the "
        "overflow policy applies",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="contextplane.audit.flush.interval.ms",
        attr="audit_flush_interval_ms",
        unit="ms",
        meaning="the sink appends what is buffered this often (sooner once 1000 records wait)",
        low=1,
        high=INT_MAX,
    ),
    dict(
        name="contextplane.audit.overflow.policy",
        attr="audit_overflow_policy",
        unit="",
        meaning="`fail-open`: a record that finds the buffer full is dropped, counted and logged; "
        "`fail-closed`: while it is full every request but ApiVersions closes its "
        "connection (clients reconnect and retry), so nothing audited happens unrecorded",
    ),
    dict(
        name="contextplane.audit.allowed.topics",
        attr="audit_allowed_topics",
        unit="",
        meaning="topics whose allowed reads (a Fetch returning records) and writes (Produce) are "
        "audited too, comma-separated; `name*` is a prefix (denials are always audited)",
        default_text="empty (none)",
    ),
    dict(
        name="contextplane.audit.read.receipts.enable",
        attr="audit_read_receipts_enable",
        unit="",
        meaning="record which principal, client and group received which offsets "
        "(`__contextplane_read_receipts`)",
    ),
    dict(
        name="contextplane.audit.read.receipts.window.ms",
        attr="audit_read_receipts_window_ms",
        unit="ms",
        meaning="one receipt aggregates a connection's contiguous reads of a partition this long",
        low=1,
        high=INT_MAX,
    ),
)
