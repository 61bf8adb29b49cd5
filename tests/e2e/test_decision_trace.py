"""Decision events and `contextplane trace` against a real broker (in process, read
receipts on), the context service and the executor as processes, and a counting tool
endpoint: a decision made through the SDK that reads an account and calls a tool is
traced back to the changelog record the read answered from, the source record it names,
the read receipt of the context service that picked that record up, the ledger entry,
the policy evaluation and the write-back at their offsets; an exception inside the block
still records the decision; links that cannot be followed are shown missing with why,
read receipts on a broker that keeps none among them; a decision the SDK named (a UUIDv7
id) is found by ListOffsets at its time, reading a few records where the scan reads the
whole topic; an unknown id exits 1."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from contextplane.cli.audit_reads import read_receipts, received
from contextplane.cli.main import main
from contextplane.copilot import (
    ActionsClient,
    Context,
    ContextClientError,
    Decisions,
    DecisionTooLargeError,
)
from contextplane.services.actions.txn_epoch import described_epoch
from contextplane.services.trace import reader as trace_reader
from contextplane.services.trace.event import DECISIONS_TOPIC
from tests.support.actions import CountingEndpoint, ExecutorProcess
from tests.support.context import TOPICS, VIEWS, ContextProcess
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

TIMEOUT_S = 60
REPLIES = "support.replies"
# Read receipts closed into records quickly, so a test waits little for its source's.
RECEIPTS_ON = {"contextplane.audit.read.receipts.window.ms": "100"}
RECEIPTS_OFF = {"contextplane.audit.read.receipts.enable": "false"}
# The client id the context service (`--name ctx`) reads its sources with.
CONTEXT_READER = "ctx-sources"

TOOLS = """
[tools.refund]
endpoint = "{url}"
idempotent = true
policy = '''
permit(principal, action, resource == Tool::"refund")
when {{ context.entity has profile && context.entity.profile.tier == "gold"
        && context.arguments.amount <= 100 }};
'''
[tools.refund.context]
view = "account"
entity = "account_id"
"""


@dataclass
class Copilot:
    broker: InProcessBroker
    context: Context
    tools: ActionsClient
    decisions: Decisions
    endpoint: CountingEndpoint
    producer: Producer

    def produce(self, topic: str, key: str, value: dict[str, Any]) -> tuple[int, int]:
        landed: list[tuple[int, int]] = []

        def delivered(error: Any, message: Any) -> None:
            assert error is None, error
            landed.append((message.partition(), message.offset()))

        self.producer.produce(
            topic, key=key.encode(), value=json.dumps(value).encode(), on_delivery=delivered
        )
        self.producer.flush(TIMEOUT_S)
        return landed[0]


@pytest.fixture(scope="module", name="copilot")
def copilot_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Copilot]:
    with running_copilot(tmp_path_factory.mktemp("decision-trace")) as (running, _):
        yield running


@contextmanager
def running_copilot(tmp: Any) -> Iterator[tuple[Copilot, ContextProcess]]:
    """The plane (`start_plane`), the executor with the refund tool, and the copilot's
    clients; the context service too, for tests that stop it."""
    broker, context = start_plane(tmp, RECEIPTS_ON)
    endpoint = CountingEndpoint(honours_key=True)
    tools_file = tmp / "tools.toml"
    tools_file.write_text(TOOLS.format(url=endpoint.url))
    executor = ExecutorProcess(
        broker.bootstrap, tools_file, tmp, tmp / "executor.log", transactional_id="executor-1"
    )
    executor.extra_args = ["--context-url", context.url]
    executor.start()
    running = Copilot(
        broker,
        Context(context.url),
        ActionsClient(broker.bootstrap, executor.url),
        Decisions(broker.bootstrap, source="support-copilot"),
        endpoint,
        Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"}),
    )
    try:
        yield running, context
    finally:
        running.tools.close()
        running.decisions.close()
        executor.stop()
        context.stop()
        endpoint.close()
        broker.stop()


def start_plane(tmp: Any, settings: dict[str, str]) -> tuple[InProcessBroker, ContextProcess]:
    """A broker with the account view's sources and the replies topic, and the context
    service reading them."""
    # The executor's group joins at once rather than after the 3-s initial rebalance delay.
    fast_joins = {"group.initial.rebalance.delay.ms": "0"}
    broker = InProcessBroker(tmp / "broker", settings=fast_joins | settings).start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    wanted = [NewTopic(t, n, 1) for t, n in {**TOPICS, REPLIES: 1}.items()]
    for future in admin.create_topics(wanted).values():
        future.result(TIMEOUT_S)
    views = tmp / "views.toml"
    views.write_text(VIEWS)
    context = ContextProcess(broker.bootstrap, views, tmp / "context", tmp / "context.log")
    context.start()
    return broker, context


def trace(
    copilot: Copilot | str, decision_id: str, capsys: pytest.CaptureFixture[str], *more: str
) -> Any:
    """`contextplane trace ID --output json`: the tree it printed (None: exit 1)."""
    bootstrap = copilot if isinstance(copilot, str) else copilot.broker.bootstrap
    status = main(
        ["trace", decision_id, "--bootstrap-server", bootstrap, "--output", "json", *more]
    )
    out = capsys.readouterr().out
    return json.loads(out) if status == 0 else None


def wait_for_receipt(
    bootstrap: str, topic: str, partition: int, offset: int, reader: str = CONTEXT_READER
) -> None:
    """Until the broker wrote a receipt of the context service's read of that offset (a
    receipt is written once its window closes)."""

    def written() -> bool:
        return any(
            r["topic"] == topic and r["partition"] == partition and received(r, offset)
            for r in read_receipts({"bootstrap.servers": bootstrap}, None, TIMEOUT_S)
            if r["client_id"] == reader
        )

    wait_until(written, TIMEOUT_S, f"a read receipt of {topic}[{partition}]@{offset}", 0.2)


def child(link: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [c for c in link["children"] if c["kind"] == kind]


def test_a_decision_traces_back_to_its_source_ledger_evaluation_and_write_back(
    copilot: Copilot, capsys: pytest.CaptureFixture[str]
) -> None:
    copilot.produce("crm.accounts", "a0", {"name": "a0", "tier": "silver"})
    account_at = copilot.produce("crm.accounts", "a1", {"name": "a1", "tier": "gold"})
    with copilot.decisions.decision("d-refund", correlation_id="conversation-7") as decision:
        account = copilot.context.get(
            "account", "a1", min_offsets={("crm.accounts", account_at[0]): account_at[1]}
        )
        assert account.state is not None and account.state["profile"]["tier"] == "gold"
        outcome = copilot.tools.call("refund", {"account_id": "a1", "amount": 40}, "refund-a1-1")
        assert outcome.state == "done"
        reply_at = copilot.produce(REPLIES, "a1", {"text": "refunded 40"})
        decision.write_back(REPLIES, *reply_at)
        decision.outcome = "refunded 40"
    assert decision.landed is not None
    # The event itself: CloudEvents binary mode, keyed by the decision id.
    record = read_at(copilot.broker.bootstrap, DECISIONS_TOPIC, *decision.landed)
    headers = {name: value.decode() for name, value in record.headers()}
    assert record.key() == b"d-refund"
    assert headers["ce_specversion"] == "1.0" and headers["ce_id"] == "d-refund"
    assert headers["ce_type"] == "io.contextplane.copilot.decision"
    assert headers["ce_source"] == "support-copilot" and headers["ce_time"].endswith("Z")
    assert headers["correlationid"] == "conversation-7" == headers["causationid"]
    # The executor's ledger entry names the decision (the SDK set decision_id).
    entry = copilot.tools.entry("refund-a1-1")
    assert entry is not None and entry["entry"]["decision_id"] == "d-refund"

    wait_for_receipt(copilot.broker.bootstrap, "crm.accounts", *account_at)

    tree = trace(copilot, "d-refund", capsys)
    assert tree["where"] == f"{DECISIONS_TOPIC}[{decision.landed[0]}]@{decision.landed[1]}"
    assert tree["detail"]["outcome"] == "refunded 40"
    assert tree["detail"]["found_by"] == "scan"  # an id of the caller's: no time in it
    [read] = child(tree, "read")
    assert read["label"] == "read account/a1" and read["status"] == "found"
    assert f"crm.accounts[{account_at[0]}]={account_at[1] + 1}" in read["where"]
    # The changelog record the answer came from, holding the state the copilot saw...
    assert account.changelog is not None and account.changelog.topic == "ctx.changelog"
    [changelog] = child(read, "changelog-record")
    assert changelog["status"] == "found"
    assert changelog["where"] == f"ctx.changelog[0]@{account.changelog.offset}"
    assert changelog["detail"]["key"] == '["entity","account","a1"]'
    assert changelog["detail"]["changed_by"] == f"crm.accounts[{account_at[0]}]@{account_at[1]}"
    # ...names the source record...
    [source] = child(read, "source-record")
    assert source["status"] == "found" and source["detail"]["via"] == "changelog"
    assert source["where"] == f"crm.accounts[{account_at[0]}]@{account_at[1]}"
    assert source["detail"]["key"] == "a1"
    # The test's producer is neither idempotent nor transactional: Kafka stamps no id.
    assert source["detail"]["producer_id"] == -1 and not source["detail"]["transactional"]
    # ...and the broker's read receipts say which consumer picked it up.
    receipts = child(source, "read-receipt")
    assert receipts and all(r["status"] == "found" for r in receipts)
    assert all(r["where"].startswith("__contextplane_read_receipts[0]@") for r in receipts)
    picked = [r["detail"] for r in receipts if r["detail"]["client_id"] == CONTEXT_READER]
    assert picked and picked[0]["principal"] == "User:ANONYMOUS"
    # The single instance assigns itself the sources: no group, the service named.
    assert picked[0]["group"] is None and picked[0]["service"] == "ctx"
    assert picked[0]["member"] == "single instance (assign(): joins no group)"
    [call] = child(tree, "tool-call")
    assert call["detail"] == {"key": "refund-a1-1", "state": "done"}
    [request] = child(call, "request")
    assert request["status"] == "found" and request["detail"]["key"] == "refund-a1-1"
    assert request["where"] == "copilot.tool-calls[{partition}]@{offset}".format(
        **entry["entry"]["request"]
    )
    [ledger_entry] = child(call, "ledger-entry")
    assert ledger_entry["status"] == "found"
    assert ledger_entry["detail"]["state"] == "done"
    assert ledger_entry["detail"]["decision_id"] == "d-refund"
    [evaluation] = child(call, "policy-evaluation")
    assert evaluation["status"] == "found" and evaluation["detail"]["decision"] == "allow"
    [written] = child(tree, "write-back")
    assert written["where"] == f"{REPLIES}[{reply_at[0]}]@{reply_at[1]}"
    assert written["status"] == "found" and written["detail"]["key"] == "a1"

    # The same chain as a table: one line per link, indented by depth.
    assert main(["trace", "d-refund", "--bootstrap-server", copilot.broker.bootstrap]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["LINK", "STATUS", "WHERE", "DETAIL"]
    assert lines[1].startswith("d-refund ") and "outcome=refunded 40" in lines[1]
    assert any(
        line.startswith("    changed by ")
        and f"crm.accounts[{account_at[0]}]@{account_at[1]}" in line
        for line in lines
    )
    assert any(line.startswith("      read by ") and CONTEXT_READER in line for line in lines)
    assert not any(" missing " in line for line in lines)

    # The whole trace, its ten topics, asks the cluster's metadata once.
    lookups: list[str | None] = []
    reader = trace_reader.Reader(
        {"bootstrap.servers": copilot.broker.bootstrap},
        TIMEOUT_S,
        trace_reader.RECORDS_MAX,
        consumer=lambda config: CountingLookups(Consumer(config), lookups),
    )
    try:
        found, _ = trace_reader.find_and_trace(reader, "d-refund")
    finally:
        reader.close()
    assert found is not None and found.document() | {"detail": {}} == tree | {"detail": {}}
    assert lookups == [None]  # one listing of every topic, none per link


class CountingLookups:
    """A consumer whose metadata lookups (`list_topics`) are noted: the topic asked for,
    None for every topic."""

    def __init__(self, consumer: Consumer, lookups: list[str | None]) -> None:
        self._consumer = consumer
        self._lookups = lookups

    def list_topics(self, topic: str | None = None, **options: Any) -> Any:
        self._lookups.append(topic)
        return self._consumer.list_topics(topic, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def test_a_source_record_names_the_producer_of_its_batch(
    copilot: Copilot, capsys: pytest.CaptureFixture[str]
) -> None:
    """The producer id and epoch of the batch holding each source record (read raw: the
    Python client does not expose them) are the ones the transaction coordinator gave the
    transactional producer, and a fresh id for an idempotent one."""
    bootstrap = copilot.broker.bootstrap
    writer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "crm-writer"})
    writer.init_transactions(TIMEOUT_S)
    writer.begin_transaction()
    landed: dict[str, tuple[int, int]] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        landed[message.key().decode()] = (message.partition(), message.offset())

    writer.produce("crm.accounts", key=b"a4", value=b'{"tier": "gold"}', on_delivery=delivered)
    writer.commit_transaction(TIMEOUT_S)
    idempotent = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    idempotent.produce("crm.accounts", key=b"a5", value=b'{"tier": "gold"}', on_delivery=delivered)
    idempotent.flush(TIMEOUT_S)
    described = described_epoch({"bootstrap.servers": bootstrap}, "crm-writer", TIMEOUT_S)
    with copilot.decisions.decision("d-producers"):
        for key in ("a4", "a5"):
            fence = {("crm.accounts", landed[key][0]): landed[key][1]}
            assert copilot.context.get("account", key, min_offsets=fence).found
    tree = trace(copilot, "d-producers", capsys)
    sources = {}
    for read in child(tree, "read"):
        [source] = child(read, "source-record")
        sources[source["detail"]["key"]] = source
    assert sources["a4"]["where"] == "crm.accounts[{}]@{}".format(*landed["a4"])
    assert sources["a4"]["detail"]["producer_id"] == described.producer_id
    assert sources["a4"]["detail"]["producer_epoch"] == described.epoch
    assert sources["a4"]["detail"]["transactional"] is True
    assert sources["a5"]["where"] == "crm.accounts[{}]@{}".format(*landed["a5"])
    assert sources["a5"]["detail"]["producer_id"] not in (-1, described.producer_id)
    assert sources["a5"]["detail"]["transactional"] is False
    assert main(["trace", "d-producers", "--bootstrap-server", bootstrap]) == 0
    table = capsys.readouterr().out
    assert f"producer_id={described.producer_id}" in table


# A partitioned instance's view: one source, so any partition count is co-partitioned.
ACCOUNTS_VIEW = """
[views.account]
[[views.account.sources]]
topic = "crm.accounts"
field = "profile"
"""


def owns(url: str) -> bool:
    """Has the partitioned instance at `url` been assigned a partition?"""
    with urllib.request.urlopen(f"{url}/v1/views", timeout=TIMEOUT_S) as response:
        return bool(json.loads(response.read())["partitions"])


def test_a_partitioned_instance_is_named_by_its_group_and_member(
    copilot: Copilot, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    """A context instance started with `--instance` reads its sources as a member of the
    group `NAME-sources`: the receipt of its read names that group, and the trace the
    service and the member (the instance id) the test started."""
    views = tmp_path / "views.toml"
    views.write_text(ACCOUNTS_VIEW)
    service = ContextProcess(
        copilot.broker.bootstrap,
        views,
        tmp_path / "ctxp",
        tmp_path / "ctxp.log",
        name="ctxp",
        extra_args=["--instance", "p1"],
    ).start()
    try:
        wait_until(lambda: owns(service.url), TIMEOUT_S, "the instance owns its partition")
        at = copilot.produce("crm.accounts", "a7", {"name": "a7", "tier": "gold"})
        context = Context(service.url)
        with copilot.decisions.decision("d-partitioned"):
            fence = {("crm.accounts", at[0]): at[1]}
            account = context.get("account", "a7", min_offsets=fence, timeout_ms=30_000)
            assert account.found
        wait_for_receipt(copilot.broker.bootstrap, "crm.accounts", *at, reader="ctxp-sources-p1")
    finally:
        service.stop()
    tree = trace(copilot, "d-partitioned", capsys)
    [read] = child(tree, "read")
    [changelog] = child(read, "changelog-record")
    assert changelog["status"] == "found" and changelog["where"].startswith("ctxp.changelog[")
    [source] = child(read, "source-record")
    assert source["where"] == "crm.accounts[{}]@{}".format(*at)
    picked = [
        r["detail"]
        for r in child(source, "read-receipt")
        if r["status"] == "found" and r["detail"]["client_id"] == "ctxp-sources-p1"
    ]
    assert picked, child(source, "read-receipt")
    assert picked[0]["group"] == "ctxp-sources"
    assert picked[0]["service"] == "ctxp" and picked[0]["member"] == "p1"


def test_an_exception_inside_the_block_still_records_the_decision(
    copilot: Copilot, capsys: pytest.CaptureFixture[str]
) -> None:
    copilot.produce("crm.accounts", "a2", {"name": "a2", "tier": "gold"})
    with (
        pytest.raises(RuntimeError, match="model timed out"),
        copilot.decisions.decision("d-error"),
    ):
        copilot.context.get("account", "a2")
        with pytest.raises(ContextClientError):
            copilot.context.get("no-such-view", "a2")
        raise RuntimeError("model timed out")
    tree = trace(copilot, "d-error", capsys)
    assert tree["detail"]["outcome"] == "error: RuntimeError: model timed out"
    reads = child(tree, "read")
    assert [r["label"] for r in reads] == ["read account/a2", "read no-such-view/a2"]
    assert "error" not in reads[0]["detail"] and "no-such-view" in reads[1]["detail"]["error"]


def test_links_that_cannot_be_followed_are_shown_missing_with_why(
    copilot: Copilot, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source record deleted by retention (DeleteRecords moves the log start past it),
    a key the ledger does not hold (a request for an unknown tool is only rejected), and
    write-backs past the partition's end, to a topic that does not exist and to a
    partition the topic does not have."""
    at = copilot.produce("crm.accounts", "a3", {"name": "a3", "tier": "gold"})
    with copilot.decisions.decision("d-missing") as decision:
        copilot.context.get("account", "a3", min_offsets={("crm.accounts", at[0]): at[1]})
        rejected = copilot.tools.call("no-such-tool", {"account_id": "a3"}, "unknown-tool-1")
        assert rejected.state == "rejected"
        decision.write_back(REPLIES, 0, 1_000_000)
        decision.write_back("no-such-topic", 0, 0)
        decision.write_back(REPLIES, 7, 0)
    admin = AdminClient({"bootstrap.servers": copilot.broker.bootstrap})
    [deleted] = admin.delete_records([TopicPartition("crm.accounts", at[0], at[1] + 1)]).values()
    assert deleted.result(TIMEOUT_S).low_watermark == at[1] + 1

    tree = trace(copilot, "d-missing", capsys)
    [source] = child(child(tree, "read")[0], "source-record")
    assert source["status"] == "missing"
    assert source["why"].startswith(f"deleted: before the log start offset {at[1] + 1}")
    [call] = child(tree, "tool-call")
    [ledger_entry] = child(call, "ledger-entry")
    assert ledger_entry["status"] == "missing"
    assert ledger_entry["why"].startswith("key not in copilot.ledger; rejected at copilot.ledger")
    assert ledger_entry["why"].endswith(": unknown tool 'no-such-tool'")
    [evaluation] = child(call, "policy-evaluation")
    assert evaluation["status"] == "missing"
    written, absent_topic, absent_partition = child(tree, "write-back")
    assert written["status"] == "missing" and written["why"].startswith("past the end")
    assert absent_topic["why"] == "topic no-such-topic: UNKNOWN_TOPIC_OR_PART"
    assert absent_partition["why"].startswith(f"topic {REPLIES} has no partition 7 (")


