"""The conformance probes `contextplane evaluate` runs, in order, and how each is run: in
a thread of its own, bounded by the timeout (what it made removed after, within
`Settings.cleanup_s` more), one probe's failure never stopping the next."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from contextplane.cli.kafka_client import BrokerUnreachable, exception_text
from contextplane.cli.probes import (
    admin,
    audit,
    connect,
    groups,
    records,
    recovery,
    security,
    transactions,
)
from contextplane.cli.probes.base import (
    FAIL,
    NOT_APPLICABLE,
    PASS,
    NotApplicable,
    ProbeContext,
    ProbeFailure,
    ProbeResult,
    Settings,
    cut,
)
from contextplane.clock import SystemClock

__all__ = ["PROBES", "ProbeResult", "Settings", "run_probes"]

Probe = Callable[[ProbeContext], str]

PROBES: dict[str, Probe] = {
    "produce-fetch": records.produce_fetch,
    **{f"compression-{codec}": records.compression(codec) for codec in records.CODECS},
    "consumer-group": groups.consumer_group,
    "offsets-by-time": records.offsets_by_timestamp,
    "consumer-replay": recovery.consumer_replay,
    "group-offsets": groups.group_offsets,
    "transactions": transactions.transactions,
    "topic-admin": admin.topic_admin,
    "connect-cluster": connect.connect_cluster,
    "connectors": connect.connectors,
    "acls": admin.acls,
    "tls": security.tls,
    "audit-reads": audit.audit_reads,
    "schema-registry": security.schema_registry,
    # Last: what the others made is gone before the cluster restarts.
    "restart": recovery.restart,
}


def run_probes(settings: Settings, names: list[str]) -> Iterator[ProbeResult]:
    """Each named probe's result, as it ends."""
    for name in names:
        yield run_probe(name, PROBES[name], settings)


def run_probe(name: str, probe: Probe, settings: Settings) -> ProbeResult:
    clock = SystemClock()
    started_ms = clock.monotonic_ms()
    ctx = ProbeContext(name, settings, started_ms + int(settings.timeout_s * 1000))
    outcome: list[tuple[str, str]] = []

    def body() -> None:
        try:
            outcome.append((PASS, probe(ctx)))
        except NotApplicable as exc:
            outcome.append((NOT_APPLICABLE, str(exc)))
        except (ProbeFailure, BrokerUnreachable) as exc:  # written to be read
            outcome.append((FAIL, str(exc)))
        except Exception as exc:  # noqa: BLE001 - any error is the probe's failure
            outcome.append((FAIL, _failure_text(exc)))
        finally:
            with contextlib.suppress(Exception):  # best effort: the result stands
                ctx.cleanup()

    # A daemon thread: a client stuck past every bound does not keep the command running.
    thread = threading.Thread(target=body, name=f"probe-{name}", daemon=True)
    thread.start()
    thread.join(settings.timeout_s + settings.cleanup_s)
    seconds = (clock.monotonic_ms() - started_ms) / 1000
    if not outcome:
        return ProbeResult(name, FAIL, f"no result within {settings.timeout_s:g} s", seconds)
    result, evidence = outcome[0]
    return ProbeResult(name, result, cut(evidence), seconds)


def _failure_text(exc: Exception) -> str:
    """Kafka's error as the other commands name it; anything else with its type."""
    from confluent_kafka import KafkaException

    if isinstance(exc, KafkaException):
        return exception_text(exc)
    return f"{type(exc).__name__}: {exc}"
