"""ACLs and ShareGroupHeartbeat (KIP-932), with the StandardAuthorizer on a PLAINTEXT
listener (every client is User:ANONYMOUS; a resource is closed to it by an ACL naming
User:alice, as in acls.py): READ on the group first, then DESCRIBE on every topic the
member names, as for ConsumerGroupHeartbeat."""

from __future__ import annotations

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.scenarios._acl_common import OPEN, grant, heartbeat_acls, revoke
from conformance.scenarios.acl_consumer_groups import _answer
from conformance.scenarios.share_groups import SHARE_GROUP_DESCRIBE, _beat
from conformance.wire import err


@scenario(settings=OPEN)
def heartbeat_topic_describe(ctx: Ctx) -> None:
    """A share member naming a topic it may not DESCRIBE (existing or not) is refused
    whole with TOPIC_AUTHORIZATION_FAILED, at its join and when it changes its
    subscription; READ on the group is checked first; nothing is created."""
    client = ctx.raw()
    names = heartbeat_acls(ctx, client, "acl-sgh")
    opened, closed, ghost = names.opened, names.closed, names.ghost
    group, closed_group = names.group, names.closed_group
    try:
        grant(ctx, client, "acls", names.acls())
        refused = wire.retry_coordinator(lambda: _beat(client, group, "m-one", 0, [opened, closed]))
        ctx.record("named_closed", _answer(refused))
        ctx.record("named_missing", _answer(_beat(client, group, "m-one", 0, [ghost])))
        long_id = _beat(client, group, "m" * 37, 0, [closed])  # the member id is checked first
        ctx.record("member_id_37_first", _answer(long_id))
        ctx.record("member_id_36", _answer(_beat(client, group, "é" * 36, 0, [closed])))
        ctx.record(
            "member_id_astral", _answer(_beat(client, group, "\U0001f600" * 19, 0, [closed]))
        )
        ctx.record("group_first", _answer(_beat(client, closed_group, "m-one", 0, [closed])))
        described = client.request(
            SHARE_GROUP_DESCRIBE, 1, group_ids=[group], include_authorized_operations=False
        )
        ctx.record("nothing_created", err(described.groups[0].error_code))
        joined = wire.retry_coordinator(lambda: _beat(client, group, "m-one", 0, [opened]))
        ctx.record("named_open", (err(joined.error_code), joined.member_epoch))
        changed = _beat(client, group, "m-one", joined.member_epoch, [opened, closed])
        ctx.record("subscription_change_refused", _answer(changed))
        described = client.request(
            SHARE_GROUP_DESCRIBE, 1, group_ids=[group], include_authorized_operations=False
        )
        members = described.groups[0].members
        ctx.record("subscription_kept", [list(m.subscribed_topic_names) for m in members])
        _beat(client, group, "m-one", -1)
    finally:
        revoke(client)
        wire.delete_topics(client, [opened, closed])
