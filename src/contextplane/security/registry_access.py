"""The schema registry's `Access` (services/schema_registry/access.py) on the broker's
own security: HTTP Basic passwords checked against the broker's SCRAM credentials (the
password salted and hashed as a SCRAM login would, compared with the stored key: the
password is never kept), bearer tokens validated as the broker validates OAUTHBEARER
tokens (the first OAUTHBEARER listener's settings and JWKS), subjects authorized by the
broker's ACLs on subject resources (subject_acls.py), and changes and denials written to
the broker's audit log.

`contextplane.registry.authentication.method` chooses: NONE (the default), BASIC or
BEARER (Confluent's `authentication.method` values).
"""

from __future__ import annotations

import asyncio
import hmac
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from contextplane.protocol.error_codes import ErrorCode
from contextplane.security import scram
from contextplane.security.acls import CLUSTER_NAME, Operation, ResourceType
from contextplane.security.audit import AuditLog
from contextplane.security.audit_events import decided_by
from contextplane.security.authorizer import Action, Authorizer
from contextplane.security.jwks import JwksError
from contextplane.security.jwt_validator import JwtValidator, TokenInvalid
from contextplane.security.principal import Principal
from contextplane.security.scram_credentials import ScramCredentials
from contextplane.security.subject_acls import acl_name

METHODS = ("NONE", "BASIC", "BEARER")
LISTENER = "schema-registry"  # how audit records name where a request came in
# The SCRAM mechanisms a password is checked against, strongest first.
_MECHANISMS = (scram.SHA_512, scram.SHA_256)
# Password checks (PBKDF2, up to 16,384 iterations each) run on threads of their own,
# this many: a flood of Basic requests waits for them, never for the event loop's
# default executor, which the broker beside shares (large requests, WAL reads).
PASSWORD_CHECK_THREADS = 2
# An unknown user's password is hashed as a user made with `contextplane user set`'s
# defaults would be (SCRAM-SHA-512, 8192 iterations): the answer takes as long as a
# wrong password's, so its time does not tell which users exist.
_UNKNOWN_USER_ITERATIONS = 8192
_UNKNOWN_USER_SALT = os.urandom(32)


class Caller(Protocol):
    """Who sent a registry request (the registry's own `Caller`)."""

    principal: str  # "User:alice"
    host: str
    port: int


class RegistryAccessError(ValueError):
    """A registry authentication setting the broker cannot honour."""


def password_matches(
    mechanism: scram.ScramMechanism, stored_key: bytes, salt: bytes, iterations: int, password: str
) -> bool:
    """Does `password` give the stored key (StoredKey = H(HMAC(SaltedPassword,
    "Client Key")), RFC 5802), as a SCRAM login with it would prove?"""
    salted = scram.salted_password(mechanism, password, salt, iterations)
    computed = scram.credential(mechanism, "", salt, salted, iterations).stored_key
    return hmac.compare_digest(computed, stored_key)


class BrokerAccess:
    def __init__(
        self,
        method: str,
        realm: str,
        credentials: ScramCredentials | None,
        validator: JwtValidator | None,
        authorizer: Authorizer,
        audit: AuditLog,
    ) -> None:
        self.method = method
        self.realm = realm
        self._credentials = credentials
        self._validator = validator
        self._authorizer = authorizer
        self._audit = audit
        self._hashing = ThreadPoolExecutor(PASSWORD_CHECK_THREADS, "registry-password")

    def authorizer(self) -> Authorizer:
        """What decides now (a registry run alone reads its cluster's ACLs anew)."""
        return self._authorizer

    async def password_principal(self, user: str, password: str) -> str | None:
        if self._credentials is None:
            return None
        for mechanism in _MECHANISMS:
            record = self._credentials.lookup(user, mechanism.name)
            if record is not None:
                stored_key, salt, iterations = record.stored_key, record.salt, record.iterations
                break
        else:
            mechanism, stored_key = scram.SHA_512, b""  # matches no password
            salt, iterations = _UNKNOWN_USER_SALT, _UNKNOWN_USER_ITERATIONS
        # PBKDF2 of 4,096+ iterations: milliseconds, off the event loop.
        matches = await asyncio.get_running_loop().run_in_executor(
            self._hashing, password_matches, mechanism, stored_key, salt, iterations, password
        )
        return str(Principal("User", user)) if matches and stored_key else None

    async def token_principal(self, token: str) -> str | None:
        if self._validator is None:
            return None
        try:
            valid = await self._validator.validate(token)
        except (TokenInvalid, JwksError):
            return None
        return str(Principal("User", valid.principal_name))

    def allowed(self, caller: Caller, operation: str, resource: str, name: str) -> bool:
        principal, host = _who(caller)
        action = _action(operation, resource, name)
        return self.authorizer().authorize(principal, host, [action])[0]

    def audit(
        self,
        caller: Caller,
        api: str,
        operation: str,
        resource: str,
        name: str,
        *,
        allowed: bool,
        result: str,
    ) -> None:
        principal, host = _who(caller)
        acl = ""
        if not allowed and resource in ("SUBJECT", "CLUSTER"):
            acl = decided_by(self.authorizer(), principal, host, _action(operation, resource, name))
        self._audit.service_request(
            service=LISTENER,
            principal=str(principal),
            peer=f"{host}:{caller.port}",
            api=api,
            operation=operation,
            resource_type=resource,
            resource_name=name,
            allowed=allowed,
            result=result,
            acl=acl,
        )

    def authentication_failed(self, host: str, port: int, reason: str) -> None:
        self._audit.sasl_failure(
            peer=f"{host}:{port}",
            host=host,
            listener=LISTENER,
            mechanism=f"HTTP {self.method}",
            client_id="",
            error=ErrorCode.sasl_authentication_failed,
            reason=reason,
        )

    def authenticated(self, host: str, port: int, principal: str) -> None:
        kind, _, name = principal.partition(":")
        self._audit.authentication(
            peer=f"{host}:{port}",
            listener=LISTENER,
            mechanism=f"HTTP {self.method}",
            principal=Principal(kind, name),
            success=True,
        )


def _who(caller: Caller) -> tuple[Principal, str]:
    kind, _, name = caller.principal.partition(":")
    return Principal(kind, name), caller.host


def _action(operation: str, resource: str, name: str) -> Action:
    if resource == "CLUSTER":
        return Action(Operation[operation], ResourceType.CLUSTER, CLUSTER_NAME)
    return Action(Operation[operation], ResourceType.TOPIC, acl_name(name))


def registry_access(
    method: str,
    realm: str,
    credentials: ScramCredentials | None,
    validator: JwtValidator | None,
    authorizer: Authorizer,
    audit: AuditLog,
) -> BrokerAccess | None:
    """The access the settings ask for; None for NONE. Raises RegistryAccessError for a
    method that is not one of METHODS, or BEARER on a broker with no OAUTHBEARER
    listener (there is no token validation to share)."""
    chosen = method.strip().upper() or "NONE"
    if chosen not in METHODS:
        raise RegistryAccessError(
            f"contextplane.registry.authentication.method must be one of "
            f"{', '.join(METHODS)}, got {method!r}"
        )
    if chosen == "NONE":
        return None
    if chosen == "BEARER" and validator is None:
        raise RegistryAccessError(
            "contextplane.registry.authentication.method=BEARER needs a listener with "
            "OAUTHBEARER in sasl.enabled.mechanisms (its token validation is shared)"
        )
    return BrokerAccess(chosen, realm, credentials, validator, authorizer, audit)
