"""Kafka Connect: what a Connect worker needs from the cluster (without one), and with
`--connect URL` the connectors a worker runs and their state."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from contextplane.cli.kafka_client import exception_text
from contextplane.cli.probes.base import NotApplicable, ProbeContext, ProbeFailure
from contextplane.cli.probes.clients import Record, produce, read_back

# A Connect REST answer larger than this is not a connector list this command reads.
_BODY_MAX = 4 * 1024 * 1024
_FAILED = "FAILED"
# The worker's three internal topics (config, offsets, status), compacted, as Connect
# creates them; it refuses to start on one whose cleanup.policy is not compact.
_INTERNAL = {"configs": 1, "offsets": 3, "status": 2}


def connect_cluster(ctx: ProbeContext) -> str:
    """Connect's internal topics created with cleanup.policy=compact and described so
    (DescribeConfigs, as the worker checks); keyed records read back; a source offset
    written with a record in one transaction (exactly-once source, KIP-618), an aborted
    one unseen by read_committed."""
    from confluent_kafka import KafkaException, Producer

    from contextplane.cli.probes.admin import topic_configs

    topics = {
        name: ctx.create_topic(partitions, {"cleanup.policy": "compact"})
        for name, partitions in _INTERNAL.items()
    }
    for name, topic in topics.items():
        entry = topic_configs(ctx, topic).get("cleanup.policy")
        if entry is None or entry.value != "compact":
            shown = None if entry is None else entry.value
            raise ProbeFailure(f"{name} topic: cleanup.policy described as {shown!r}")
    config = [Record(b'{"tasks": 1}', b"connector-evaluate"), Record(None, b"connector-old")]
    produce(ctx, topics["configs"], config, **{"enable.idempotence": True})
    if [m.key() for m in read_back(ctx, topics["configs"], 2)] != [r.key for r in config]:
        raise ProbeFailure("config topic: keyed records read back differ")
    data = ctx.create_topic()
    producer = Producer(
        ctx.client_config(
            **{
                "transactional.id": ctx.unique("source-task"),
                "transaction.timeout.ms": max(1000, int(ctx.settings.timeout_s * 1000)),
            }
        )
    )
    offsets = [(b"position-1", True), (b"position-2", False)]
    try:
        producer.init_transactions(ctx.remaining_s())
        for position, commit in offsets:
            producer.begin_transaction()
            producer.produce(data, value=position, partition=0)
            producer.produce(topics["offsets"], key=b'["source",{"file":"f"}]', value=position)
            producer.flush(ctx.remaining_s())
            if commit:
                producer.commit_transaction(ctx.remaining_s())
            else:
                producer.abort_transaction(ctx.remaining_s())
    except KafkaException as exc:
        raise ProbeFailure(f"transactional source producer: {exception_text(exc)}") from None
    finally:
        producer.flush(0)
    # A transaction after the abort moves the last stable offset past its marker.
    produce(ctx, data, [Record(b"after")], **{"enable.idempotence": True})
    seen = [m.value() for m in read_back(ctx, data, 2, **{"isolation.level": "read_committed"})]
    if seen != [b"position-1", b"after"]:
        raise ProbeFailure(f"read_committed read {seen} from the source's topic")
    return (
        "config, offsets and status topics created and described with cleanup.policy="
        "compact; keyed records and a tombstone read back; a record and its source offset "
        "committed in one transaction, an aborted one unseen by read_committed"
    )


def connectors(ctx: ProbeContext) -> str:
    """The connectors of the worker at `--connect` and their tasks' states
    (GET /connectors?expand=status); a FAILED connector or task fails the probe."""
    url = ctx.settings.connect_url
    if url is None:
        raise NotApplicable("no --connect URL given")
    worker = _get(ctx, url, "/")
    statuses = _get(ctx, url, "/connectors?expand=status")
    if not isinstance(worker, dict) or not isinstance(statuses, dict):
        raise ProbeFailure(f"Connect at {url}: not a Connect REST answer")
    shown, failed = [], []
    for name in sorted(statuses):
        status = statuses[name].get("status", {}) if isinstance(statuses[name], dict) else {}
        state = str(status.get("connector", {}).get("state"))
        tasks = [str(task.get("state")) for task in status.get("tasks", [])]
        running = tasks.count("RUNNING")
        shown.append(f"{name} {state} ({running}/{len(tasks)} tasks RUNNING)")
        if state == _FAILED or _FAILED in tasks:
            failed.append(name)
    what = (
        f"Connect {worker.get('version')} at {url} (cluster {worker.get('kafka_cluster_id')}): "
        f"{len(statuses)} connector(s){': ' if shown else ''}{'; '.join(shown)}"
    )
    if failed:
        raise ProbeFailure(f"FAILED: {', '.join(failed)}; {what}")
    return what


def _get(ctx: ProbeContext, url: str, path: str) -> Any:
    """A Connect REST answer (JSON) within the probe's time and `_BODY_MAX` bytes."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + path, timeout=ctx.remaining_s()) as answer:
            body = answer.read(_BODY_MAX + 1)
    except urllib.error.HTTPError as exc:
        raise ProbeFailure(f"Connect at {url}: GET {path}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProbeFailure(f"Connect at {url}: GET {path}: {reason}") from None
    if len(body) > _BODY_MAX:
        raise ProbeFailure(f"Connect at {url}: GET {path}: more than {_BODY_MAX} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise ProbeFailure(f"Connect at {url}: GET {path}: not JSON") from None