def test_without_read_receipts_the_link_is_missing_with_why(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broker with read receipts off: the changelog and source links are still found,
    the receipt link says why there is none."""
    broker, context = start_plane(tmp_path, RECEIPTS_OFF)
    decisions = Decisions(broker.bootstrap)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    try:
        producer.produce("crm.accounts", key=b"a9", value=b'{"name": "a9", "tier": "gold"}')
        producer.flush(TIMEOUT_S)
        with decisions.decision() as decision:
            account = Context(context.url).get(
                "account", "a9", min_offsets={("crm.accounts", 0): 0}
            )
            assert account.found
        tree = trace(broker.bootstrap, decision.id, capsys)
    finally:
        decisions.close()
        context.stop()
        broker.stop()
    [read] = child(tree, "read")
    [changelog] = child(read, "changelog-record")
    assert changelog["status"] == "found"
    [source] = child(read, "source-record")
    assert source["status"] == "found" and source["where"] == "crm.accounts[0]@0"
    [receipt] = child(source, "read-receipt")
    assert receipt["status"] == "missing"
    assert receipt["why"].startswith(
        "no read receipt names crm.accounts[0]@0 for a read before the decision (0 receipts read)"
    )
    assert (
        "read receipts off on the broker (contextplane.audit.read.receipts.enable=false)"
        in (receipt["why"])
    )


def test_a_decision_is_found_from_its_time_not_by_scanning(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broker of its own, whose decisions topic holds 2,000 earlier decisions (stamped
    an hour ago): the SDK's id (a UUIDv7) carries the decision's time, so the trace
    starts reading there (ListOffsets) and reads a few records; `--since` does the same
    for an id of the caller's; the scan, which `--since 0` forces, reads them all."""
    broker = InProcessBroker(tmp_path / "broker").start()
    decisions = Decisions(broker.bootstrap)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    try:
        hour_ago_ms = int(time.time() * 1000) - 3_600_000
        for n in range(2_000):
            producer.produce(
                DECISIONS_TOPIC, key=f"old-{n}".encode(), value=b"{}", timestamp=hour_ago_ms
            )
        producer.flush(TIMEOUT_S)
        since = str(int(time.time() * 1000))
        with decisions.decision() as by_sdk:
            by_sdk.write_back(DECISIONS_TOPIC, 0, 0)
        with decisions.decision("d-named"):
            pass

        from_time = trace(broker.bootstrap, by_sdk.id, capsys)
        assert from_time["label"] == by_sdk.id and from_time["detail"]["found_by"] == "time"
        scanned = trace(broker.bootstrap, by_sdk.id, capsys, "--since", "0")
        assert scanned["detail"]["found_by"] == "since"
        assert scanned["detail"]["records_scanned"] == 2_002
        assert from_time["detail"]["records_scanned"] <= 2
        assert from_time["children"] == scanned["children"]
        named = trace(broker.bootstrap, "d-named", capsys, "--since", since)
        assert named["detail"]["found_by"] == "since"
        assert named["detail"]["records_scanned"] <= 2
        # A --since after the decision: not found from there, so the topic is scanned.
        late = str(int(time.time() * 1000) + 60_000)
        rescanned = trace(broker.bootstrap, "d-named", capsys, "--since", late)
        assert rescanned["detail"] == named["detail"] | {
            "found_by": "scan",
            "records_scanned": 2_002,
        }
        # A decision recorded twice (as the MCP server records one per call): --until
        # gives it as it stood then; before its first record it is not found. (Stamped
        # after every earlier record: ListOffsets by time, as Kafka's, finds the first
        # offset whose time or an earlier record's is at or after the time asked.)
        now_ms = int(time.time() * 1000)
        for outcome, stamp in (("first", now_ms + 1_000), ("second", now_ms + 2_000)):
            value = json.dumps({"outcome": outcome}).encode()
            producer.produce(DECISIONS_TOPIC, key=b"d-twice", value=value, timestamp=stamp)
        producer.flush(TIMEOUT_S)
        assert trace(broker.bootstrap, "d-twice", capsys)["detail"]["outcome"] == "second"
        until_first = str(now_ms + 1_500)
        then = trace(broker.bootstrap, "d-twice", capsys, "--until", until_first)
        assert then["detail"]["outcome"] == "first"
        exactly = trace(broker.bootstrap, "d-twice", capsys, "--until", str(now_ms + 2_000))
        assert exactly["detail"]["outcome"] == "second"
        assert trace(broker.bootstrap, "d-twice", capsys, "--until", str(now_ms)) is None
    finally:
        decisions.close()
        broker.stop()
    assert main(["trace", "d-named", "--bootstrap-server", "x:1", "--since", "soon"]) == 2
    assert "--since 'soon': not an ISO 8601 time" in capsys.readouterr().err
    assert main(["trace", "d", "--bootstrap-server", "x:1", "--until", "later"]) == 2
    assert "--until 'later': not an ISO 8601 time" in capsys.readouterr().err
    assert main(["trace", "d", "--bootstrap-server", "x:1", "--since", "5", "--until", "4"]) == 2
    assert "--until: expected at or after --since" in capsys.readouterr().err


def test_an_unknown_decision_id_exits_1(
    copilot: Copilot, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["trace", "no-such-decision", "--bootstrap-server", copilot.broker.bootstrap])
    assert status == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        f"contextplane trace: decision 'no-such-decision' not found in {DECISIONS_TOPIC}"
    )


