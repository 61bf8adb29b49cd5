"""Kafka's StandardAuthorizer: the decision for one action from an index of ACLs.

The decision, in Kafka's order (StandardAuthorizerData):

1. a principal in `super.users` is allowed everything;
2. the ACLs that apply to the resource are its LITERAL ones, the LITERAL `*` of its type,
   and the PREFIXED ones whose prefix starts its name; of those, the ones whose principal
   is the caller's or `User:*` and whose host is the caller's or `*` count;
3. a counting DENY for the operation (or ALL) denies; DENY wins over any ALLOW;
4. a counting ALLOW for the operation, ALL, or an operation that implies it (DESCRIBE by
   READ, WRITE, DELETE, ALTER; DESCRIBE_CONFIGS by ALTER_CONFIGS) allows;
5. otherwise: if no ACL at all applies to the resource (whatever its principal),
   `allow.everyone.if.no.acl.found` decides; else denied.

The index keys LITERAL ACLs by (type, name) and PREFIXED ones by (type, prefix), and
keeps the prefix lengths present per type, so a check is a handful of dictionary look-ups
rather than a scan of every ACL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

from contextplane.security.acls import (
    IMPLIED_BY,
    WILDCARD_HOST,
    WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
    AclBinding,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from contextplane.security.authorizer import Action
from contextplane.security.principal import Principal

_Key = tuple[ResourceType, str]
# Cached authorization decisions kept at most (about 3 MB with long topic names).
DECISIONS_MAX = 10_000
LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED


class AclIndex:
    """The ACLs of a broker, indexed by what they apply to."""

    def __init__(self, bindings: Iterable[AclBinding] = ()) -> None:
        self._literal: dict[_Key, set[AclBinding]] = defaultdict(set)
        self._prefixed: dict[_Key, set[AclBinding]] = defaultdict(set)
        # Per resource type: how many PREFIXED ACLs have a prefix of each length.
        self._prefix_lengths: dict[ResourceType, dict[int, int]] = defaultdict(dict)
        self._count = 0
        self.changes = 0  # bumped by every add and remove: cached decisions are stale
        for binding in bindings:
            self.add(binding)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[AclBinding]:
        for table in (self._literal, self._prefixed):
            for acls in table.values():
                yield from acls

    def bindings(self) -> list[AclBinding]:
        return list(self)

    def __contains__(self, binding: AclBinding) -> bool:
        table = self._literal if binding.pattern_type == PatternType.LITERAL else self._prefixed
        return binding in table.get((binding.resource_type, binding.name), ())

    def add(self, binding: AclBinding) -> bool:
        """Add one ACL; False if it was already there (Kafka keeps one copy)."""
        if binding in self:
            return False
        key = (binding.resource_type, binding.name)
        if binding.pattern_type == PatternType.LITERAL:
            self._literal[key].add(binding)
        else:
            self._prefixed[key].add(binding)
            lengths = self._prefix_lengths[binding.resource_type]
            lengths[len(binding.name)] = lengths.get(len(binding.name), 0) + 1
        self._count += 1
        self.changes += 1
        return True

    def remove(self, binding: AclBinding) -> bool:
        key = (binding.resource_type, binding.name)
        table = self._literal if binding.pattern_type == PatternType.LITERAL else self._prefixed
        acls = table.get(key)
        if acls is None or binding not in acls:
            return False
        acls.discard(binding)
        if not acls:
            del table[key]
        if binding.pattern_type == PatternType.PREFIXED:
            lengths = self._prefix_lengths[binding.resource_type]
            lengths[len(binding.name)] -= 1
            if not lengths[len(binding.name)]:
                del lengths[len(binding.name)]
        self._count -= 1
        self.changes += 1
        return True

    def matching(self, acl_filter: AclFilter) -> list[AclBinding]:
        """Every ACL the filter selects (DescribeAcls, DeleteAcls)."""
        return [b for b in self if acl_filter.matches(b)]

    def applying_to(self, resource_type: ResourceType, name: str) -> Iterable[set[AclBinding]]:
        """The sets of ACLs that apply to one resource: its literal name, `*`, prefixes."""
        literal = self._literal
        for key in ((resource_type, name), (resource_type, WILDCARD_RESOURCE)):
            acls = literal.get(key)
            if acls:
                yield acls
        prefixed = self._prefixed
        for length in self._prefix_lengths.get(resource_type, {}):
            if length <= len(name):
                acls = prefixed.get((resource_type, name[:length]))
                if acls:
                    yield acls


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
        return [self.allowed(principal, host, action) for action in actions]

    def allowed(self, principal: Principal, host: str, action: Action) -> bool:
        decisions = self._decisions
        if self._decisions_valid_for != self.acls.changes:
            decisions.clear()
            self._decisions_valid_for = self.acls.changes
        key = (principal, host, action)
        decided = decisions.get(key)
        if decided is None:
            decided = self._decide(principal, host, action)
            if len(decisions) >= DECISIONS_MAX:
                decisions.clear()
            decisions[key] = decided
        return decided

    def _decide(self, principal: Principal, host: str, action: Action) -> bool:
        who = str(principal)
        if who in self.super_users:
            return True
        operation = action.operation
        found_acls = False
        allowed = False
        for acls in self.acls.applying_to(action.resource_type, action.name):
            found_acls = True
            for acl in acls:
                if acl.principal != who and acl.principal != WILDCARD_PRINCIPAL:
                    continue
                if acl.host != host and acl.host != WILDCARD_HOST:
                    continue
                if not grants(acl, operation):
                    continue
                if acl.permission == Permission.DENY:
                    return False
                allowed = True
        if allowed:
            return True
        return not found_acls and self.allow_if_no_acl

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
        for acl in self.acls.bindings():
            if acl.resource_type != resource_type:
                continue
            if acl.principal not in (who, WILDCARD_PRINCIPAL):
                continue
            if acl.host not in (host, WILDCARD_HOST):
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
