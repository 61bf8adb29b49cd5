"""ACL semantics of Kafka's StandardAuthorizer, bindings and filters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import (
    AclBinding,
    AclFilter,
    InvalidAcl,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    parse_super_users,
)
from contextplane.security.authorizer import Action
from contextplane.security.principal import ANONYMOUS, Principal
from contextplane.security.standard_authorizer import AclIndex, StandardAuthorizer

ALICE = Principal("User", "alice")
BOB = Principal("User", "bob")
HOST = "127.0.0.1"
T = ResourceType.TOPIC
G = ResourceType.GROUP
LIT = PatternType.LITERAL
PRE = PatternType.PREFIXED
ALLOW = Permission.ALLOW
DENY = Permission.DENY
Op = Operation


def acl(
    name: str = "orders",
    op: Operation = Op.READ,
    permission: Permission = ALLOW,
    principal: str = "User:alice",
    host: str = "*",
    pattern: PatternType = LIT,
    resource_type: ResourceType = T,
) -> AclBinding:
    return AclBinding(resource_type, name, pattern, principal, host, op, permission)


def allowed(
    authorizer: StandardAuthorizer,
    op: Operation,
    name: str = "orders",
    who: Principal = ALICE,
    host: str = HOST,
    resource_type: ResourceType = T,
) -> bool:
    return authorizer.authorize(who, host, [Action(op, resource_type, name)])[0]


def test_no_acl_denies_by_default_and_allow_everyone_allows() -> None:
    assert not allowed(StandardAuthorizer(), Op.READ)
    assert allowed(StandardAuthorizer(allow_if_no_acl=True), Op.READ)


def test_granted_is_a_super_user_or_an_allow_never_allow_everyone() -> None:
    """What stands in for another permission (a broker's CLUSTER_ACTION) must be granted
    to the principal itself."""
    action = Action(Op.CLUSTER_ACTION, ResourceType.CLUSTER, "kafka-cluster")
    everyone = StandardAuthorizer(allow_if_no_acl=True)
    assert everyone.authorize(ALICE, HOST, [action]) == [True]
    assert not everyone.granted(ALICE, HOST, action)
    supers = StandardAuthorizer(super_users=frozenset({"User:alice"}), allow_if_no_acl=True)
    assert supers.granted(ALICE, HOST, action) and not supers.granted(BOB, HOST, action)
    cluster = ResourceType.CLUSTER
    given = StandardAuthorizer(
        [acl("kafka-cluster", Op.CLUSTER_ACTION, resource_type=cluster),
         acl("kafka-cluster", Op.ALL, DENY, "User:bob", resource_type=cluster),
         acl("kafka-cluster", Op.CLUSTER_ACTION, principal="User:bob", resource_type=cluster)],
    )  # fmt: skip
    assert given.granted(ALICE, HOST, action)
    assert not given.granted(BOB, HOST, action)  # a DENY wins


def test_allow_everyone_does_not_apply_once_any_acl_names_the_resource() -> None:
    # An ACL for someone else on the resource: alice no longer falls back to "no ACL".
    authorizer = StandardAuthorizer([acl(principal="User:bob")], allow_if_no_acl=True)
    assert not allowed(authorizer, Op.READ)
    assert allowed(authorizer, Op.READ, who=BOB)
    assert allowed(authorizer, Op.READ, name="other")  # no ACL applies to "other"
    # A prefixed ACL applies to every name it starts.
    authorizer = StandardAuthorizer(
        [acl("ord", pattern=PRE, principal="User:bob")], allow_if_no_acl=True
    )
    assert not allowed(authorizer, Op.READ)


def test_literal_prefixed_and_wildcard_resources() -> None:
    authorizer = StandardAuthorizer(
        [acl("orders"), acl("pay", Op.WRITE, pattern=PRE), acl("*", Op.DELETE)]
    )
    assert allowed(authorizer, Op.READ, "orders")
    assert not allowed(authorizer, Op.READ, "orders2")
    assert allowed(authorizer, Op.WRITE, "payments")
    assert allowed(authorizer, Op.WRITE, "pay")
    assert not allowed(authorizer, Op.WRITE, "pa")
    assert allowed(authorizer, Op.DELETE, "anything")
    assert not allowed(authorizer, Op.DELETE, "anything", resource_type=G)
    # A literal "*"-named pattern that is PREFIXED is just a prefix "*".
    authorizer = StandardAuthorizer([acl("*", pattern=PRE)])
    assert not allowed(authorizer, Op.READ, "orders")
    assert allowed(authorizer, Op.READ, "*x")


def test_deny_wins_over_allow_whatever_its_pattern() -> None:
    authorizer = StandardAuthorizer(
        [acl("*", Op.ALL), acl("secret", pattern=PRE, permission=DENY), acl("orders", Op.READ)]
    )
    assert allowed(authorizer, Op.READ, "orders")
    assert not allowed(authorizer, Op.READ, "secrets")
    assert allowed(authorizer, Op.WRITE, "secrets")  # the DENY is for READ only
    authorizer = StandardAuthorizer([acl(op=Op.ALL), acl(op=Op.ALL, permission=DENY, host=HOST)])
    assert not allowed(authorizer, Op.WRITE)
    assert allowed(authorizer, Op.WRITE, host="10.0.0.1")


def test_wildcard_principal_and_host() -> None:
    authorizer = StandardAuthorizer([acl(principal="User:*"), acl(op=Op.WRITE, host="10.1.1.1")])
    assert allowed(authorizer, Op.READ, who=BOB)
    assert allowed(authorizer, Op.READ, who=ANONYMOUS)
    assert not allowed(authorizer, Op.WRITE)
    assert allowed(authorizer, Op.WRITE, host="10.1.1.1")
    authorizer = StandardAuthorizer([acl(op=Op.ALL), acl(principal="User:*", permission=DENY)])
    assert not allowed(authorizer, Op.READ)
    assert allowed(authorizer, Op.WRITE)


@pytest.mark.parametrize("granting", [Op.READ, Op.WRITE, Op.DELETE, Op.ALTER, Op.DESCRIBE, Op.ALL])
def test_describe_is_implied_by_read_write_delete_alter(granting: Operation) -> None:
    assert allowed(StandardAuthorizer([acl(op=granting)]), Op.DESCRIBE)


@pytest.mark.parametrize(
    "granting", [Op.CREATE, Op.ALTER_CONFIGS, Op.DESCRIBE_CONFIGS, Op.CLUSTER_ACTION]
)
def test_describe_is_not_implied_by_others(granting: Operation) -> None:
    assert not allowed(StandardAuthorizer([acl(op=granting)]), Op.DESCRIBE)


def test_describe_configs_is_implied_by_alter_configs_and_implications_only_allow() -> None:
    assert allowed(StandardAuthorizer([acl(op=Op.ALTER_CONFIGS)]), Op.DESCRIBE_CONFIGS)
    assert not allowed(StandardAuthorizer([acl(op=Op.DESCRIBE_CONFIGS)]), Op.ALTER_CONFIGS)
    assert not allowed(StandardAuthorizer([acl(op=Op.READ)]), Op.WRITE)
    # DENY READ does not deny DESCRIBE (Kafka implies only on ALLOW) ...
    authorizer = StandardAuthorizer([acl(op=Op.ALL), acl(op=Op.READ, permission=DENY)])
    assert allowed(authorizer, Op.DESCRIBE)
    # ... but DENY ALL denies everything.
    authorizer = StandardAuthorizer([acl(op=Op.ALL), acl(op=Op.ALL, permission=DENY)])
    assert not allowed(authorizer, Op.DESCRIBE)


def test_super_users_are_allowed_despite_deny() -> None:
    supers = parse_super_users(" User:alice ;User:admin;;")
    assert supers == {"User:alice", "User:admin"}
    authorizer = StandardAuthorizer([acl(op=Op.ALL, permission=DENY)], super_users=supers)
    assert allowed(authorizer, Op.READ)
    assert not allowed(authorizer, Op.READ, who=BOB)


def test_allowed_on_any_topic_as_kafka_authorize_by_resource_type() -> None:
    def on_any(acls: list[AclBinding], allow_if_no_acl: bool = False) -> bool:
        authorizer = StandardAuthorizer(acls, allow_if_no_acl=allow_if_no_acl)
        return authorizer.allowed_on_any(ALICE, HOST, Op.WRITE, T)

    assert not on_any([])
    assert on_any([], allow_if_no_acl=True)
    assert on_any([acl("orders", Op.WRITE)])
    assert on_any([acl("orders", Op.ALL)])
    assert not on_any([acl("orders", Op.READ)])
    assert not on_any([acl("orders", Op.WRITE), acl("orders", Op.WRITE, DENY)])
    assert not on_any([acl("orders", Op.WRITE), acl("ord", Op.WRITE, DENY, pattern=PRE)])
    assert on_any([acl("orders", Op.WRITE), acl("x", Op.WRITE, DENY, pattern=PRE)])
    assert not on_any([acl("ord", Op.WRITE, pattern=PRE), acl("o", Op.ALL, DENY, pattern=PRE)])
    assert not on_any([acl("*", Op.WRITE), acl("*", Op.WRITE, DENY)])


def test_binding_validation_is_kafkas() -> None:
    acl().validate()
    unbuildable = [
        acl(resource_type=ResourceType.ANY),
        acl(resource_type=ResourceType.UNKNOWN),
        acl(pattern=PatternType.MATCH),
        acl(op=Op.ANY),
        acl(permission=Permission.ANY),
    ]
    for binding in unbuildable:
        with pytest.raises(InvalidAcl) as info:
            binding.validate()
        assert info.value.code == ErrorCode.unknown_server_error and info.value.message is None
    for binding, message in (
        (acl(name=""), "Invalid empty resource name"),
        (acl(name="c", resource_type=ResourceType.CLUSTER), "only valid name for the CLUSTER"),
        (acl(principal="alice"), "Could not parse principal from `alice`"),
        (acl(principal=":alice"), "Invalid empty principal"),
    ):
        with pytest.raises(InvalidAcl, match=message) as info:
            binding.validate()
        assert info.value.code == ErrorCode.invalid_request
    acl(name="kafka-cluster", resource_type=ResourceType.CLUSTER).validate()
    # Unknown codes on the wire become UNKNOWN, as Kafka's fromCode does.
    assert AclBinding.from_wire(99, "x", 3, "User:a", "*", 3, 3).resource_type == 0


def f(
    name: str | None = None,
    pattern: PatternType = PatternType.ANY,
    resource_type: ResourceType = ResourceType.ANY,
    principal: str | None = None,
    host: str | None = None,
    op: Operation = Op.ANY,
    permission: Permission = Permission.ANY,
) -> AclFilter:
    return AclFilter(resource_type, name, pattern, principal, host, op, permission)


def test_filters_match_as_kafkas_binding_filters() -> None:
    literal, star, prefixed = acl("orders"), acl("*"), acl("ord", pattern=PRE)
    everything = [literal, star, prefixed]
    assert all(f().matches(b) for b in everything)
    assert [b for b in everything if f("orders").matches(b)] == [literal]
    assert [b for b in everything if f("orders", PatternType.MATCH).matches(b)] == everything
    assert [b for b in everything if f("ord", PatternType.MATCH).matches(b)] == [star, prefixed]
    assert [b for b in everything if f("ord", PRE).matches(b)] == [prefixed]
    assert [b for b in everything if f(None, LIT).matches(b)] == [literal, star]
    assert not f(resource_type=G).matches(literal)
    assert not f(principal="User:bob").matches(literal)
    assert not f(host="10.0.0.1").matches(literal)
    assert not f(op=Op.WRITE).matches(literal)
    assert not f(permission=DENY).matches(literal)
    assert f(op=Op.READ, permission=ALLOW, principal="User:alice", host="*").matches(literal)
    assert f(resource_type=ResourceType.UNKNOWN).unknown_element() is not None
    assert f().unknown_element() is None


def test_index_add_remove_and_matching() -> None:
    index = AclIndex()
    assert index.add(acl()) and not index.add(acl())
    assert index.add(acl("o", pattern=PRE))
    assert len(index) == 2
    assert sorted(b.name for b in index.matching(f("orders", PatternType.MATCH))) == ["o", "orders"]
    assert index.remove(acl("o", pattern=PRE)) and not index.remove(acl("o", pattern=PRE))
    assert len(index) == 1 and index.bindings() == [acl()]
    authorizer = StandardAuthorizer([acl("o", pattern=PRE)])
    assert allowed(authorizer, Op.READ)
    authorizer.acls.remove(acl("o", pattern=PRE))
    assert not allowed(authorizer, Op.READ)


# -- the index against a scan of every ACL, on random ACL sets ----------------------------

NAMES = st.sampled_from(["", "o", "or", "orders", "orders-eu", "*", "p"])
bindings = st.builds(
    AclBinding,
    st.sampled_from([T, G]),
    NAMES.filter(bool),
    st.sampled_from([LIT, PRE]),
    st.sampled_from(["User:alice", "User:bob", "User:*"]),
    st.sampled_from(["*", HOST, "10.0.0.1"]),
    st.sampled_from([o for o in Operation if o not in (Op.UNKNOWN, Op.ANY)]),
    st.sampled_from([ALLOW, DENY]),
)


def scan(acls: list[AclBinding], allow_if_no_acl: bool, action: Action, host: str) -> bool:
    """The decision as the rules state it, over every ACL, with no index."""
    applying = [
        b
        for b in acls
        if b.resource_type == action.resource_type
        and (
            (b.pattern_type == LIT and b.name in (action.name, "*"))
            or (b.pattern_type == PRE and action.name.startswith(b.name))
        )
    ]
    counting = [
        b for b in applying if b.principal in ("User:alice", "User:*") and b.host in ("*", host)
    ]
    implied = {
        Op.DESCRIBE: {Op.READ, Op.WRITE, Op.DELETE, Op.ALTER},
        Op.DESCRIBE_CONFIGS: {Op.ALTER_CONFIGS},
    }.get(action.operation, set())
    if any(b.permission == DENY and b.operation in (Op.ALL, action.operation) for b in counting):
        return False
    if any(
        b.permission == ALLOW and b.operation in ({Op.ALL, action.operation} | implied)
        for b in counting
    ):
        return True
    return not applying and allow_if_no_acl


@settings(max_examples=300, deadline=None)
@given(
    st.lists(bindings, max_size=12),
    st.booleans(),
    st.sampled_from([T, G]),
    NAMES.filter(bool),
    st.sampled_from([o for o in Operation if o not in (Op.UNKNOWN, Op.ANY, Op.ALL)]),
    st.sampled_from([HOST, "10.0.0.1"]),
)
def test_index_decides_as_a_scan_of_every_acl(
    acls: list[AclBinding],
    allow_if_no_acl: bool,
    resource_type: ResourceType,
    name: str,
    op: Operation,
    host: str,
) -> None:
    authorizer = StandardAuthorizer(acls, allow_if_no_acl=allow_if_no_acl)
    action = Action(op, resource_type, name)
    expected = scan(list(set(acls)), allow_if_no_acl, action, host)
    assert authorizer.authorize(ALICE, host, [action]) == [expected]
    # Removing every ACL again leaves an empty index.
    for binding in set(acls):
        authorizer.acls.remove(binding)
    assert len(authorizer.acls) == 0


ASKED = st.builds(
    Action,
    st.sampled_from([o for o in Operation if o not in (Op.UNKNOWN, Op.ANY, Op.ALL)]),
    st.sampled_from([T, G]),
    NAMES.filter(bool),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), bindings),
            st.tuples(st.just("remove"), bindings),
            st.tuples(st.just("ask"), ASKED),
        ),
        max_size=30,
    ),
    st.booleans(),
)
def test_cached_decisions_follow_every_acl_change(
    steps: list[tuple[str, object]], allow_if_no_acl: bool
) -> None:
    """The authorizer remembers its decisions; each must be what a scan of the ACLs in
    force at that moment decides, whatever was added or removed since it was cached."""
    authorizer = StandardAuthorizer(allow_if_no_acl=allow_if_no_acl)
    present: set[AclBinding] = set()
    for kind, value in steps:
        if kind == "add":
            assert isinstance(value, AclBinding)
            authorizer.acls.add(value)
            present.add(value)
        elif kind == "remove":
            assert isinstance(value, AclBinding)
            authorizer.acls.remove(value)
            present.discard(value)
        else:
            assert isinstance(value, Action)
            for _ in range(2):  # the second answer comes from the cache
                expected = scan(list(present), allow_if_no_acl, value, HOST)
                assert authorizer.authorize(ALICE, HOST, [value]) == [expected]


def test_the_decision_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from contextplane.security import standard_authorizer

    monkeypatch.setattr(standard_authorizer, "DECISIONS_MAX", 50)
    authorizer = StandardAuthorizer([acl("orders", Op.READ)])
    for n in range(500):
        allowed(authorizer, Op.READ, name=f"topic-{n}")
        assert len(authorizer._decisions) <= 50
    assert allowed(authorizer, Op.READ, "orders")


def test_a_cached_decision_changes_with_the_acls() -> None:
    authorizer = StandardAuthorizer()
    assert not allowed(authorizer, Op.READ)  # cached: no ACL, denied
    grant = acl("orders", Op.READ)
    authorizer.acls.add(grant)
    assert allowed(authorizer, Op.READ)
    deny = acl("ord", Op.ALL, DENY, pattern=PRE)
    authorizer.acls.add(deny)
    assert not allowed(authorizer, Op.READ)
    authorizer.acls.remove(deny)
    assert allowed(authorizer, Op.READ)
    authorizer.acls.remove(grant)
    assert not allowed(authorizer, Op.READ)
