"""The ACL APIs' bounds and the cost of a check with many ACLs (issue #10).

* A check reads only the ACLs of the caller and of `User:*`: with thousands of other
  principals' ACLs on the same topic, alice's decision (and InitProducerId's
  authorizeByResourceType) compares none of their principals. Counted, not timed: the
  other principals' names count every comparison made with them.
* DeleteAcls and CreateAcls change at most Kafka's 10,000 ACLs per request, refused as
  Kafka's controller refuses them; identical filters are matched once and listed under
  each filter, as Kafka lists them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contextplane.metadata.store import MetadataStore, open_metadata_store
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acl_admin import (
    ACL_CHANGES_MAX,
    ACL_DELETE_LISTED_MAX,
    AclAdmin,
    AclChangeRefused,
)
from contextplane.security.acls import (
    AclBinding,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from contextplane.security.authorizer import Action
from contextplane.security.principal import Principal
from contextplane.security.standard_authorizer import AclIndex, StandardAuthorizer

ALICE = Principal("User", "alice")
HOST = "127.0.0.1"
T = ResourceType.TOPIC
LIT = PatternType.LITERAL
PRE = PatternType.PREFIXED
ALLOW = Permission.ALLOW


class CountedName(str):
    """A principal name that counts every equality test made with it."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        CountedName.compared += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        CountedName.compared += 1
        return str.__ne__(self, other)

    __hash__ = str.__hash__


def others_on(name: str, count: int, pattern: PatternType = LIT) -> list[AclBinding]:
    return [
        AclBinding(T, name, pattern, CountedName(f"User:u{i}"), "*", Operation.WRITE, ALLOW)
        for i in range(count)
    ]


def test_a_check_reads_none_of_the_other_principals_acls() -> None:
    own = AclBinding(T, "pub", LIT, "User:alice", "*", Operation.DESCRIBE, ALLOW)
    authorizer = StandardAuthorizer([*others_on("pub", 5_000), own])
    CountedName.compared = 0
    topic_ops = [
        Action(op, T, "pub")
        for op in (Operation.READ, Operation.WRITE, Operation.DESCRIBE, Operation.ALTER)
    ]
    assert authorizer.authorize(ALICE, HOST, topic_ops) == [False, False, True, False]
    # InitProducerId of an idempotent producer: WRITE on any topic.
    assert not authorizer.allowed_on_any(ALICE, HOST, Operation.WRITE, T)
    assert CountedName.compared == 0


def test_other_principals_acls_still_make_allow_everyone_not_apply() -> None:
    authorizer = StandardAuthorizer(others_on("pub", 3), allow_if_no_acl=True)
    assert authorizer.authorize(ALICE, HOST, [Action(Operation.READ, T, "pub")]) == [False]
    assert authorizer.authorize(ALICE, HOST, [Action(Operation.READ, T, "other")]) == [True]


# -- the index narrows a filter's candidates; the answer is the scan's -------------------

NAMES = st.sampled_from(["o", "or", "orders", "*", "p"])
bindings = st.builds(
    AclBinding,
    st.sampled_from([T, ResourceType.GROUP]),
    NAMES,
    st.sampled_from([LIT, PRE]),
    st.sampled_from(["User:alice", "User:bob", "User:*"]),
    st.sampled_from(["*", HOST]),
    st.sampled_from([Operation.READ, Operation.WRITE, Operation.ALL]),
    st.sampled_from([ALLOW, Permission.DENY]),
)
filters = st.builds(
    AclFilter,
    st.sampled_from([T, ResourceType.GROUP, ResourceType.ANY]),
    st.one_of(st.none(), NAMES, st.just("orders-eu")),
    st.sampled_from([LIT, PRE, PatternType.ANY, PatternType.MATCH]),
    st.sampled_from([None, "User:alice", "User:*"]),
    st.sampled_from([None, "*", HOST]),
    st.sampled_from([Operation.ANY, Operation.READ]),
    st.sampled_from([Permission.ANY, ALLOW]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(bindings, max_size=15), filters)
def test_index_matching_is_a_scan_of_every_acl(acls: list[AclBinding], f: AclFilter) -> None:
    index = AclIndex(acls)
    assert sorted(index.matching(f), key=repr) == sorted(
        (b for b in set(acls) if f.matches(b)), key=repr
    )


# -- the admin: Kafka's bound on one request's changes -----------------------------------

EVERY = AclFilter(
    ResourceType.ANY, None, PatternType.ANY, None, None, Operation.ANY, Permission.ANY
)


def topic_acls(count: int, start: int = 0) -> list[AclBinding]:
    return [
        AclBinding(T, f"t{i}", LIT, "User:alice", "*", Operation.READ, ALLOW)
        for i in range(start, start + count)
    ]


def run_with_admin(tmp_path: Path, body: object) -> None:
    async def main() -> None:
        store = open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}")
        await store.open()
        try:
            admin = AclAdmin(store, StandardAuthorizer())
            await body(admin, store)  # type: ignore[operator]
        finally:
            await store.close()

    asyncio.run(main())


