"""The ACL APIs with arbitrary field values (item 8 of the security issue: the ACL
decoders): CreateAcls, DescribeAcls and DeleteAcls whatever their enum codes, names,
principals and hosts. The frame decoder fuzz (tests/protocol) covers the bytes; this
covers what the authorizer does with well-framed nonsense. Whatever arrives: Kafka's
error codes, never UNKNOWN_SERVER_ERROR, the connection stays usable, and what was
accepted is exactly what DescribeAcls shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import wire
from contextplane.protocol.error_codes import ErrorCode
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient

AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
}
# What Kafka answers malformed ACLs and filters with; anything else is a defect here.
KAFKA_ACL_ERRORS = {ErrorCode.none, ErrorCode.invalid_request}
# Kafka 4.4 cannot even construct a binding from a type, pattern, operation or permission
# outside these (ANY, MATCH, UNKNOWN): that creation fails with UNKNOWN_SERVER_ERROR.
BINDABLE = {
    "resource_type": range(2, 8),
    "resource_pattern_type": range(3, 5),
    "operation": range(2, 15),
    "permission_type": range(2, 4),
}


def expected_codes(creation: dict[str, Any]) -> set[ErrorCode]:
    if all(creation[field] in codes for field, codes in BINDABLE.items()):
        return KAFKA_ACL_ERRORS
    return {ErrorCode.unknown_server_error}


FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

int8 = st.one_of(st.integers(-3, 14), st.integers(-128, 127))
# Mostly plausible, sometimes hostile: empty, huge, control characters, odd principals.
names = st.one_of(
    st.sampled_from(["orders", "*", "", "acl-fuzz-topic", "kafka-cluster"]),
    st.text(max_size=40),
    st.text(min_size=2000, max_size=3000, alphabet="ab"),
)
principals = st.one_of(
    st.sampled_from(["User:alice", "User:*", "User:", ":alice", "User", "Group:x", "*"]),
    st.text(max_size=30),
)
hosts = st.one_of(
    st.sampled_from(["*", "127.0.0.1", "::1", "", "not a host"]), st.text(max_size=20)
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    data: Path = tmp_path_factory.mktemp("acl-fuzz")
    running = InProcessBroker(data / "data", settings=AUTHORIZER).start()
    yield running
    assert "Traceback" not in running.log_tail(100_000)
    running.stop()


def _creation(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "resource_type": draw(int8),
        "resource_name": draw(names),
        "resource_pattern_type": draw(int8),
        "principal": draw(principals),
        "host": draw(hosts),
        "operation": draw(int8),
        "permission_type": draw(int8),
    }


def _filter(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "resource_type_filter": draw(int8),
        "resource_name_filter": draw(st.one_of(st.none(), names)),
        "pattern_type_filter": draw(int8),
        "principal_filter": draw(st.one_of(st.none(), principals)),
        "host_filter": draw(st.one_of(st.none(), hosts)),
        "operation": draw(int8),
        "permission_type": draw(int8),
    }


creations = st.composite(_creation)()
filters = st.composite(_filter)()


def _every_acl(client: RawClient) -> set[tuple[Any, ...]]:
    response = wire.describe_acls(client)
    assert response.error_code == 0, response
    return {
        (r.resource_type, r.resource_name, r.pattern_type, a.principal, a.host, a.operation,
         a.permission_type)
        for r in response.resources
        for a in r.acls
    }  # fmt: skip


@FUZZ
@given(batch=st.lists(creations, min_size=1, max_size=4), dropped=st.lists(filters, max_size=3),
       described=filters)  # fmt: skip
def test_arbitrary_acl_requests_get_kafka_errors_and_keep_the_store_consistent(
    broker: InProcessBroker,
    batch: list[dict[str, Any]],
    dropped: list[dict[str, Any]],
    described: dict[str, Any],
) -> None:
    with RawClient(broker.bootstrap) as client:
        before = _every_acl(client)
        created = client.request(wire.CREATE_ACLS, 3, creations=batch)
        assert len(created.results) == len(batch)
        accepted = set()
        for creation, result in zip(batch, created.results, strict=True):
            assert result.error_code in expected_codes(creation), (creation, result)
            if result.error_code == 0:
                accepted.add(tuple(int(creation[k]) if k in _CODES else creation[k] for k in _KEYS))
        assert _every_acl(client) == before | accepted

        listed = client.request(wire.DESCRIBE_ACLS, 3, **described)
        assert listed.error_code in KAFKA_ACL_ERRORS, (described, listed)

        deleted = client.request(wire.DELETE_ACLS, 3, filters=dropped)
        assert len(deleted.filter_results) == len(dropped)
        gone = set()
        for result in deleted.filter_results:
            assert result.error_code in KAFKA_ACL_ERRORS, result
            for match in result.matching_acls:
                assert match.error_code == 0, match
                gone.add(
                    (match.resource_type, match.resource_name, match.pattern_type,
                     match.principal, match.host, match.operation, match.permission_type)
                )  # fmt: skip
        remaining = _every_acl(client)
        assert remaining == (before | accepted) - gone
        # Leave the store empty for the next example.
        client.request(wire.DELETE_ACLS, 3, filters=[wire.acl_filter()])
        assert _every_acl(client) == set()


_KEYS = ("resource_type", "resource_name", "resource_pattern_type", "principal", "host",
         "operation", "permission_type")  # fmt: skip
_CODES = {"resource_type", "resource_pattern_type", "operation", "permission_type"}
