"""Kafka's StandardAuthorizer: the decision for one action from an index of ACLs.

The decision, in Kafka's order (StandardAuthorizerData):

1. a principal in `super.users` is allowed everything;
2. the ACLs that apply to the resource are its LITERAL ones, the LITERAL `*` of its type,
   and the PREFIXED ones whose prefix starts its name; of those, the ones whose principal
   is the caller's or `User:*` and whose host is the caller's, `*`, or a CIDR block
   holding the caller's address (acl_hosts.py) count;
3. a counting DENY for the operation (or ALL) denies; DENY wins over any ALLOW;
4. a counting ALLOW for the operation, ALL, or an operation that implies it (DESCRIBE by
   READ, WRITE, DELETE, ALTER; DESCRIBE_CONFIGS by ALTER_CONFIGS) allows;
5. otherwise: if no ACL at all applies to the resource (whatever its principal),
   `allow.everyone.if.no.acl.found` decides; else denied.

The index (acl_index.py) keys ACLs by resource pattern and, under each, by principal, so
a check reads only the ACLs of the caller and of `User:*` on the patterns that apply, and
the operations of one resource (an authorized-operations bit set) are decided from one
read of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from contextplane.security.acl_index import AclIndex
from contextplane.security.acls import (
    IMPLIED_BY,
    WILDCARD_RESOURCE,
    AclBinding,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from contextplane.security.authorizer import Action
from contextplane.security.principal import Principal

# Cached authorization decisions kept at most (about 3 MB with long topic names).
DECISIONS_MAX = 10_000
LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED


def grants(acl: AclBinding, operation: Operation) -> bool:
    """Does this ACL's operation cover `operation` (Kafka's findResult)?"""
    if acl.operation == Operation.ALL:
        return True
    if acl.permission == Permission.ALLOW:
        implied = IMPLIED_BY.get(operation)
        if implied is not None:
            return acl.operation in implied
    return acl.operation == operation


class StandardAuthorizer:
    """`org.apache.kafka.metadata.authorizer.StandardAuthorizer`'s decisions."""

    enabled = True

    def __init__(
        self,
        bindings: Iterable[AclBinding] = (),
        super_users: frozenset[str] = frozenset(),
        allow_if_no_acl: bool = False,
    ) -> None:
        self.acls = AclIndex(bindings)
        self.super_users = super_users
        self.allow_if_no_acl = allow_if_no_acl
        # Decisions already taken, valid while the ACLs are unchanged: most requests ask
        # the same few questions (this client, these topics), and a scan of the prefixed
        # ACLs costs more than a lookup. Bounded: cleared when full.
        self._decisions: dict[tuple[Principal, str, Action], bool] = {}
        self._decisions_valid_for = self.acls.changes

    def authorize(self, principal: Principal, host: str, actions: Sequence[Action]) -> list[bool]:
        decisions = self._decisions
        if self._decisions_valid_for != self.acls.changes:
            decisions.clear()
            self._decisions_valid_for = self.acls.changes
        who = str(principal)
        # The ACLs that can decide for this caller, read once per resource: a bit set of
        # eight operations on one topic reads them once, not eight times.
        relevant: dict[tuple[ResourceType, str], tuple[bool, list[AclBinding]]] = {}
        answers = []
        for action in actions:
            key = (principal, host, action)
            decided = decisions.get(key)
            if decided is None:
                if who in self.super_users:
                    decided = True
                else:
                    resource = (action.resource_type, action.name)
                    acls = relevant.get(resource)
                    if acls is None:
                        acls = relevant[resource] = self._relevant(who, host, *resource)
                    decided = self._verdict(*acls, action.operation)
                if len(decisions) >= DECISIONS_MAX:
                    decisions.clear()
                decisions[key] = decided
            answers.append(decided)
        return answers

    def allowed(self, principal: Principal, host: str, action: Action) -> bool:
        return self.authorize(principal, host, [action])[0]

    def granted(self, principal: Principal, host: str, action: Action) -> bool:
        who = str(principal)
        if who in self.super_users:
            return True
        _, acls = self._relevant(who, host, action.resource_type, action.name)
        return _by_acls(acls, action.operation) is True

    def _relevant(
        self, who: str, host: str, resource_type: ResourceType, name: str
    ) -> tuple[bool, list[AclBinding]]:
        """Whether any ACL applies to the resource, and the ones that apply to `who`
        from `host`."""
        found = False
        matching: list[AclBinding] = []
        index = self.acls
        for acls in index.applying_to(resource_type, name, who):
            found = True
            matching.extend(a for a in acls if index.host_applies(a, host))
        return found, matching

    def _verdict(self, found: bool, acls: list[AclBinding], operation: Operation) -> bool:
        decided = _by_acls(acls, operation)
        if decided is not None:
            return decided
        return not found and self.allow_if_no_acl

    def allowed_on_any(
        self, principal: Principal, host: str, operation: Operation, resource_type: ResourceType
    ) -> bool:
        """Kafka's `authorizeByResourceType`: is there any resource of this type the
        principal may do `operation` on (an ALLOW not cancelled by a DENY covering it)?"""
        # As Kafka: a hard-coded name first, so super users and allow-if-no-ACL count.
        if self.allowed(principal, host, Action(operation, resource_type, "hardcode")):
            return True
        who = str(principal)
        deny: dict[PatternType, set[str]] = {LIT: set(), PRE: set()}
        allow: dict[PatternType, set[str]] = {LIT: set(), PRE: set()}
        # Only this principal's and `User:*`'s ACLs of the type: never all of them.
        for acl in self.acls.owned_by(resource_type, who):
            if not self.acls.host_applies(acl, host):
                continue
            if acl.operation not in (operation, Operation.ALL):
                continue
            side = deny if acl.permission == Permission.DENY else allow
            side[acl.pattern_type].add(acl.name)
        if WILDCARD_RESOURCE in deny[PatternType.LITERAL]:
            return False
        if WILDCARD_RESOURCE in allow[PatternType.LITERAL]:
            return True
        deny_prefixes = deny[PatternType.PREFIXED]
        for name in allow[PatternType.LITERAL]:
            if name in deny[PatternType.LITERAL]:
                continue
            if not any(name.startswith(p) for p in deny_prefixes):
                return True
        for prefix in allow[PatternType.PREFIXED]:
            if not any(prefix.startswith(p) for p in deny_prefixes):
                return True
        return False


def _by_acls(acls: list[AclBinding], operation: Operation) -> bool | None:
    """What the caller's ACLs say of `operation`: False for a DENY, else True for an
    ALLOW, None for neither."""
    allowed = None
    for acl in acls:
        if not grants(acl, operation):
            continue
        if acl.permission == Permission.DENY:
            return False
        allowed = True
    return allowed
