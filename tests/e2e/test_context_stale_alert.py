"""The stale alert end to end: a view with a freshness target, whose context service is
held behind its source by a consumer quota on its client id (`ctx-sources`, set with
`contextplane quota`), logs one WARNING naming the view, its lag and age, and its metric
says stale; once the quota is removed it catches up, logs that the view is fresh again,
and the metric says so. No clock is asserted: the test waits for what the service says.

A fetch over the quota is answered with no partitions, so the consumer's own ends stand
still while it is held: the ends are asked of the leaders (`ends.py`), checked here too."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from confluent_kafka import Producer

from contextplane.services.context.ends import EndOffsets
from tests.support.broker import BrokerProcess
from tests.support.cli import contextplane
from tests.support.context import (  # noqa: F401 - fixtures
    TIMEOUT_S,
    VIEWS,
    ContextProcess,
    broker_fixture,
)
from tests.support.wait import wait_until

# A target of 500 ms, and a quota of 20 KB/s against some 1 MB of tickets: the view stays
# behind for tens of seconds once its first fetches are in, long past the target.
TARGETED = VIEWS.replace("freshness_target_ms = 60000", "freshness_target_ms = 500")
QUOTA = "consumer_byte_rate=20000"
RECORDS = 4_000


def stale_metric(service: ContextProcess) -> str:
    with urllib.request.urlopen(f"{service.url}/metrics", timeout=TIMEOUT_S) as response:
        lines = response.read().decode().splitlines()
    return next(line for line in lines if line.startswith("contextplane_context_stale{"))


def test_a_view_held_behind_its_target_alerts_and_recovers(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    assert TARGETED != VIEWS
    views = tmp_path / "views.toml"
    views.write_text(TARGETED)
    service = ContextProcess(
        broker.bootstrap, views, tmp_path / "context", tmp_path / "context.log"
    ).start()
    try:
        assert stale_metric(service) == 'contextplane_context_stale{view="account"} 0.0'
        limited = contextplane(
            "quota",
            "alter",
            "--client",
            "ctx-sources",
            "--add",
            QUOTA,
            "--bootstrap-server",
            broker.bootstrap,
        )
        assert limited.status == 0, limited
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        for n in range(RECORDS):
            value = {"account": {"id": f"a{n % 50}"}, "n": n, "subject": "x" * 200}
            producer.produce("support.tickets", key=str(n).encode(), value=json.dumps(value))
            producer.poll(0)
        producer.flush(TIMEOUT_S)

        def logged(text: str) -> bool:
            return text in service.log_path.read_text(errors="replace")

        wait_until(lambda: logged("view account is stale: "), TIMEOUT_S, "the stale warning")
        assert stale_metric(service) == 'contextplane_context_stale{view="account"} 1.0'
        assert "(target 500 ms)" in service.log_path.read_text()

        released = contextplane(
            "quota",
            "alter",
            "--client",
            "ctx-sources",
            "--delete",
            "consumer_byte_rate",
            "--bootstrap-server",
            broker.bootstrap,
        )
        assert released.status == 0, released
        wait_until(lambda: logged("view account is fresh again"), 120, "the recovery line")
        assert stale_metric(service) == 'contextplane_context_stale{view="account"} 0.0'
    finally:
        service.stop()


def test_the_ends_are_each_partitions_last_stable_offset(broker: BrokerProcess) -> None:
    """Committed records count, an open transaction's do not (read_committed, as the
    consumer reads); a partition no leader answers for is left out, not guessed."""
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for _ in range(5):
        plain.produce("support.tickets", value=b"{}", partition=0)
    plain.flush(TIMEOUT_S)
    open_txn = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "ends-t"})
    open_txn.init_transactions(TIMEOUT_S)
    open_txn.begin_transaction()
    for _ in range(3):
        open_txn.produce("support.tickets", value=b"{}", partition=1)
    open_txn.flush(TIMEOUT_S)
    ends = EndOffsets({"bootstrap.servers": broker.bootstrap}).ask(
        [("support.tickets", 0), ("support.tickets", 1), ("no.such.topic", 0)], 5.0
    )
    assert ends == {("support.tickets", 0): 5, ("support.tickets", 1): 0}
    open_txn.commit_transaction(TIMEOUT_S)
    ends = EndOffsets({"bootstrap.servers": broker.bootstrap}).ask([("support.tickets", 1)], 5.0)
    assert ends == {("support.tickets", 1): 4}  # three records and the commit marker
