"""Kafka ACLs as data: bindings, filters, and their codes on the wire.

A binding is a resource pattern (type, name, LITERAL or PREFIXED) and an access control
entry (principal, host, operation, ALLOW or DENY), as Kafka's `AclBinding`. A filter is
what DescribeAcls and DeleteAcls send: any field may be ANY or null, and a MATCH pattern
type selects every binding that would apply to the named resource (literal, `*`, or a
prefix of it), as Kafka's `AclBindingFilter.matches`. Codes are Kafka's (`AclOperation`,
`ResourceType`, `PatternType`, `AclPermissionType`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acl_hosts import WILDCARD_HOST as WILDCARD_HOST
from contextplane.security.acl_hosts import host_problem

WILDCARD_RESOURCE = "*"
WILDCARD_PRINCIPAL = "User:*"
CLUSTER_NAME = "kafka-cluster"


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14
    TWO_PHASE_COMMIT = 15


class Permission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


# An ALLOW for any of these grants the key operation too (Kafka's StandardAuthorizerData).
IMPLIED_BY: dict[Operation, frozenset[Operation]] = {
    Operation.DESCRIBE: frozenset(
        {Operation.DESCRIBE, Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER}
    ),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS}),
}


# The operations an authorized-operations bit set covers, per resource type (Kafka's
# AclEntry.supportedOperations); bit `1 << code` is set for each one allowed.
SUPPORTED_OPERATIONS: dict[ResourceType, tuple[Operation, ...]] = {
    ResourceType.TOPIC: (
        Operation.READ,
        Operation.WRITE,
        Operation.CREATE,
        Operation.DESCRIBE,
        Operation.DELETE,
        Operation.ALTER,
        Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS,
    ),
    ResourceType.GROUP: (
        Operation.READ,
        Operation.DESCRIBE,
        Operation.DELETE,
        Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS,
    ),
    ResourceType.CLUSTER: (
        Operation.CREATE,
        Operation.CLUSTER_ACTION,
        Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS,
        Operation.IDEMPOTENT_WRITE,
        Operation.ALTER,
        Operation.DESCRIBE,
    ),
}
# An authorized-operations field the request did not ask for (the schema's default).
OPERATIONS_NOT_REQUESTED = -(2**31)


class InvalidAcl(ValueError):
    """A binding Kafka refuses, with Kafka's error code and message."""

    def __init__(self, message: str | None, code: ErrorCode = ErrorCode.invalid_request) -> None:
        super().__init__(message or code.name)
        self.message = message
        self.code = code


def _code(enum: type[IntEnum], value: int) -> IntEnum:
    """Kafka maps a code it does not know to UNKNOWN."""
    try:
        return enum(value)
    except ValueError:
        return enum(0)


@dataclass(frozen=True, slots=True)
class AclBinding:
    resource_type: ResourceType
    name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    @classmethod
    def from_wire(
        cls,
        resource_type: int,
        name: str,
        pattern_type: int,
        principal: str,
        host: str,
        operation: int,
        permission: int,
    ) -> AclBinding:
        return cls(
            ResourceType(_code(ResourceType, resource_type)),
            name,
            PatternType(_code(PatternType, pattern_type)),
            principal,
            host,
            Operation(_code(Operation, operation)),
            Permission(_code(Permission, permission)),
        )

    def validate(self) -> None:
        """Kafka 4.4's checks of a new ACL, with its errors: a type, pattern, operation
        or permission that cannot be a binding (ANY, MATCH, UNKNOWN) fails the binding's
        construction (UNKNOWN_SERVER_ERROR, no message); the rest, the host last (empty, or
        a CIDR block Kafka cannot read: acl_hosts.py), are INVALID_REQUEST."""
        if (
            self.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY)
            or self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED)
            or self.operation in (Operation.UNKNOWN, Operation.ANY)
            or self.permission not in (Permission.ALLOW, Permission.DENY)
        ):
            raise InvalidAcl(None, ErrorCode.unknown_server_error)
        if not self.name:
            raise InvalidAcl("Invalid empty resource name")
        if self.resource_type == ResourceType.CLUSTER and self.name != CLUSTER_NAME:
            raise InvalidAcl(f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}")
        kind, sep, _ = self.principal.partition(":")
        if not sep:
            raise InvalidAcl(
                f"Could not parse principal from `{self.principal}` (no colon is present"
                " separating the principal type from the principal name)"
            )
        if not kind:
            raise InvalidAcl("Invalid empty principal")
        problem = host_problem(self.host)
        if problem is not None:
            raise InvalidAcl(problem)


