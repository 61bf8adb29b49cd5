"""The ACLs of a broker, indexed so that a check touches only the ACLs that can decide it.

LITERAL ACLs are keyed by (type, name) and PREFIXED ones by (type, prefix), with the
prefix lengths present per type; under each key the ACLs are grouped by principal. A
decision for a principal reads the keys that apply to the resource (its name, `*`, its
prefixes) and, under each, only that principal's ACLs and `User:*`'s: 100,000 ACLs of
other principals on the same topic cost one dictionary look-up, not a scan. The ACLs of
each (type, principal) are kept too, for Kafka's authorizeByResourceType (InitProducerId
of an idempotent producer), which would otherwise read every ACL of the broker.

An ACL's host is `*`, an address compared as written (both a string comparison), or a
CIDR block: each block is parsed once, when its first ACL is added, and kept while an
ACL names it, so a check tests the client's address against a parsed network.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from contextplane.security.acl_hosts import (
    WILDCARD_HOST,
    InvalidCidr,
    Network,
    in_block,
    is_cidr,
    parse_cidr,
)
from contextplane.security.acls import (
    WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
    AclBinding,
    AclFilter,
    PatternType,
    ResourceType,
)

_Key = tuple[ResourceType, str]
# Under one resource key: principal -> its ACLs there.
_ByPrincipal = dict[str, set[AclBinding]]
# Filters name any type with ANY; these are the types a binding can have.
_BINDING_TYPES = tuple(t for t in ResourceType if t not in (ResourceType.UNKNOWN, ResourceType.ANY))


def principals_of(principal: str) -> tuple[str, ...]:
    """The principals whose ACLs apply to `principal`: itself and `User:*`."""
    if principal == WILDCARD_PRINCIPAL:
        return (principal,)
    return (principal, WILDCARD_PRINCIPAL)


class AclIndex:
    """The ACLs of a broker, indexed by what they apply to and whom."""

    def __init__(self, bindings: Iterable[AclBinding] = ()) -> None:
        self._literal: dict[_Key, _ByPrincipal] = {}
        self._prefixed: dict[_Key, _ByPrincipal] = {}
        # Per resource type: how many PREFIXED ACLs have a prefix of each length.
        self._prefix_lengths: dict[ResourceType, dict[int, int]] = {}
        self._by_owner: dict[tuple[ResourceType, str], set[AclBinding]] = {}
        # CIDR hosts: the parsed block (None: one Kafka cannot read, which matches no
        # client, as in Kafka) and how many ACLs name it.
        self._blocks: dict[str, tuple[Network | None, int]] = {}
        self._count = 0
        self.changes = 0  # bumped by every add and remove: cached decisions are stale
        for binding in bindings:
            self.add(binding)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[AclBinding]:
        for table in (self._literal, self._prefixed):
            for by_principal in table.values():
                for acls in by_principal.values():
                    yield from acls

    def bindings(self) -> list[AclBinding]:
        return list(self)

    def _table(self, pattern_type: PatternType) -> dict[_Key, _ByPrincipal]:
        return self._literal if pattern_type == PatternType.LITERAL else self._prefixed

    def __contains__(self, binding: AclBinding) -> bool:
        by_principal = self._table(binding.pattern_type).get((binding.resource_type, binding.name))
        return by_principal is not None and binding in by_principal.get(binding.principal, ())

    def add(self, binding: AclBinding) -> bool:
        """Add one ACL; False if it was already there (Kafka keeps one copy)."""
        if binding in self:
            return False
        key = (binding.resource_type, binding.name)
        by_principal = self._table(binding.pattern_type).setdefault(key, {})
        by_principal.setdefault(binding.principal, set()).add(binding)
        if binding.pattern_type == PatternType.PREFIXED:
            lengths = self._prefix_lengths.setdefault(binding.resource_type, {})
            lengths[len(binding.name)] = lengths.get(len(binding.name), 0) + 1
        self._by_owner.setdefault((binding.resource_type, binding.principal), set()).add(binding)
        if is_cidr(binding.host):
            self._add_block(binding.host)
        self._count += 1
        self.changes += 1
        return True

    def remove(self, binding: AclBinding) -> bool:
        if binding not in self:
            return False
        key = (binding.resource_type, binding.name)
        table = self._table(binding.pattern_type)
        by_principal = table[key]
        acls = by_principal[binding.principal]
        acls.discard(binding)
        if not acls:
            del by_principal[binding.principal]
            if not by_principal:
                del table[key]
        if binding.pattern_type == PatternType.PREFIXED:
            lengths = self._prefix_lengths[binding.resource_type]
            lengths[len(binding.name)] -= 1
            if not lengths[len(binding.name)]:
                del lengths[len(binding.name)]
        owner = (binding.resource_type, binding.principal)
        owned = self._by_owner[owner]
        owned.discard(binding)
        if not owned:
            del self._by_owner[owner]
        if is_cidr(binding.host):
            network, users = self._blocks[binding.host]
            if users > 1:
                self._blocks[binding.host] = (network, users - 1)
            else:
                del self._blocks[binding.host]
        self._count -= 1
        self.changes += 1
        return True

    def _add_block(self, host: str) -> None:
        known = self._blocks.get(host)
        if known is not None:
            self._blocks[host] = (known[0], known[1] + 1)
            return
        try:
            network: Network | None = parse_cidr(host)
        except InvalidCidr:
            network = None
        self._blocks[host] = (network, 1)

    def host_applies(self, acl: AclBinding, host: str) -> bool:
        """Does the ACL's host cover a client at `host`: `*`, the same address, or a CIDR
        block holding it (Kafka's StandardAuthorizerData.findResult)?"""
        acl_host = acl.host
        if acl_host in (host, WILDCARD_HOST):
            return True
        block = self._blocks.get(acl_host)
        return block is not None and block[0] is not None and in_block(block[0], host)

    def _applying_keys(self, resource_type: ResourceType, name: str) -> Iterator[_ByPrincipal]:
        """Under each key that applies to one resource (its literal name, `*`, each
        prefix of it), the ACLs by principal."""
        literal = self._literal
        names = (name,) if name == WILDCARD_RESOURCE else (name, WILDCARD_RESOURCE)
        for literal_name in names:
            by_principal = literal.get((resource_type, literal_name))
            if by_principal:
                yield by_principal
        prefixed = self._prefixed
        for length in self._prefix_lengths.get(resource_type, {}):
            if length <= len(name):
                by_principal = prefixed.get((resource_type, name[:length]))
                if by_principal:
                    yield by_principal

    def applying_to(
        self, resource_type: ResourceType, name: str, principal: str | None = None
    ) -> Iterator[list[AclBinding]]:
        """One list per resource pattern that has ACLs applying to the resource: all of
        them, or with `principal` only that principal's and `User:*`'s (an empty list
        still says that some ACL applies, which `allow.everyone.if.no.acl.found` needs)."""
        for by_principal in self._applying_keys(resource_type, name):
            if principal is None:
                yield [acl for acls in by_principal.values() for acl in acls]
                continue
            found: list[AclBinding] = []
            for who in principals_of(principal):
                acls = by_principal.get(who)
                if acls:
                    found.extend(acls)
            yield found

    def owned_by(self, resource_type: ResourceType, principal: str) -> Iterator[AclBinding]:
        """The ACLs of one type whose principal applies to `principal`."""
        for who in principals_of(principal):
            yield from self._by_owner.get((resource_type, who), ())

    def candidates(self, acl_filter: AclFilter) -> Iterator[AclBinding]:
        """A superset of the ACLs the filter selects, narrowed through the index where
        the filter names a resource or a principal; the caller applies the filter."""
        types = (
            _BINDING_TYPES
            if acl_filter.resource_type == ResourceType.ANY
            else (acl_filter.resource_type,)
        )
        name, pattern_type = acl_filter.name, acl_filter.pattern_type
        if name is not None:
            for resource_type in types:
                if pattern_type == PatternType.MATCH:
                    for by_principal in self._applying_keys(resource_type, name):
                        for acls in by_principal.values():
                            yield from acls
                    continue
                for table_type in (PatternType.LITERAL, PatternType.PREFIXED):
                    if pattern_type in (PatternType.ANY, table_type):
                        by_principal = self._table(table_type).get((resource_type, name), {})
                        for acls in by_principal.values():
                            yield from acls
            return
        if acl_filter.principal is not None:
            for resource_type in types:
                yield from self._by_owner.get((resource_type, acl_filter.principal), ())
            return
        yield from self

    def matching(self, acl_filter: AclFilter) -> list[AclBinding]:
        """Every ACL the filter selects (DescribeAcls, DeleteAcls)."""
        return [b for b in self.candidates(acl_filter) if acl_filter.matches(b)]
