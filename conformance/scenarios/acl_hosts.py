"""ACL hosts as Kafka 4.4 takes them: `*`, an address or name matched as written, and
CIDR blocks (IPv4 and IPv6, metadata version 4.4-IV1, which the harness's Kafka is
formatted with). Which hosts CreateAcls accepts and the errors of the others, how a CIDR
ACL matches the client (an IPv4 client at 127.0.0.1), and DescribeAcls / DeleteAcls
filters, which compare hosts as written. On the settings of acls.py (StandardAuthorizer,
every client User:ANONYMOUS)."""

from __future__ import annotations

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.scenarios._acl_common import (
    ALICE,
    CLUSTER_KEEP,
    DENY,
    OPEN,
    READ,
    TOPIC,
    WRITE,
    deleted_bindings,
    described,
    grant,
    revoke,
    settle,
)
from conformance.wire import Acl, acl_filter, err

ACCEPTED = [
    "192.168.0.0/24",
    "10.0.0.5/8",  # host bits set
    "0.0.0.0/0",
    "010.1.2.0/24",  # a leading zero is read as decimal
    "2001:db8::/32",
    "::/0",
    "[2001:db8::]/48",
    "::1.2.3.4/120",  # IPv4-compatible (not mapped) is IPv6
    "2001:db8::/+64",
    "fe80::1",  # no prefix: an address, matched as written
    "broker-host.example",
    "not an address",
]
REFUSED = [
    "",
    "192.168.0.0/33",
    "192.168.0.0/-1",
    "256.0.0.0/8",
    "192.168.0/24",
    "192.168.0.0/",
    "192.168.0.0/024",
    "host.example/24",
    " 10.0.0.0/8",
    "2001:db8::/129",
    "2001:db8::/-1",
    "2001:db8::/x",
    "2001:db8::/ 64",
    "2001:db8::/99999999999",
    "2001:db8:::/64",
    "::ffff:10.0.0.0/104",
    "::ffff:0:0/96",
    "1.2.3.4/2:3",
    "*/8",
]


@scenario(settings=OPEN)
def cidr_hosts(ctx: Ctx) -> None:
    """CreateAcls with CIDR hosts (IPv4, IPv6, bad prefixes and addresses, names); a
    CIDR ALLOW that holds 127.0.0.1, one that does not, an IPv6 block (never an IPv4
    client), a DENY on 127.0.0.1/32; DescribeAcls and DeleteAcls filters by host."""
    client = ctx.raw()
    name = "acl-cidr-topic"
    wire.create_topic(client, name, 1)
    ctx.check(wire.wait_for_topic(client, name, 1), f"topic {name} ready")
    try:
        for host in ACCEPTED + REFUSED:
            result = wire.create_acls(client, [Acl(TOPIC, "acl-cidr-x", host=host)]).results[0]
            ctx.record(f"create.{host!r}", (err(result.error_code), result.error_message))
        ctx.check(settle(client, len(ACCEPTED)), "accepted ACLs visible")
        ctx.record("created", described(client))
        revoke(client)

        grant(
            ctx, client, "close", [*CLUSTER_KEEP, Acl(TOPIC, name, operation=READ, principal=ALICE)]
        )
        produce = lambda: err(wire.produce(client, name, wire.encode_batch([b"v"])).error_code)  # noqa: E731
        fetch = lambda: err(wire.fetch_one(client, name, 0).error_code)  # noqa: E731
        ctx.record("closed.produce", produce())
        grant(
            ctx,
            client,
            "allow",
            [
                Acl(TOPIC, name, operation=WRITE, host="127.0.0.0/8"),
                Acl(TOPIC, name, operation=READ, host="10.0.0.0/8"),
                Acl(TOPIC, name, operation=READ, host="::/0"),
            ],
        )
        ctx.record("allow.produce", produce())
        ctx.record("allow.fetch", fetch())
        grant(
            ctx,
            client,
            "deny",
            [Acl(TOPIC, name, operation=WRITE, host="127.0.0.1/32", permission=DENY)],
        )
        ctx.record("deny.produce", produce())
        grant(ctx, client, "allow_all", [Acl(TOPIC, name, operation=READ, host="0.0.0.0/0")])
        ctx.record("allow_all.fetch", fetch())

        ctx.record("filter.address", described(client, host="127.0.0.1"))
        ctx.record("filter.block", described(client, host="127.0.0.0/8"))
        ctx.record("filter.other_spelling", described(client, host="127.0.0.0/08"))
        deleted = wire.delete_acls(
            client,
            [acl_filter(host="127.0.0.1"), acl_filter(host="127.0.0.1/32")],
        )
        ctx.record("deleted", deleted_bindings(deleted))
        ctx.check(settle(client, 7), "deletion visible")
        ctx.record("undenied.produce", produce())
    finally:
        revoke(client)
        wire.delete_topics(client, [name])
