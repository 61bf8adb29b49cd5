"""The broker's ACLs: loaded from the metadata store at start, changed through it, and
read again when another broker changed them (`generation.security` moved: `reload`).

A change is written to the store first (one transaction) and applied to the
authorizer's index only once it is durable, so what the authorizer enforces is always
what a restarted broker will load.

One request changes at most ACL_CHANGES_MAX ACLs, Kafka's bound (its controller's
MAX_RECORDS_PER_USER_OP), refused with Kafka's errors. Matching filters against the ACLs
gives the event loop back every few milliseconds (LoopShare), and identical filters of
one DeleteAcls are matched once; changes and reads of the index are serialised by one
lock, so a match that yields never sees the index change under it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from contextplane.broker.loopshare import LoopShare
from contextplane.errors import DependencyUnavailable
from contextplane.metadata.records import AclRecord
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import AclBinding, AclFilter, parse_super_users
from contextplane.security.standard_authorizer import StandardAuthorizer
from contextplane.settings import Settings

# Kafka 4.x: QuorumController.MAX_RECORDS_PER_USER_OP, the records (one per ACL created
# or removed) one CreateAcls or DeleteAcls may write.
ACL_CHANGES_MAX = 10_000
# Not Kafka's: the bindings one DeleteAcls response may list. Identical filters list
# their matches again (Kafka's answer), so 1,000 match-all filters over 9,999 ACLs
# would be a ten-million-entry response; a quarter million is 25 match-all filters at
# Kafka's removal bound.
ACL_DELETE_LISTED_MAX = 25 * ACL_CHANGES_MAX


class AclChangeRefused(Exception):
    """The whole request is refused, every entry with this error (Kafka's answers)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def _stored(write: Awaitable[None]) -> None:
    """A change's store write; the store out of reach (or out of disk) refuses the whole
    request with its retriable error, as Kafka answers every binding that reached its
    controller, instead of an internal error that closes the client's connection."""
    try:
        await write
    except DependencyUnavailable as exc:
        raise AclChangeRefused(exc.code, exc.message) from exc


def too_many_creations() -> AclChangeRefused:
    """CreateAcls over the bound: Kafka's controller turns its BoundedListTooLongException
    into this PolicyViolationException (EventHandlerExceptionInfo)."""
    return AclChangeRefused(
        ErrorCode.policy_violation, "Unable to perform excessively large batch operation."
    )


def too_many_deletions() -> AclChangeRefused:
    """DeleteAcls over the bound: AclControlManager.deleteAcls' InvalidRequestException."""
    return AclChangeRefused(
        ErrorCode.invalid_request,
        f"Cannot remove more than {ACL_CHANGES_MAX} acls in a single delete operation.",
    )


def too_many_listed(listed: int) -> AclChangeRefused:
    """DeleteAcls whose response would list more than ACL_DELETE_LISTED_MAX bindings."""
    return AclChangeRefused(
        ErrorCode.invalid_request,
        f"DeleteAcls would list more than {ACL_DELETE_LISTED_MAX} bindings in its response "
        f"({listed} so far: each filter lists every ACL it matches, repeated filters too); "
        "send fewer filters",
    )


def to_record(binding: AclBinding) -> AclRecord:
    return AclRecord(
        int(binding.resource_type),
        binding.name,
        int(binding.pattern_type),
        binding.principal,
        binding.host,
        int(binding.operation),
        int(binding.permission),
    )


def from_record(record: AclRecord) -> AclBinding:
    return AclBinding.from_wire(
        record.resource_type,
        record.resource_name,
        record.pattern_type,
        record.principal,
        record.host,
        record.operation,
        record.permission,
    )


class AclAdmin:
    """CreateAcls, DescribeAcls and DeleteAcls against the store and the authorizer."""

    def __init__(self, store: MetadataStore, authorizer: StandardAuthorizer) -> None:
        self._store = store
        self.authorizer = authorizer
        self._lock = asyncio.Lock()

    @classmethod
    async def load(cls, store: MetadataStore, settings: Settings) -> AclAdmin:
        records = await store.acls()
        authorizer = StandardAuthorizer(
            (from_record(r) for r in records),
            super_users=parse_super_users(settings.super_users),
            allow_if_no_acl=settings.allow_everyone_if_no_acl_found,
        )
        return cls(store, authorizer)

    async def reload(self) -> None:
        """Bring the index to the stored ACLs (another broker created or deleted some):
        only the differences are applied. Read under the lock: a read from before a
        change of this broker's must not undo it."""
        async with self._lock:
            records = await self._store.acls()
            # The differences are found giving the loop back every few milliseconds (a
            # store may hold many ACLs, every broker reloads on every change), then
            # applied without a pause: the authorizer never sees half of them.
            share = LoopShare()
            stored: set[AclBinding] = set()
            for record in records:
                stored.add(from_record(record))
                if share.due():
                    await asyncio.sleep(0)
            index = self.authorizer.acls
            gone = [b for b in index if b not in stored]
            added = []
            for binding in stored:
                if binding not in index:
                    added.append(binding)
                if share.due():
                    await asyncio.sleep(0)
            for binding in gone:
                index.remove(binding)
            for binding in added:
                index.add(binding)

    async def create(self, bindings: Sequence[AclBinding]) -> None:
        """Store and enforce valid bindings (the caller validated them); too_many_creations
        if more than ACL_CHANGES_MAX of them are new (ones already there cost nothing,
        as in Kafka)."""
        async with self._lock:
            index = self.authorizer.acls
            new = [b for b in dict.fromkeys(bindings) if b not in index]
            if len(new) > ACL_CHANGES_MAX:
                raise too_many_creations()
            if not new:
                return
            await _stored(self._store.create_acls([to_record(b) for b in new]))
            for binding in new:
                index.add(binding)

    async def describe(self, acl_filter: AclFilter) -> list[AclBinding]:
        async with self._lock:
            return await self._matching(acl_filter)

    async def _matching(self, acl_filter: AclFilter, limit: int | None = None) -> list[AclBinding]:
        """The ACLs the filter selects (at most `limit`), giving the loop back as it goes
        (the caller holds the lock: the index does not change meanwhile)."""
        share = LoopShare()
        matched: list[AclBinding] = []
        for binding in self.authorizer.acls.candidates(acl_filter):
            if acl_filter.matches(binding):
                matched.append(binding)
                if limit is not None and len(matched) >= limit:
                    break
            if share.due():
                await asyncio.sleep(0)
        return matched

    async def delete(self, filters: Sequence[AclFilter]) -> list[list[AclBinding]]:
        """The bindings each filter matched, all deleted in one transaction. As Kafka's
        AclControlManager.deleteAcls: a binding several filters match is listed under
        each of them and removed once; the request fails (too_many_deletions, nothing
        removed) as soon as a filter matches while ACL_CHANGES_MAX removals are already
        taken, or takes the count past it. Identical filters are matched once; a request
        whose response would list more than ACL_DELETE_LISTED_MAX bindings is refused
        the same way (too_many_listed)."""
        async with self._lock:
            matched_by: dict[AclFilter, list[AclBinding]] = {}
            taken: dict[AclBinding, None] = {}
            results: list[list[AclBinding]] = []
            listed = 0
            for acl_filter in filters:
                matched = matched_by.get(acl_filter)
                if matched is None:
                    matched = await self._matching(acl_filter, limit=ACL_CHANGES_MAX + 1)
                    matched_by[acl_filter] = matched
                if matched:
                    if len(taken) >= ACL_CHANGES_MAX:
                        raise too_many_deletions()
                    taken.update(dict.fromkeys(matched))
                    if len(taken) > ACL_CHANGES_MAX:
                        raise too_many_deletions()
                listed += len(matched)
                if listed > ACL_DELETE_LISTED_MAX:
                    raise too_many_listed(listed)
                results.append(matched)
            if taken:
                await _stored(self._store.delete_acls([to_record(b) for b in taken]))
                for binding in taken:
                    self.authorizer.acls.remove(binding)
            return results
