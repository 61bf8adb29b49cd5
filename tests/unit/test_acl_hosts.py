"""ACL hosts as Kafka 4.4 takes them: CIDR blocks validated at CreateAcls with Kafka's
messages and matched against the client's address by the authorizer (IPv4, IPv6, an
IPv4-mapped client), while filters compare hosts as written."""

from __future__ import annotations

import pytest

from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acl_hosts import host_problem
from contextplane.security.acls import (
    AclBinding,
    AclFilter,
    InvalidAcl,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from contextplane.security.authorizer import Action
from contextplane.security.principal import Principal
from contextplane.security.standard_authorizer import StandardAuthorizer

ALICE = Principal("User", "alice")
READ = Operation.READ


def acl(host: str, permission: Permission = Permission.ALLOW) -> AclBinding:
    return AclBinding(
        ResourceType.TOPIC, "orders", PatternType.LITERAL, "User:alice", host, READ, permission
    )


def reads(authorizer: StandardAuthorizer, client: str) -> bool:
    return authorizer.allowed(ALICE, client, Action(READ, ResourceType.TOPIC, "orders"))


@pytest.mark.parametrize(
    ("block", "inside", "outside"),
    [
        ("127.0.0.0/8", ["127.0.0.1", "127.255.255.255"], ["128.0.0.1", "10.0.0.1"]),
        ("10.0.0.5/8", ["10.1.2.3"], ["11.0.0.0"]),  # host bits set: the block is 10/8
        ("192.168.1.7/32", ["192.168.1.7"], ["192.168.1.8"]),
        ("0.0.0.0/0", ["1.2.3.4", "255.255.255.255"], ["0.0.0.0", "::1"]),
        ("010.1.2.0/24", ["10.1.2.9"], ["8.1.2.9"]),  # leading zeros are decimal
        ("2001:db8::/32", ["2001:db8::1", "2001:db8:ffff::"], ["2001:db9::1", "127.0.0.1"]),
        ("::/0", ["::1", "fe80::1"], ["127.0.0.1", "::ffff:127.0.0.1"]),
        ("[2001:db8::]/48", ["2001:db8:0:1::"], ["2001:db8:1::"]),
    ],
)
def test_a_cidr_acl_applies_to_the_clients_in_its_block(
    block: str, inside: list[str], outside: list[str]
) -> None:
    authorizer = StandardAuthorizer([acl(block)])
    for client in inside:
        assert reads(authorizer, client), (block, client)
    for client in outside:
        assert not reads(authorizer, client), (block, client)


def test_an_ipv4_mapped_client_is_an_ipv4_client() -> None:
    # Java sees ::ffff:127.0.0.1 as 127.0.0.1: IPv4 blocks hold it, IPv6 blocks do not.
    assert reads(StandardAuthorizer([acl("127.0.0.0/8")]), "::ffff:127.0.0.1")
    assert not reads(StandardAuthorizer([acl("::/0")]), "::ffff:127.0.0.1")


def test_a_deny_on_a_narrower_block_wins_over_an_allow_on_a_wider_one() -> None:
    authorizer = StandardAuthorizer([acl("127.0.0.0/8"), acl("127.0.0.1/32", Permission.DENY)])
    assert not reads(authorizer, "127.0.0.1")
    assert reads(authorizer, "127.0.0.2")
    authorizer.acls.remove(acl("127.0.0.1/32", Permission.DENY))
    assert reads(authorizer, "127.0.0.1")


def test_blocks_are_parsed_once_and_forgotten_with_their_last_acl() -> None:
    authorizer = StandardAuthorizer([acl("10.0.0.0/8"), acl("10.0.0.0/8", Permission.DENY)])
    index = authorizer.acls
    assert set(index._blocks) == {"10.0.0.0/8"}
    index.remove(acl("10.0.0.0/8"))
    assert set(index._blocks) == {"10.0.0.0/8"}
    index.remove(acl("10.0.0.0/8", Permission.DENY))
    assert index._blocks == {}


def test_a_stored_block_kafka_cannot_read_applies_to_no_client() -> None:
    # As Kafka's CidrUtils.isInRange: an unreadable block matches nothing.
    assert not reads(StandardAuthorizer([acl("127.0.0.0/33")]), "127.0.0.1")


def test_a_host_without_a_slash_is_matched_as_written() -> None:
    authorizer = StandardAuthorizer([acl("127.0.0.1"), acl("broker.example")])
    assert reads(authorizer, "127.0.0.1")
    assert not reads(authorizer, "127.0.0.2")


# Kafka 4.4's answers (the harness's Kafka, conformance scenario acl_hosts.cidr_hosts).
REFUSED = {
    "": "Host pattern cannot be null or empty",
    "192.168.0.0/33": "Invalid CIDR notation '192.168.0.0/33': Value [33] not in range [0,32]",
    "192.168.0.0/-1": "Invalid CIDR notation '192.168.0.0/-1': Could not parse [192.168.0.0/-1]",
    "256.0.0.0/8": "Invalid CIDR notation '256.0.0.0/8': Value [256] not in range [0,255]",
    "192.168.0/24": "Invalid CIDR notation '192.168.0/24': Could not parse [192.168.0/24]",
    "192.168.0.0/024": (
        "Invalid CIDR notation '192.168.0.0/024': Could not parse [192.168.0.0/024]"
    ),
    "host.example/24": "Invalid CIDR notation 'host.example/24': Could not parse [host.example/24]",
    "2001:db8::/129": (
        "Invalid CIDR notation '2001:db8::/129': Could not parse [2001:db8::/129]"
        " - prefix length must be between 0 and 128"
    ),
    "2001:db8::/ 64": (
        "Invalid CIDR notation '2001:db8::/ 64': Could not parse [2001:db8::/ 64]"
        " - invalid prefix length"
    ),
    "2001:db8::/99999999999": (
        "Invalid CIDR notation '2001:db8::/99999999999': Could not parse"
        " [2001:db8::/99999999999] - invalid prefix length"
    ),
    "2001:db8:::/64": "Invalid CIDR notation '2001:db8:::/64': Could not parse [2001:db8:::]",
    "::ffff:10.0.0.0/104": (
        "Invalid CIDR notation '::ffff:10.0.0.0/104': Could not parse [::ffff:10.0.0.0]"
        " - not an IPv6 address"
    ),
    "1.2.3.4/2:3": (
        "Invalid CIDR notation '1.2.3.4/2:3': Could not parse [1.2.3.4/2:3] - invalid prefix length"
    ),
}
ACCEPTED = ["*", "127.0.0.1", "fe80::1", "broker.example", "not an address", "::/0"]
ACCEPTED += ["2001:db8::/+64", "::1.2.3.4/120", "0.0.0.0/0", "10.0.0.5/8"]


@pytest.mark.parametrize(("host", "message"), sorted(REFUSED.items()))
def test_create_acls_refuses_an_invalid_host_with_kafkas_message(host: str, message: str) -> None:
    assert host_problem(host) == message
    with pytest.raises(InvalidAcl) as refused:
        acl(host).validate()
    assert refused.value.code == ErrorCode.invalid_request
    assert refused.value.message == message


@pytest.mark.parametrize("host", ACCEPTED)
def test_create_acls_accepts_blocks_addresses_and_names(host: str) -> None:
    acl(host).validate()


def test_filters_compare_hosts_as_written() -> None:
    block = acl("127.0.0.0/8")

    def by_host(host: str) -> AclFilter:
        return AclFilter(
            ResourceType.ANY,
            None,
            PatternType.ANY,
            None,
            host,
            Operation.ANY,
            Permission.ANY,
        )

    assert by_host("127.0.0.0/8").matches(block)
    assert not by_host("127.0.0.1").matches(block)
    assert not by_host("127.0.0.0/08").matches(block)
