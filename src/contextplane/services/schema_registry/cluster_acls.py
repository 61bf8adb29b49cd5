"""The subject ACLs of a registry run alone, read from its Kafka cluster: DescribeAcls
every REFRESH_S on the registry's own connection, the TOPIC ACLs named `:subject:...`
(security/subject_acls.py) and `*`, and the CLUSTER ones, decided by Kafka's
StandardAuthorizer with the registry's `super.users`, as `contextplane up` decides them.

ACLs older than STALE_S (the cluster has not answered since) decide nothing: only super
users are allowed until a read succeeds again, so a revoked ACL never outlives the
outage. More than ACLS_MAX ACLs of those kinds are refused rather than read in part (a
missing DENY would allow). The registry's principal needs DESCRIBE on the cluster. A
cluster without an authorizer (SECURITY_DISABLED) allows every authenticated caller
everything, as `contextplane up` without one does.

DescribeAcls goes through kafka-python (cli/protocol_admin.py), not confluent-kafka, which
answers a refused DescribeAcls (CLUSTER_AUTHORIZATION_FAILED, SECURITY_DISABLED) as an
empty list: read as "no ACLs", `allow.everyone.if.no.acl.found=true` would then allow all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from contextplane.clock import SystemClock
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import WILDCARD_RESOURCE, AclBinding, ResourceType
from contextplane.security.authorizer import AllowEverything, Authorizer
from contextplane.security.standard_authorizer import StandardAuthorizer
from contextplane.security.subject_acls import SUBJECT_PREFIX
from contextplane.tasks import cancel_and_wait

log = logging.getLogger(__name__)

REFRESH_S = 5.0
STALE_S = 30.0
ACLS_MAX = 100_000


class AclsUnavailable(Exception):
    """The cluster's ACLs could not be read (the message names Kafka's error)."""


# DescribeAcls' filter: ANY resource type, pattern, operation and permission; any name,
# principal and host.
_MATCH_ANY = 1


def registry_bindings(resources: list[Any]) -> list[AclBinding]:
    """The ACLs that can decide a registry request, from DescribeAcls' resources."""
    kept = []
    for resource in resources:
        kind, name = resource.resource_type, resource.resource_name
        if kind == ResourceType.TOPIC:
            if not (name.startswith(SUBJECT_PREFIX) or name == WILDCARD_RESOURCE):
                continue
        elif kind != ResourceType.CLUSTER:
            continue
        for acl in resource.acls:
            kept.append(
                AclBinding.from_wire(
                    kind,
                    name,
                    resource.pattern_type,
                    acl.principal,
                    acl.host,
                    acl.operation,
                    acl.permission_type,
                )  # fmt: skip
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
    ) -> None:
        self._admin = admin  # kafka-python KafkaAdminClient (protocol_admin.connect_with)
        self._super_users = super_users
        self._allow_if_no_acl = allow_if_no_acl
        self._clock = SystemClock()
        self._current: Authorizer = StandardAuthorizer((), super_users, allow_if_no_acl)
        self._read_ms = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """The first read, which must succeed (AclsUnavailable), then one every REFRESH_S."""
        await self._refresh()
        self._task = asyncio.create_task(self._refreshing(), name="registry-acls")

    def authorizer(self) -> Authorizer:
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
        # One read at a time (start, then the loop): the kafka-python client is not shared.
        bindings = await asyncio.get_running_loop().run_in_executor(None, self._describe)
        if bindings is None:  # as `up` without an authorizer: everything is allowed
            self._current = AllowEverything()
        else:
            self._current = StandardAuthorizer(bindings, self._super_users, self._allow_if_no_acl)
        self._read_ms = self._clock.monotonic_ms()

    def _describe(self) -> list[AclBinding] | None:
        """The ACLs; None when the cluster has no authorizer (SECURITY_DISABLED)."""
        from kafka.protocol.admin import DescribeAclsRequest

        from contextplane.cli.kafka_client import CommandError
        from contextplane.cli.protocol_admin import response_error, send

        request = DescribeAclsRequest(
            resource_type_filter=_MATCH_ANY, resource_name_filter=None,
            pattern_type_filter=_MATCH_ANY, principal_filter=None, host_filter=None,
            operation=_MATCH_ANY, permission_type=_MATCH_ANY,
        )  # fmt: skip
        try:
            response = send(self._admin, request, "DescribeAcls")
            if response.error_code == ErrorCode.security_disabled:
                return None
            response_error(response.error_code, response.error_message, "DescribeAcls")
        except CommandError as exc:
            raise AclsUnavailable(str(exc)) from None
        return registry_bindings(response.resources)

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._admin.close()
