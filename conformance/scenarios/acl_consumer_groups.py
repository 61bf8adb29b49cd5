"""ACLs and ConsumerGroupHeartbeat (KIP-848), with the StandardAuthorizer on a PLAINTEXT
listener (every client is User:ANONYMOUS; a resource is closed to it by an ACL naming
User:alice, as in acls.py): READ on the group first, then DESCRIBE on every topic the
member names, and a regex resolved against every topic, internal ones included, less the
ones the member may not describe."""

from __future__ import annotations

import time
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.scenarios._acl_common import OPEN, grant, heartbeat_acls, revoke
from conformance.scenarios.consumer_groups import CONSUMER_GROUP_DESCRIBE, _heartbeat
from conformance.wire import err
from tests.support.rawclient import RawClient


def _answer(response: Any) -> dict[str, Any]:
    return {
        "error": err(response.error_code),
        "message": response.error_message,
        "member_id": response.member_id,
        "epoch": response.member_epoch,
        "interval": int(response.heartbeat_interval.total_seconds() * 1000),
        "assignment": response.assignment is not None,
    }


def _assigned_topics(client: RawClient, group: str, member: str, timeout_s: float = 15.0) -> Any:
    """Heartbeat until the member is assigned partitions (Kafka resolves a regex
    asynchronously, then computes the target): the names of its topics."""
    joined = wire.retry_coordinator(
        lambda: _heartbeat(client, group, member, 0, regex="acl-cgh-.*|__consumer_offsets")
    )
    if joined.error_code:
        return err(joined.error_code)
    beat, deadline = joined, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # contextplane resolves the regex in the joining heartbeat; Kafka in a later one.
        if beat.assignment is not None and beat.assignment.topic_partitions:
            ids = {t.topic_id for t in beat.assignment.topic_partitions}
            names = {t.topic_id: t.name for t in wire.metadata(client, None).topics}
            _heartbeat(client, group, member, -1)
            return sorted(names.get(i, "?") for i in ids)
        time.sleep(0.25)
        beat = _heartbeat(client, group, member, beat.member_epoch)
    _heartbeat(client, group, member, -1)
    return "no assignment"


@scenario(settings=OPEN)
def heartbeat_topic_describe(ctx: Ctx) -> None:
    """A heartbeat naming a topic the member may not DESCRIBE (existing or not) is
    refused whole with TOPIC_AUTHORIZATION_FAILED; READ on the group is checked first;
    a regex skips the closed topic and matches `__consumer_offsets`."""
    client = ctx.raw()
    names = heartbeat_acls(ctx, client, "acl-cgh")
    opened, closed, ghost = names.opened, names.closed, names.ghost
    group, closed_group = names.group, names.closed_group
    try:
        grant(ctx, client, "acls", names.acls())
        refused = wire.retry_coordinator(
            lambda: _heartbeat(client, group, "m-one", 0, topics=[opened, closed])
        )
        ctx.record("named_closed", _answer(refused))
        ctx.record("named_missing", _answer(_heartbeat(client, group, "m-one", 0, topics=[ghost])))
        both = _heartbeat(client, closed_group, "m-one", 0, topics=[closed])
        ctx.record("group_first", _answer(both))
        # The refusals above are made before the coordinator is asked, so a fresh Kafka
        # may still be loading the group's offsets partition here: retried as clients do.
        described = wire.retry_coordinator(
            lambda: client.request(
                CONSUMER_GROUP_DESCRIBE, 1, group_ids=[group], include_authorized_operations=False
            ).groups[0]
        )
        ctx.record("nothing_created", err(described.error_code))
        joined = wire.retry_coordinator(
            lambda: _heartbeat(client, group, "m-one", 0, topics=[opened])
        )
        ctx.record("named_open", err(joined.error_code))
        _heartbeat(client, group, "m-one", -1)
        ctx.record("regex", _assigned_topics(client, "acl-cgh-regex-g", "m-regex"))
    finally:
        revoke(client)
        wire.delete_topics(client, [opened, closed])