def test_a_decision_past_the_topics_max_message_bytes_is_refused(copilot: Copilot) -> None:
    """The bound is the topic's own max.message.bytes, read when `Decisions` starts."""
    admin = AdminClient({"bootstrap.servers": copilot.broker.bootstrap})

    def set_max(value: str | None) -> None:
        operation = AlterConfigOpType.SET if value else AlterConfigOpType.DELETE
        entry = ConfigEntry("max.message.bytes", value, incremental_operation=operation)
        resource = ConfigResource(
            ConfigResource.Type.TOPIC, DECISIONS_TOPIC, incremental_configs=[entry]
        )
        admin.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)

    set_max("8000")
    small = Decisions(copilot.broker.bootstrap)
    try:
        assert small.bytes_max == 8000
        with (
            pytest.raises(DecisionTooLargeError, match=r"past the 8000 bytes copilot.decisions"),
            small.decision("d-large") as decision,
        ):
            for offset in range(200):
                decision.write_back(REPLIES, 0, offset)
        assert decision.landed is None
    finally:
        small.close()
        set_max(None)


def read_at(bootstrap: str, topic: str, partition: int, offset: int) -> Any:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-decision-reader"})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        message = consumer.poll(TIMEOUT_S)
        assert message is not None and message.error() is None
        return message
    finally:
        consumer.close()
