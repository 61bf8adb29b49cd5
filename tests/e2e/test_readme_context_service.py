"""The README's "Context service" section run as a reader runs it: its views file, its
curl commands and its SDK example against a broker process and `contextplane context`,
with the answers checked against the records the test produced."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.services.context.client import ContextClient
from tests.support.broker import BrokerProcess
from tests.support.context import TIMEOUT_S, ContextProcess
from tests.support.readme import section, walkthrough

HEADING = "## Context service"


def produce(bootstrap: str, topic: str, key: str, value: dict[str, Any]) -> int:
    offsets: list[int] = []
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    producer.produce(
        topic,
        key=key.encode(),
        value=json.dumps(value).encode(),
        on_delivery=lambda error, message: offsets.append(message.offset()),
    )
    producer.flush(TIMEOUT_S)
    assert len(offsets) == 1
    return offsets[0]


def test_readme_context_service_walkthrough(tmp_path: Path) -> None:
    (views,) = re.findall(r"^```toml\n(.*?)^```$", section(HEADING), re.M | re.S)
    (views_path := tmp_path / "views.toml").write_text(views)
    readme = walkthrough(HEADING)
    broker = BrokerProcess(tmp_path / "broker").start()
    service = None
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topics = [NewTopic(t, 1, 1) for t in ("crm.accounts", "support.tickets")]
        for future in admin.create_topics(topics).values():
            future.result(TIMEOUT_S)
        assert produce(broker.bootstrap, "crm.accounts", "a1", {"tier": "gold"}) == 0
        assert produce(broker.bootstrap, "crm.accounts", "a1", {"tier": "platinum"}) == 1
        ticket = {"account_id": "a1", "subject": "refund"}
        assert produce(broker.bootstrap, "support.tickets", "T-1", ticket) == 0
        service = ContextProcess(
            broker.bootstrap, views_path, tmp_path / "context", tmp_path / "context.log"
        ).start()
        url = service.url
        # Everything produced applied, before the README's unfenced read.
        caught_up = {("crm.accounts", 0): 1, ("support.tickets", 0): 0}
        ContextClient(url).get("account", "a1", min_offsets=caught_up, timeout_ms=20_000)

        def curl(command: str) -> dict[str, Any]:
            command = command.replace("http://127.0.0.1:8090", url)
            done = subprocess.run(command, shell=True, capture_output=True, timeout=TIMEOUT_S)
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout)

        (entity, fenced, as_of) = (curl(c) for c in readme.commands("curl"))
        now = {"profile": {"tier": "platinum"}, "support.tickets": [ticket]}
        assert entity["state"] == now and entity["freshness"]["target_ms"] == 5000
        changed_by = (entity["changed_by"]["topic"], entity["changed_by"]["offset"])
        assert changed_by in {("crm.accounts", 1), ("support.tickets", 0)}
        assert fenced["state"] == now
        # Below crm.accounts offset 1 and none of the tickets: the first profile only.
        assert as_of["state"] == {"profile": {"tier": "gold"}}

        (example,) = readme.python
        scope: dict[str, Any] = {}
        exec(example.replace("http://127.0.0.1:8090", url), scope)  # noqa: S102
        assert scope["account"].state == now
        assert scope["before"].state == {"profile": {"tier": "gold"}}
        assert scope["then"].state == now
        assert scope["then"].as_of == {("crm.accounts", 0): 2, ("support.tickets", 0): 1}
    finally:
        if service is not None:
            service.stop()
        broker.stop()