def test_identical_filters_list_every_match_under_each_and_delete_once(tmp_path: Path) -> None:
    async def body(admin: AclAdmin, store: MetadataStore) -> None:
        await admin.create(topic_acls(50))
        named = AclFilter(T, "t1", LIT, None, None, Operation.ANY, Permission.ANY)
        results = await admin.delete([EVERY, named, EVERY, EVERY])
        assert [len(r) for r in results] == [50, 1, 50, 50]
        assert len(admin.authorizer.acls) == 0

    run_with_admin(tmp_path, body)


def test_create_over_kafkas_bound_is_refused_whole(tmp_path: Path) -> None:
    async def body(admin: AclAdmin, store: MetadataStore) -> None:
        await admin.create(topic_acls(5))
        # Ones already there are not new records: 5 old + 10,000 new is within the bound.
        await admin.create(topic_acls(ACL_CHANGES_MAX + 5))
        assert len(admin.authorizer.acls) == ACL_CHANGES_MAX + 5
        with pytest.raises(AclChangeRefused) as refused:
            await admin.create(topic_acls(ACL_CHANGES_MAX + 1, start=100_000))
        assert refused.value.code == ErrorCode.policy_violation
        assert refused.value.message == "Unable to perform excessively large batch operation."
        assert len(admin.authorizer.acls) == ACL_CHANGES_MAX + 5
        assert len(await store.acls()) == ACL_CHANGES_MAX + 5

    run_with_admin(tmp_path, body)


def test_delete_over_kafkas_bound_is_refused_whole(tmp_path: Path) -> None:
    async def body(admin: AclAdmin, store: MetadataStore) -> None:
        await admin.create(topic_acls(ACL_CHANGES_MAX))
        await admin.create(topic_acls(1, start=ACL_CHANGES_MAX))
        message = f"Cannot remove more than {ACL_CHANGES_MAX} acls in a single delete operation."
        for request in ([EVERY], [EVERY, EVERY]):
            with pytest.raises(AclChangeRefused) as refused:
                await admin.delete(request)
            assert refused.value.code == ErrorCode.invalid_request
            assert refused.value.message == message
            assert len(admin.authorizer.acls) == ACL_CHANGES_MAX + 1
        # Exactly the bound is allowed once; a second filter matching again is not (Kafka
        # checks the count before each match, repeated or not).
        single = AclFilter(T, "t0", LIT, None, None, Operation.ANY, Permission.ANY)
        await admin.delete([single])
        with pytest.raises(AclChangeRefused):
            await admin.delete([EVERY, EVERY])
        assert [len(r) for r in await admin.delete([EVERY])] == [ACL_CHANGES_MAX]
        assert len(admin.authorizer.acls) == 0 and not await store.acls()

    run_with_admin(tmp_path, body)


def test_a_delete_response_listing_too_many_bindings_is_refused_whole(tmp_path: Path) -> None:
    """Repeated match-all filters under the removal bound still list every match again;
    past ACL_DELETE_LISTED_MAX listed bindings the request is refused, nothing removed."""

    async def body(admin: AclAdmin, store: MetadataStore) -> None:
        await admin.create(topic_acls(ACL_CHANGES_MAX - 1))
        repeats = ACL_DELETE_LISTED_MAX // (ACL_CHANGES_MAX - 1) + 1
        with pytest.raises(AclChangeRefused) as refused:
            await admin.delete([EVERY] * repeats)
        assert refused.value.code == ErrorCode.invalid_request
        assert "send fewer filters" in refused.value.message
        assert len(admin.authorizer.acls) == ACL_CHANGES_MAX - 1
        assert len(await store.acls()) == ACL_CHANGES_MAX - 1
        # At the bound the request is Kafka's answer: every filter lists every match.
        fitting = ACL_DELETE_LISTED_MAX // (ACL_CHANGES_MAX - 1)
        assert [len(r) for r in await admin.delete([EVERY] * fitting)] == [
            ACL_CHANGES_MAX - 1
        ] * fitting
        assert len(admin.authorizer.acls) == 0

    run_with_admin(tmp_path, body)


# -- reading again the ACLs another broker changed --------------------------------------


def test_reload_applies_what_another_admin_of_the_store_changed(tmp_path: Path) -> None:
    async def body(admin: AclAdmin, store: MetadataStore) -> None:
        other = AclAdmin(store, StandardAuthorizer())  # another broker on the same store
        await admin.create(topic_acls(3))
        read = Action(Operation.READ, T, "t1")
        assert not other.authorizer.allowed(ALICE, HOST, read)
        await other.reload()
        assert set(other.authorizer.acls) == set(topic_acls(3))
        assert other.authorizer.allowed(ALICE, HOST, read)
        changes = other.authorizer.acls.changes
        await admin.delete([AclFilter(T, "t1", LIT, None, None, Operation.ANY, Permission.ANY)])
        await admin.create(topic_acls(1, start=7))
        await other.reload()
        assert set(other.authorizer.acls) == set(admin.authorizer.acls)
        assert not other.authorizer.allowed(ALICE, HOST, read)
        # Only the differences were applied: one removal and one addition.
        assert other.authorizer.acls.changes == changes + 2

    run_with_admin(tmp_path, body)