@dataclass(frozen=True, slots=True)
class AclFilter:
    """DescribeAcls' filter and each of DeleteAcls' filters; None matches anything."""

    resource_type: ResourceType
    name: str | None
    pattern_type: PatternType
    principal: str | None
    host: str | None
    operation: Operation
    permission: Permission

    @classmethod
    def from_wire(
        cls,
        resource_type: int,
        name: str | None,
        pattern_type: int,
        principal: str | None,
        host: str | None,
        operation: int,
        permission: int,
    ) -> AclFilter:
        return cls(
            ResourceType(_code(ResourceType, resource_type)),
            name,
            PatternType(_code(PatternType, pattern_type)),
            principal,
            host,
            Operation(_code(Operation, operation)),
            Permission(_code(Permission, permission)),
        )

    def unknown_element(self) -> str | None:
        """Kafka refuses a filter with an UNKNOWN field (its `findIndefiniteField`)."""
        for label, value in (
            ("resourceType", self.resource_type),
            ("patternType", self.pattern_type),
            ("operation", self.operation),
            ("permissionType", self.permission),
        ):
            if value == 0:
                return f"Filter contain UNKNOWN elements: {label}"
        return None

    def matches_pattern(self, binding: AclBinding) -> bool:
        """Kafka's ResourcePatternFilter.matches."""
        if self.resource_type != ResourceType.ANY and self.resource_type != binding.resource_type:
            return False
        if self.pattern_type not in (PatternType.ANY, PatternType.MATCH) and (
            self.pattern_type != binding.pattern_type
        ):
            return False
        if self.name is None:
            return True
        if self.pattern_type in (PatternType.ANY, binding.pattern_type):
            return self.name == binding.name
        # MATCH: every binding that applies to the named resource.
        if binding.pattern_type == PatternType.LITERAL:
            return self.name == binding.name or binding.name == WILDCARD_RESOURCE
        return self.name.startswith(binding.name)

    def matches_entry(self, binding: AclBinding) -> bool:
        """Kafka's AccessControlEntryFilter.matches."""
        if self.principal is not None and self.principal != binding.principal:
            return False
        # Hosts compare as written: a filter for 127.0.0.1 does not select 127.0.0.0/8.
        if self.host is not None and self.host != binding.host:
            return False
        if self.operation != Operation.ANY and self.operation != binding.operation:
            return False
        return self.permission == Permission.ANY or self.permission == binding.permission

    def matches(self, binding: AclBinding) -> bool:
        return self.matches_pattern(binding) and self.matches_entry(binding)


def parse_super_users(value: str) -> frozenset[str]:
    """Kafka's `super.users`: principals separated by semicolons."""
    return frozenset(p.strip() for p in value.split(";") if p.strip())


# Kafka's error for a resource of each type the principal may not use, and its message
# (Errors.java).
_DENIALS = {
    ResourceType.TOPIC: (ErrorCode.topic_authorization_failed, "Topic authorization failed."),
    ResourceType.GROUP: (ErrorCode.group_authorization_failed, "Group authorization failed."),
    ResourceType.CLUSTER: (
        ErrorCode.cluster_authorization_failed,
        "Cluster authorization failed.",
    ),
    ResourceType.TRANSACTIONAL_ID: (
        ErrorCode.transactional_id_authorization_failed,
        "Transactional Id authorization failed.",
    ),
}


def denial_error(resource_type: ResourceType) -> ErrorCode:
    return _DENIALS[resource_type][0]


def denial_message(resource_type: ResourceType) -> str:
    return _DENIALS[resource_type][1]
