"""The broker's SCRAM credentials: loaded from the metadata store at start, changed
through it (AlterUserScramCredentials), read by SCRAM logins and
DescribeUserScramCredentials, and read again when another broker (or `contextplane
users`) changed them (`generation.security` moved: `reload`).

A change is written to the store first (one transaction) and applied to the in-memory
map only once it is durable; changes and reloads are serialised by one lock, so a
reload's read from before a change of this broker's never undoes it. Validation and
answers follow Kafka's ScramControlManager (alter) and ScramImage (describe), messages
included.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from contextplane.errors import DependencyUnavailable
from contextplane.metadata.records import ScramCredentialRecord
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security import scram

SALT_BYTES_MAX = 1024
_TWICE = "A user credential cannot be altered twice in the same request"


@dataclass(frozen=True, slots=True)
class Deletion:
    user: str
    mechanism: int  # Kafka's ScramMechanism type


@dataclass(frozen=True, slots=True)
class Upsertion:
    user: str
    mechanism: int
    iterations: int
    salt: bytes
    salted_password: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    user: str
    error: ErrorCode = ErrorCode.none
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Described:
    user: str
    error: ErrorCode = ErrorCode.none
    message: str = ""  # Kafka's generated default: "" on success, not null
    credentials: tuple[tuple[int, int], ...] = ()  # (mechanism type, iterations)


def _validate_name(user: str, mechanism: int) -> Outcome | None:
    if not user:
        return Outcome(user, ErrorCode.unacceptable_credential, "Username must not be empty")
    if mechanism not in scram.BY_TYPE:
        return Outcome(user, ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism")
    return None


def _validate_upsertion(upsertion: Upsertion) -> Outcome | None:
    problem = _validate_name(upsertion.user, upsertion.mechanism)
    if problem is not None:
        return problem
    mechanism = scram.BY_TYPE[upsertion.mechanism]
    if upsertion.iterations < mechanism.min_iterations:
        return Outcome(upsertion.user, ErrorCode.unacceptable_credential, "Too few iterations")
    if upsertion.iterations > mechanism.max_iterations:
        return Outcome(upsertion.user, ErrorCode.unacceptable_credential, "Too many iterations")
    # Beyond Kafka, which stores what it is sent: every client sends a salt of a few dozen
    # bytes and a salted password of the hash's size; anything else is refused, not kept.
    if not 0 < len(upsertion.salt) <= SALT_BYTES_MAX:
        return Outcome(
            upsertion.user,
            ErrorCode.unacceptable_credential,
            f"The salt must be 1 to {SALT_BYTES_MAX} bytes",
        )
    if len(upsertion.salted_password) != hashlib.new(mechanism.hash_name).digest_size:
        return Outcome(
            upsertion.user,
            ErrorCode.unacceptable_credential,
            f"The salted password is not a {mechanism.name} digest",
        )
    return None


class ScramCredentials:
    def __init__(self, store: MetadataStore, records: Sequence[ScramCredentialRecord]) -> None:
        self._store = store
        self._by_key = self._keyed(records)
        self._lock = asyncio.Lock()

    @staticmethod
    def _keyed(
        records: Sequence[ScramCredentialRecord],
    ) -> dict[tuple[str, str], ScramCredentialRecord]:
        return {(r.user, r.mechanism): r for r in records}

    @classmethod
    async def load(cls, store: MetadataStore) -> ScramCredentials:
        return cls(store, await store.scram_credentials())

    async def reload(self) -> None:
        """Replace the credentials with the stored ones at once: a login after this sees
        a user created, changed or deleted elsewhere (sessions already authenticated
        stay, as in Kafka)."""
        async with self._lock:
            self._by_key = self._keyed(await self._store.scram_credentials())

    def __len__(self) -> int:
        return len(self._by_key)

    def lookup(self, user: str, mechanism: str) -> ScramCredentialRecord | None:
        return self._by_key.get((user, mechanism))

    def describe(self, users: Sequence[str] | None) -> list[Described]:
        """Every user with a credential when `users` is empty or None; a user named
        twice is DUPLICATE_RESOURCE, one without credentials RESOURCE_NOT_FOUND."""
        if not users:
            wanted = dict.fromkeys(sorted({user for user, _ in self._by_key}), False)
        else:
            wanted = {}
            for user in users:
                wanted[user] = user in wanted
        results: list[Described] = []
        for user, twice in wanted.items():
            if twice:
                results.append(
                    Described(
                        user,
                        ErrorCode.duplicate_resource,
                        "Cannot describe SCRAM credentials for the same user twice in a "
                        f"single request: {user}",
                    )
                )
                continue
            found = tuple(
                (m.type, record.iterations)
                for m in (scram.SHA_256, scram.SHA_512)
                if (record := self._by_key.get((user, m.name))) is not None
            )
            if found:
                results.append(Described(user, credentials=found))
            else:
                results.append(
                    Described(
                        user,
                        ErrorCode.resource_not_found,
                        f"Attempt to describe a user credential that does not exist: {user}",
                    )
                )
        return results

    async def alter(
        self, deletions: Sequence[Deletion], upsertions: Sequence[Upsertion]
    ) -> list[Outcome]:
        """Kafka's ScramControlManager.alterCredentials: a user named more than once in a
        request is DUPLICATE_RESOURCE; the valid changes are stored in one transaction.
        Results: deletions, upsertions, then errors."""
        async with self._lock:
            return await self._alter(deletions, upsertions)

    async def _alter(
        self, deletions: Sequence[Deletion], upsertions: Sequence[Upsertion]
    ) -> list[Outcome]:
        errors: dict[str, Outcome] = {}
        deletes: dict[str, Deletion] = {}
        upserts: dict[str, Upsertion] = {}
        for deletion in deletions:
            user = deletion.user
            if user in errors:
                continue
            if deletes.pop(user, None) is not None:
                errors[user] = Outcome(user, ErrorCode.duplicate_resource, _TWICE)
                continue
            problem = _validate_name(user, deletion.mechanism)
            mechanism = scram.BY_TYPE.get(deletion.mechanism)
            if (
                problem is None
                and mechanism is not None
                and (user, mechanism.name) not in self._by_key
            ):
                problem = Outcome(
                    user,
                    ErrorCode.resource_not_found,
                    "Attempt to delete a user credential that does not exist",
                )
            if problem is not None:
                errors[user] = problem
            else:
                deletes[user] = deletion
        for upsertion in upsertions:
            user = upsertion.user
            if user in errors:
                continue
            if deletes.pop(user, None) is not None or upserts.pop(user, None) is not None:
                errors[user] = Outcome(user, ErrorCode.duplicate_resource, _TWICE)
                continue
            problem = _validate_upsertion(upsertion)
            if problem is not None:
                errors[user] = problem
            else:
                upserts[user] = upsertion
        removed = [(d.user, scram.BY_TYPE[d.mechanism].name) for d in deletes.values()]
        stored = [
            scram.credential(
                scram.BY_TYPE[u.mechanism], u.user, u.salt, u.salted_password, u.iterations
            )
            for u in upserts.values()
        ]
        if removed or stored:
            try:
                await self._store.alter_scram_credentials(stored, removed)
            except DependencyUnavailable as exc:
                # Nothing stored: each valid change gets the store's retriable error.
                failed = [Outcome(user, exc.code, exc.message) for user in [*deletes, *upserts]]
                return failed + list(errors.values())
            for key in removed:
                self._by_key.pop(key, None)
            for record in stored:
                self._by_key[(record.user, record.mechanism)] = record
        outcomes = [Outcome(user) for user in deletes]
        outcomes += [Outcome(user) for user in upserts]
        return outcomes + list(errors.values())
