"""`contextplane trace` answers the same after a backlog recovery and after a rollback of
the context service (issue #15 §4): every link is an offset recorded at decision time, so
a decision traced before the context service stopped, fell behind a backlog and caught
up, and before its store was lost and rebuilt from its changelog, traces to the same
tree after each; a decision made once the backlog is applied names the record that
changed the account during the stop, and a decision after the rebuild reads the state
from the same changelog record as before it. A source transaction rolled back (aborted)
in the backlog never becomes the record that changed the state."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from contextplane.services.trace.event import DECISIONS_TOPIC
from contextplane.services.trace.reader import RECORDS_MAX, Reader, find_decision
from tests.e2e.test_decision_trace import (
    TIMEOUT_S,
    Copilot,
    child,
    running_copilot,
    trace,
    wait_for_receipt,
)
from tests.support.context import ContextProcess

BACKLOG = 300


@pytest.fixture(name="plane")
def plane_fixture(tmp_path: Any) -> Iterator[tuple[Copilot, ContextProcess]]:
    with running_copilot(tmp_path) as running:
        yield running


def decide(copilot: Copilot, decision_id: str, at: tuple[int, int], amount: int) -> Any:
    """A refund decision on account a1 behind a fence at `at`; the answer it read."""
    with copilot.decisions.decision(decision_id) as decision:
        account = copilot.context.get(
            "account", "a1", min_offsets={("crm.accounts", at[0]): at[1]}, timeout_ms=30_000
        )
        outcome = copilot.tools.call(
            "refund", {"account_id": "a1", "amount": amount}, f"{decision_id}-refund"
        )
        assert outcome.state == "done"
        decision.write_back("support.replies", *copilot.produce("support.replies", "a1", {}))
    return account


def source_of(tree: dict[str, Any]) -> dict[str, Any]:
    [read] = child(tree, "read")
    [source] = child(read, "source-record")
    return source


def decision_value(copilot: Copilot, decision_id: str) -> dict[str, Any]:
    """The newest recorded value of a decision, as JSON."""
    reader = Reader({"bootstrap.servers": copilot.broker.bootstrap}, TIMEOUT_S, RECORDS_MAX)
    try:
        found, _ = find_decision(reader, decision_id)
        assert found is not None
        value: dict[str, Any] = json.loads(found.value())
        return value
    finally:
        reader.close()


def missing(tree: dict[str, Any]) -> list[str]:
    """The kinds of the links the tree could not follow."""
    own = [tree["kind"]] if tree["status"] == "missing" else []
    return own + [kind for c in tree["children"] for kind in missing(c)]


def same(tree: dict[str, Any]) -> dict[str, Any]:
    """The tree without how the decision was found (a scan's count grows with the topic)."""
    return tree | {"detail": tree["detail"] | {"records_scanned": None}}


def test_the_trace_holds_after_a_backlog_recovery_and_a_rebuild(
    plane: tuple[Copilot, ContextProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    copilot, context = plane
    first_at = copilot.produce("crm.accounts", "a1", {"name": "a1", "tier": "gold"})
    decide(copilot, "d-before", first_at, 10)
    wait_for_receipt(copilot.broker.bootstrap, "crm.accounts", *first_at)
    before = trace(copilot, "d-before", capsys)
    assert source_of(before)["where"] == "crm.accounts[{}]@{}".format(*first_at)
    assert missing(before) == []

    # A backlog: the context service stopped (SIGKILL) while the account changes, other
    # accounts change 300 times and a transaction on the account is rolled back.
    context.kill9()
    for n in range(BACKLOG):
        copilot.produce("crm.accounts", f"other-{n % 40}", {"name": f"o{n}", "tier": "gold"})
    changed_at = copilot.produce("crm.accounts", "a1", {"name": "a1 Ltd", "tier": "gold"})
    aborted = Producer({"bootstrap.servers": copilot.broker.bootstrap, "transactional.id": "crm"})
    aborted.init_transactions(TIMEOUT_S)
    aborted.begin_transaction()
    aborted.produce("crm.accounts", key=b"a1", value=b'{"name": "rolled back", "tier": "none"}')
    aborted.flush(TIMEOUT_S)
    aborted.abort_transaction(TIMEOUT_S)
    last_at = copilot.produce("crm.accounts", "other-0", {"name": "last", "tier": "gold"})
    context.start()
    account = decide(copilot, "d-after-backlog", last_at, 20)
    wait_for_receipt(copilot.broker.bootstrap, "crm.accounts", *changed_at)
    assert account.state is not None and account.state["profile"]["name"] == "a1 Ltd"
    after = trace(copilot, "d-after-backlog", capsys)
    source = source_of(after)
    assert source["status"] == "found" and source["detail"]["via"] == "changelog"
    assert source["where"] == "crm.accounts[{}]@{}".format(*changed_at)
    assert missing(after) == []
    assert same(trace(copilot, "d-before", capsys)) == same(before)

    # A rollback of the context service: its store and snapshots lost, rebuilt from the
    # changelog alone. The old decisions trace the same; a new read answers from the same
    # changelog record the backlog's decision read.
    context.kill9()
    shutil.rmtree(context.data_dir)
    context.start()
    assert same(trace(copilot, "d-before", capsys)) == same(before)
    assert same(trace(copilot, "d-after-backlog", capsys)) == same(after)
    rebuilt = decide(copilot, "d-after-rebuild", last_at, 30)
    assert rebuilt.changelog == account.changelog
    assert source_of(trace(copilot, "d-after-rebuild", capsys))["where"] == source["where"]
    # Offsets that moved under a decision (a copy mirror into another cluster renumbers a
    # transactional topic such as the changelog): its changelog position now holds another
    # state of the entity. The trace says so and follows the answer's own changed_by.
    moved = decision_value(copilot, "d-after-backlog")
    [before_read] = [r for r in before["children"] if r["kind"] == "read"]
    [old_changelog] = child(before_read, "changelog-record")
    moved["reads"][0]["changelog"]["offset"] = int(old_changelog["where"].rsplit("@", 1)[1])
    copilot.produce(DECISIONS_TOPIC, "d-moved", moved)
    shifted = trace(copilot, "d-moved", capsys)
    [read] = child(shifted, "read")
    [changelog] = child(read, "changelog-record")
    assert changelog["status"] == "missing" and "another state of the entity" in changelog["why"]
    source = source_of(shifted)
    assert source["status"] == "found" and source["detail"]["via"] == "answer"
    assert source["where"] == "crm.accounts[{}]@{}".format(*changed_at)
    # Each refund acted once, through all of it.
    assert copilot.endpoint.effects == {
        "d-before-refund": 1,
        "d-after-backlog-refund": 1,
        "d-after-rebuild-refund": 1,
    }
