"""The check at start that each approvals topic is writable by its approver only: an
approval's principal is attested by the cluster's ACLs (`approvals.py`), so an executor
whose cluster lets anyone else write `copilot.approvals.NAME` would take their records as
NAME's. DescribeAcls with a MATCH filter lists every ACL that applies to the topic
(literal, prefixed, `*`); ALLOW of WRITE or ALL to any principal but the approver (or to
`User:*`) fails the check, and so does no such ACL for the approver: without one, a
cluster with `allow.everyone.if.no.acl.found` (or with no authorizer, which confluent-kafka
reads as no ACLs) lets anyone write. Super users are not listed by any ACL; they may
approve, as they may do anything."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

_WRITES = (AclOperation.WRITE, AclOperation.ALL)


def approval_acl_problems(topic: str, approver: str, bindings: list[Any]) -> list[str]:
    """Why `topic` is not the approver's alone, from the ALLOW ACLs that apply to it."""
    problems: list[str] = []
    approver_writes = False
    for binding in bindings:
        if binding.permission_type != AclPermissionType.ALLOW or binding.operation not in _WRITES:
            continue
        if binding.principal == approver:
            approver_writes = True
            continue
        pattern = f"{binding.resource_pattern_type.name.lower()} {binding.name!r}"
        problems.append(
            f"{binding.principal} may write {topic} ({binding.operation.name} on {pattern}):"
            f" only {approver} may"
        )
    if not approver_writes:
        problems.append(
            f"no ACL lets {approver} write {topic}: without one, a cluster that allows"
            " everyone where no ACL is found (or has no authorizer) lets anyone approve"
        )
    return problems


def check_approval_acls(admin: AdminClient, topics: dict[str, str], timeout_s: float) -> list[str]:
    """Every problem of every approvals topic (topic -> its approver); DescribeAcls
    refused (no DESCRIBE on the cluster) is one."""
    problems: list[str] = []
    for topic, approver in sorted(topics.items()):
        acl_filter = AclBindingFilter(
            ResourceType.TOPIC,
            topic,
            ResourcePatternType.MATCH,
            None,  # type: ignore[arg-type]  # any principal
            None,  # type: ignore[arg-type]  # any host
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        try:
            bindings = admin.describe_acls(acl_filter, request_timeout=timeout_s).result()
        except KafkaException as exc:
            return [f"reading the ACLs of {topic} to check who may approve: {exc.args[0].str()}"]
        problems += approval_acl_problems(topic, approver, list(bindings))
    return problems
