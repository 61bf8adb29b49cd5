"""The subject ACLs of a registry run alone, read from its Kafka cluster: DescribeAcls
every REFRESH_S on the registry's own connection, the TOPIC ACLs named `:subject:...`
(security/subject_acls.py) and `*`, and the CLUSTER ones, decided by Kafka's
StandardAuthorizer with the registry's `super.users`, as `contextplane up` decides them.

ACLs older than STALE_S (the cluster has not answered since) decide nothing: only super
users are allowed until a read succeeds again, so a revoked ACL never outlives the
outage. More than ACLS_MAX ACLs of those kinds are refused rather than read in part (a
missing DENY would allow). The registry's principal needs DESCRIBE on the cluster.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from contextplane.clock import SystemClock
from contextplane.security.acls import WILDCARD_RESOURCE, AclBinding, ResourceType
from contextplane.security.standard_authorizer import StandardAuthorizer
from contextplane.security.subject_acls import SUBJECT_PREFIX
from contextplane.tasks import cancel_and_wait

log = logging.getLogger(__name__)

REFRESH_S = 5.0
STALE_S = 30.0
ACLS_MAX = 100_000


class AclsUnavailable(Exception):
    """The cluster's ACLs could not be read (the message names Kafka's error)."""


def registry_bindings(described: list[Any]) -> list[AclBinding]:
    """The ACLs that can decide a registry request, from confluent-kafka's bindings."""
    kept = []
    for binding in described:
        kind = ResourceType(binding.restype.value)
        if kind == ResourceType.TOPIC:
            if not (binding.name.startswith(SUBJECT_PREFIX) or binding.name == WILDCARD_RESOURCE):
                continue
        elif kind != ResourceType.CLUSTER:
            continue
        kept.append(
            AclBinding.from_wire(
                kind,
                binding.name,
                binding.resource_pattern_type.value,
                binding.principal,
                binding.host,
                binding.operation.value,
                binding.permission_type.value,
            )
        )
        if len(kept) > ACLS_MAX:
            raise AclsUnavailable(f"more than {ACLS_MAX} subject and cluster ACLs")
    return kept


class ClusterAcls:
    def __init__(
        self,
        admin: Any,
        super_users: frozenset[str],
        allow_if_no_acl: bool,
        timeout_s: float,
    ) -> None:
        self._admin = admin  # confluent-kafka AdminClient of the registry's connection
        self._super_users = super_users
        self._allow_if_no_acl = allow_if_no_acl
        self._timeout_s = timeout_s
        self._clock = SystemClock()
        self._current = StandardAuthorizer((), super_users, allow_if_no_acl)
        self._read_ms = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """The first read, which must succeed (AclsUnavailable), then one every REFRESH_S."""
        await self._refresh()
        self._task = asyncio.create_task(self._refreshing(), name="registry-acls")

    def authorizer(self) -> StandardAuthorizer:
        if self._clock.monotonic_ms() - self._read_ms > STALE_S * 1000:
            return StandardAuthorizer((), self._super_users, False)
        return self._current

    async def _refreshing(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self._refresh()
            except AclsUnavailable as exc:
                log.warning("the cluster's ACLs were not read (%s); kept for %g s", exc, STALE_S)

    async def _refresh(self) -> None:
        bindings = await asyncio.get_running_loop().run_in_executor(None, self._describe)
        self._current = StandardAuthorizer(bindings, self._super_users, self._allow_if_no_acl)
        self._read_ms = self._clock.monotonic_ms()

    def _describe(self) -> list[AclBinding]:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import (
            AclBindingFilter,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
        )
        from confluent_kafka.admin import ResourceType as KafkaResourceType

        from contextplane.cli.kafka_client import exception_text

        anything: Any = None  # confluent-kafka's stubs say str; None matches any
        every = AclBindingFilter(
            KafkaResourceType.ANY, anything, ResourcePatternType.ANY, anything, anything,
            AclOperation.ANY, AclPermissionType.ANY,
        )  # fmt: skip
        try:
            found = self._admin.describe_acls(every, request_timeout=self._timeout_s)
            return registry_bindings(found.result(timeout=self._timeout_s))
        except KafkaException as exc:
            raise AclsUnavailable(f"DescribeAcls: {exception_text(exc)}") from None
        except TimeoutError:
            raise AclsUnavailable(f"DescribeAcls: no answer within {self._timeout_s:g} s") from None

    async def close(self) -> None:
        await cancel_and_wait(self._task)
