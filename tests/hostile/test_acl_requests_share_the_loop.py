"""Large ACL requests do not wedge the broker (issue #10, attack findings B1):

* one DeleteAcls with 100 identical match-all filters over 2,000 ACLs answers Kafka's
  result (every filter lists every ACL) while a probe on another connection keeps being
  answered, and audits each deleted ACL once (it held the loop for 26 s and wrote
  200,000 audit lines before);
* SIGTERM while a DeleteAcls of thousands of distinct filters over 20,000 ACLs is being
  matched stops the broker within shutdown.timeout.ms (it ignored SIGTERM before).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

from conformance.wire import Acl, acl_filter, create_acls, delete_acls
from tests.hostile.support import PROBE_ANSWER_S, Probe, create_topic
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:ANONYMOUS",
    "shutdown.timeout.ms": "3000",
}
TOPIC, LITERAL, WRITE, ALLOW = 2, 3, 4, 3
# Liveness bounds for a busy 2-core machine, not performance claims.
PROBE_GAP_S = 2.5
STOP_SLACK_S = 10.0


def add_acls(client: RawClient, count: int) -> None:
    for start in range(0, count, 10_000):
        acls = [
            Acl(TOPIC, "t", LITERAL, f"User:u{i}", "*", WRITE, ALLOW)
            for i in range(start, min(count, start + 10_000))
        ]
        assert {r.error_code for r in create_acls(client, acls).results} == {0}


def audit_lines(broker: BrokerProcess, api: str) -> int:
    assert broker.log_path is not None
    text = broker.log_path.read_text(errors="replace")
    return sum(1 for line in text.splitlines() if f"audit {api} " in line)


def test_identical_delete_filters_are_answered_without_stalling_others(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker", settings=AUTHORIZER).start()
    try:
        admin = RawClient(broker.bootstrap, "admin")
        admin.sock.settimeout(120)
        create_topic(admin, "probe")
        add_acls(admin, 2_000)
        with Probe(broker, "probe").running() as probe:
            response = delete_acls(admin, [acl_filter()] * 100)
        assert [len(r.matching_acls) for r in response.filter_results] == [2_000] * 100
        assert not probe.failures, probe.failures
        assert max(probe.latencies) < PROBE_GAP_S, max(probe.latencies)
        wait_until(lambda: audit_lines(broker, "DeleteAcls") >= 2_000, 10, "the audit lines")
        assert audit_lines(broker, "DeleteAcls") == 2_000
    finally:
        broker.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def test_sigterm_during_a_large_delete_acls_stops_the_broker(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker", settings=AUTHORIZER).start()
    assert broker.process is not None
    try:
        admin = RawClient(broker.bootstrap, "admin")
        admin.sock.settimeout(120)
        add_acls(admin, 20_000)
        # Distinct filters the index cannot narrow (only the host differs): each one is
        # matched against every ACL, 40 million matches in all.
        filters = [acl_filter(host=f"10.0.{i // 256}.{i % 256}") for i in range(2_000)]
        sender = threading.Thread(target=_send_ignoring_the_end, args=(admin, filters))
        busy_from = cpu_seconds(broker.process.pid)
        sender.start()
        wait_until(
            lambda: cpu_seconds(broker.process.pid) > busy_from + 1.0,  # type: ignore[union-attr]
            60,
            "the broker working on the DeleteAcls",
        )
        started = time.monotonic()
        broker.process.send_signal(signal.SIGTERM)
        broker.process.wait(3 + STOP_SLACK_S)
        assert time.monotonic() - started < 3 + STOP_SLACK_S
        sender.join(PROBE_ANSWER_S)
    finally:
        if broker.process.poll() is None:
            broker.process.kill()
            broker.process.wait()


def _send_ignoring_the_end(client: RawClient, filters: list[dict[str, object]]) -> None:
    # The broker stops before answering: that is what the test asks of it.
    with contextlib.suppress(OSError):
        delete_acls(client, filters)
