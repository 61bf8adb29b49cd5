"""DeleteAcls with repeated and overlapping filters, and Kafka's bound on the ACLs one
CreateAcls or DeleteAcls may change (its controller's MAX_RECORDS_PER_USER_OP, 10,000),
on the settings of _acl_common.py (StandardAuthorizer, every client User:ANONYMOUS)."""

from __future__ import annotations

from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.scenarios._acl_common import (
    ALICE,
    GROUP,
    LITERAL,
    OPEN,
    READ,
    TOPIC,
    count_acls,
    deleted_bindings,
    grant,
    revoke,
    settle,
)
from conformance.wire import Acl, acl_filter, err

BOUND = 10_000


@scenario(settings=OPEN)
def repeated_delete_filters(ctx: Ctx) -> None:
    """One DeleteAcls with the same match-all filter three times and a filter for one of
    the ACLs between them: every filter lists every ACL it matches, each ACL is removed
    once."""
    client = ctx.raw()
    try:
        grant(
            ctx,
            client,
            "create",
            [
                Acl(TOPIC, "acl-dup-a", operation=READ, principal=ALICE),
                Acl(TOPIC, "acl-dup-b", operation=READ, principal=ALICE),
                Acl(GROUP, "acl-dup-g", operation=READ, principal=ALICE),
            ],
        )
        deleted = wire.delete_acls(
            client,
            [
                acl_filter(),
                acl_filter(resource_type=TOPIC, name="acl-dup-a", pattern_type=LITERAL),
                acl_filter(),
                acl_filter(),
            ],
        )
        ctx.record("deleted", deleted_bindings(deleted))
        ctx.check(settle(client, 0), "deletions visible")
        ctx.record("left", count_acls(client))
    finally:
        revoke(client)


def _errors(results: Any) -> list[Any]:
    """The distinct (error, message) pairs of a response's entries."""
    return sorted({(err(r.error_code), r.error_message) for r in results})


def _bound_acls(count: int, start: int = 0) -> list[Acl]:
    return [Acl(TOPIC, f"acl-bound-{i}", principal=ALICE) for i in range(start, start + count)]


@scenario(quick=False, settings=OPEN)
def changes_per_request_are_bounded(ctx: Ctx) -> None:
    """CreateAcls of 10,001 new ACLs is refused whole; 10,000 are accepted; DeleteAcls
    that would remove 10,001 is refused whole, and so is one whose second match-all filter
    matches again once 10,000 are taken."""
    client = ctx.raw()
    client.sock.settimeout(120)
    try:
        over = wire.create_acls(client, _bound_acls(BOUND + 1))
        ctx.record("create_over", (len(over.results), _errors(over.results)))
        ctx.check(settle(client, 0, timeout=5), "nothing created")
        ctx.record("after_create_over", count_acls(client))
        at = wire.create_acls(client, _bound_acls(BOUND))
        ctx.record("create_at", _errors(at.results))
        one = wire.create_acls(client, _bound_acls(1, start=BOUND))
        ctx.record("create_one_more", _errors(one.results))
        ctx.check(settle(client, BOUND + 1, timeout=60), "ACLs created")
        refused = wire.delete_acls(client, [acl_filter()])
        ctx.record(
            "delete_over",
            [
                (err(r.error_code), r.error_message, len(r.matching_acls))
                for r in refused.filter_results
            ],
        )
        single = acl_filter(resource_type=TOPIC, name=f"acl-bound-{BOUND}", pattern_type=LITERAL)
        ctx.record("delete_one", deleted_bindings(wire.delete_acls(client, [single])))
        ctx.check(settle(client, BOUND, timeout=60), "one deleted")
        twice = wire.delete_acls(client, [acl_filter(), acl_filter()])
        ctx.record(
            "delete_at_twice",
            [
                (err(r.error_code), r.error_message, len(r.matching_acls))
                for r in twice.filter_results
            ],
        )
        ctx.record("after_refusals", count_acls(client))
        at_bound = wire.delete_acls(client, [acl_filter()])
        ctx.record(
            "delete_at",
            [(err(r.error_code), len(r.matching_acls)) for r in at_bound.filter_results],
        )
        ctx.check(settle(client, 0, timeout=60), "all deleted")
    finally:
        for start in range(0, BOUND + 1, 5_000):
            names = [f"acl-bound-{i}" for i in range(start, min(BOUND + 1, start + 5_000))]
            wire.delete_acls(
                client,
                [acl_filter(resource_type=TOPIC, name=n, pattern_type=LITERAL) for n in names],
            )
        revoke(client)
