"""The `Access` of a registry run alone (`contextplane registry`), on the Kafka cluster it
keeps `_schemas` in, with the guarantees `contextplane up` gives its registry: Basic
passwords checked by a SASL login to the cluster (cluster_logins.py), bearer tokens
validated as the broker's OAUTHBEARER listener validates them (the same `sasl.oauthbearer.*`
settings), subjects authorized by the cluster's ACLs (cluster_acls.py) and the registry's
`super.users`, and changes and denials audited: the `contextplane.audit` log lines and,
with an audit topic, the same CloudEvents records produced to it.

The settings are the broker's names (`contextplane.registry.authentication.method`,
`...realm`, `super.users`, `allow.everyone.if.no.acl.found`, `sasl.oauthbearer.*`).
"""

from __future__ import annotations

import logging
from typing import Any

from contextplane.clock import SystemClock
from contextplane.security.acls import parse_super_users
from contextplane.security.audit import AuditLog
from contextplane.security.authorizer import Authorizer
from contextplane.security.jwks import Jwks, JwksError
from contextplane.security.jwt_validator import JwtValidator
from contextplane.security.oauthbearer_settings import (
    OAuthSettingsError,
    for_listener,
    from_settings,
)
from contextplane.security.principal import Principal
from contextplane.security.registry_access import METHODS, BrokerAccess, RegistryAccessError
from contextplane.services.schema_registry.cluster_acls import AclsUnavailable, ClusterAcls
from contextplane.services.schema_registry.cluster_logins import ClusterLogins, login_config
from contextplane.settings import Settings

log = logging.getLogger(__name__)

# Audit records waiting for the cluster at most; past it a record is dropped and counted
# (the log line is written all the same).
AUDIT_BUFFER_RECORDS = 10_000
SOURCE = "contextplane://schema-registry"


class AuditTopic:
    """AuditLog's offer: each record produced to `topic`, never waited for."""

    def __init__(self, config: dict[str, str], topic: str) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.dropped = 0
        self.failed = 0
        self._producer = Producer(
            config
            | {
                "acks": "all",
                "linger.ms": 100,
                "queue.buffering.max.messages": AUDIT_BUFFER_RECORDS,
                "message.timeout.ms": 60_000,
            }
        )

    def offer(self, key: bytes, value: bytes) -> bool:
        try:
            self._producer.produce(self.topic, value, key, on_delivery=self._delivered)
        except BufferError:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "audit records dropped: %d (%s is not answering)", self.dropped, self.topic
                )
            return False
        self._producer.poll(0)  # serves earlier deliveries
        return True

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.failed += 1
            log.warning("an audit record was not written to %s: %s", self.topic, error.str())

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.flush(timeout_s)


class ClusterAccess(BrokerAccess):
    def __init__(
        self,
        method: str,
        realm: str,
        logins: ClusterLogins | None,
        validator: JwtValidator | None,
        acls: ClusterAcls,
        audit: AuditLog,
        audit_topic: AuditTopic | None,
    ) -> None:
        super().__init__(method, realm, None, validator, acls.authorizer(), audit)
        self._logins = logins
        self._acls = acls
        self._audit_topic = audit_topic

    async def password_principal(self, user: str, password: str) -> str | None:
        if self._logins is None or not await self._logins.check(user, password):
            return None
        return str(Principal("User", user))

    def authorizer(self) -> Authorizer:
        return self._acls.authorizer()

    async def close(self) -> None:
        await self._acls.close()
        if self._logins is not None:
            self._logins.close()
        if self._audit_topic is not None:
            self._audit_topic.close()


async def token_validator(settings: Settings) -> JwtValidator:
    """Tokens checked as a broker's OAUTHBEARER listener with these settings checks them,
    its JWKS read once first (as the broker's start reads it)."""
    clock = SystemClock()
    try:
        config = for_listener(from_settings(settings), {}, "")
    except OAuthSettingsError as exc:
        raise RegistryAccessError(str(exc)) from None
    keys = Jwks(config.jwks_url, config.jwks_refresh_ms, clock)
    try:
        await keys.load()
    except JwksError as exc:
        raise RegistryAccessError(f"sasl.oauthbearer.jwks.endpoint.url: {exc}") from None
    return JwtValidator(config, keys, clock)


async def open_cluster_access(
    settings: Settings,
    client_config: dict[str, str],
    *,
    schemas_topic: str,
    login_mechanism: str,
    audit_topic: str | None,
    replication_factor: int,
    timeout_s: float,
) -> ClusterAccess | None:
    """The access the settings ask for (None: NONE), its first ACLs read and its JWKS
    loaded; RegistryAccessError naming what cannot be used. `client_config`: the
    registry's librdkafka settings, bootstrap included."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from contextplane.cli.kafka_client import BrokerUnreachable, ConfigError
    from contextplane.cli.protocol_admin import connect_with
    from contextplane.services.kafka_topics import ensure_topics

    method = settings.registry_authentication_method.strip().upper() or "NONE"
    if method not in METHODS:
        raise RegistryAccessError(f"authentication method {method!r} is not one of {METHODS}")
    if method == "NONE":
        return None
    logins = validator = None
    if method == "BASIC":
        logins = ClusterLogins(login_config(client_config, login_mechanism), schemas_topic)
    else:
        validator = await token_validator(settings)
    try:
        reader = connect_with(client_config, timeout_s)
    except (BrokerUnreachable, ConfigError) as exc:
        raise RegistryAccessError(f"reading the cluster's ACLs: {exc}") from None
    acls = ClusterAcls(
        reader, parse_super_users(settings.super_users), settings.allow_everyone_if_no_acl_found
    )
    try:
        await acls.start()
    except AclsUnavailable as exc:
        await acls.close()
        refused = "AUTHORIZATION_FAILED" in str(exc)
        hint = " (the registry's principal needs DESCRIBE on the cluster)" if refused else ""
        raise RegistryAccessError(f"the cluster's ACLs: {exc}{hint}") from None
    topic = None
    if audit_topic is not None:
        admin = AdminClient(dict[str, Any](client_config))
        wanted = [NewTopic(audit_topic, 1, replication_factor)]
        bootstrap = client_config["bootstrap.servers"]
        ensure_topics(admin, wanted, bootstrap, timeout_s, RegistryAccessError)
        topic = AuditTopic(client_config, audit_topic)
    audit = AuditLog(
        topic.offer if topic else None,
        SOURCE,
        SystemClock().wall_ms,
        denial_records_per_second=settings.audit_denial_records_per_second,
    )
    realm = settings.registry_authentication_realm
    return ClusterAccess(method, realm, logins, validator, acls, audit, topic)
