"""Who may use the registry: HTTP Basic or Bearer authentication, then authorization per
subject, both answered by an `Access` the registry is given (security/registry_access.py
builds one on a broker's SCRAM users, OAUTHBEARER validator, ACLs and audit log).
Without one, every request is served as before, by nobody in particular.

`Authentication` (ASGI middleware) answers 401 with `WWW-Authenticate` before any route
runs (429 with `Retry-After` past the logins in flight one address may have:
address_logins.py), audits a session's first success (session_audit.py) and puts the
`Caller` in the scope; `guarded` wraps a route with what it needs
(access_rules.py): READ or WRITE on the path's subject or ALTER on the cluster, denials
answered 403 (40301), changes audited with their result.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from contextplane.services.schema_registry import errors
from contextplane.services.schema_registry.address_logins import (
    RETRY_AFTER_S,
    AddressLogins,
    TooManyLogins,
)
from contextplane.services.schema_registry.errors import RegistryError
from contextplane.services.schema_registry.http_io import RegistryResponse
from contextplane.services.schema_registry.session_audit import SessionAudit

CALLER_KEY = "contextplane.registry.caller"
# A Basic credential or a bearer token longer than this is refused unread (a JWT the
# broker accepts is far shorter; h11 bounds the whole head anyway).
CREDENTIALS_CHARS_MAX = 16 * 1024

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Caller:
    principal: str  # "User:alice"
    host: str  # the client's address, as ACL hosts name it
    port: int


@dataclass(frozen=True, slots=True)
class Need:
    """What a route needs: `operation` (READ, WRITE, ALTER) on `on` ("subject": the
    path's subject; "cluster"; "listing": the handler filters what it answers by READ;
    "nothing": any authenticated caller); `change` names an audited change."""

    operation: str
    on: str
    change: str | None = None


class Access(Protocol):
    method: str  # "BASIC" or "BEARER"
    realm: str

    async def password_principal(self, user: str, password: str) -> str | None:
        """The principal a user name and password prove, or None."""
        ...

    async def token_principal(self, token: str) -> str | None:
        """The principal a bearer token proves, or None."""
        ...

    def allowed(self, caller: Caller, operation: str, resource: str, name: str) -> bool:
        """May the caller do `operation` on the SUBJECT or CLUSTER named?"""
        ...

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
    ) -> None: ...

    def authentication_failed(self, host: str, port: int, reason: str) -> None: ...

    def authenticated(self, host: str, port: int, principal: str) -> None:
        """Audit a session's first successful authentication."""
        ...


def access_of(request: Request) -> Access | None:
    access: Access | None = request.app.state.access
    return access


def caller_of(request: Request) -> Caller:
    caller: Caller = request.scope[CALLER_KEY]
    return caller


class Authentication:
    """401 for a request without a credential the access accepts; else the caller."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access
        self.logins = AddressLogins()
        self.sessions = SessionAudit()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host, port = scope.get("client") or ("", 0)
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        try:
            principal, reason = await self.logins.check(
                host, header, lambda: self._principal(header)
            )
        except TooManyLogins:
            self.access.authentication_failed(host, port, "too many logins in flight")
            error = errors.too_many_logins()
            response = RegistryResponse(
                error.body(),
                status_code=error.status,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        if principal is None:
            self.access.authentication_failed(host, port, reason)
            error = errors.unauthorized()
            challenge = f'{self.access.method.capitalize()} realm="{self.access.realm}"'
            response = RegistryResponse(
                error.body(), status_code=error.status, headers={"WWW-Authenticate": challenge}
            )
            await response(scope, receive, send)
            return
        if self.sessions.is_new(host, principal):
            self.access.authenticated(host, port, principal)
        scope[CALLER_KEY] = Caller(principal, host, port)
        await self.app(scope, receive, send)

    async def _principal(self, header: str) -> tuple[str | None, str]:
        scheme, _, credentials = header.strip().partition(" ")
        if not scheme:
            return None, "no credentials"
        if scheme.upper() != self.access.method:
            return None, f"{scheme[:32]!r} credentials where {self.access.method} is expected"
        credentials = credentials.strip()
        if len(credentials) > CREDENTIALS_CHARS_MAX:
            return None, f"credentials longer than {CREDENTIALS_CHARS_MAX} characters"
        if self.access.method == "BEARER":
            principal = await self.access.token_principal(credentials)
            return principal, "" if principal else "the token is not valid"
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, "Basic credentials that are not base64 of user:password"
        user, sep, password = decoded.partition(":")
        if not sep or not user:
            return None, "Basic credentials without a user name"
        principal = await self.access.password_principal(user, password)
        return principal, "" if principal else f"wrong password or unknown user {user[:256]!r}"


def guarded(endpoint: Endpoint, need: Need, route: str) -> Endpoint:
    """`endpoint` checked against `need` first, and audited after when it is a change
    (`route` names a denied read in the audit)."""

    async def checked(request: Request) -> Response:
        access = access_of(request)
        if access is None or need.on not in ("subject", "cluster"):
            return await endpoint(request)  # lists filter by READ themselves
        caller = caller_of(request)
        if need.on == "subject":
            resource, name = "SUBJECT", request.path_params["subject"]
        else:
            resource, name = "CLUSTER", "kafka-cluster"

        def audit(allowed: bool, result: str) -> None:
            access.audit(
                caller, need.change or route, need.operation, resource, name,
                allowed=allowed, result=result,
            )  # fmt: skip

        if not access.allowed(caller, need.operation, resource, name):
            audit(False, "40301")
            raise errors.forbidden(need.operation.capitalize(), resource.capitalize(), name)
        if need.change is None:
            return await endpoint(request)
        try:
            response = await endpoint(request)
        except RegistryError as exc:
            audit(True, str(exc.error_code))
            raise
        audit(True, str(response.status_code))
        return response

    return checked


def readable(request: Request, subjects: Iterable[str]) -> list[str]:
    """The subjects the caller may READ (all of them without access control)."""
    access = access_of(request)
    if access is None:
        return list(subjects)
    caller = caller_of(request)
    return [s for s in subjects if access.allowed(caller, "READ", "SUBJECT", s)]


def require_any_readable(request: Request, schema_id: int, subjects: Iterable[str]) -> None:
    """A schema by id is the caller's to read when one subject holding it is (Confluent
    authorizes an id lookup on any subject that uses the schema)."""
    access = access_of(request)
    if access is None:
        return
    held = list(subjects)
    if held and not readable(request, held):
        caller = caller_of(request)
        name = str(schema_id)
        access.audit(
            caller,
            "GET /schemas/ids/{schema_id}",
            "READ",
            "SCHEMA",
            name,
            allowed=False,
            result="40301",
        )
        raise errors.forbidden("Read", "Schema", name)


async def checked_on_subject(
    request: Request, operation: str, subject: str, change: str, run: Endpoint
) -> Response:
    """`run` guarded as a route on `subject` is, for a route whose subject is in its
    body rather than its path (the DEK registry's `POST /keks/{name}/deks`)."""
    need = Need(operation, "subject", change)
    request.path_params["subject"] = subject
    return await guarded(run, need, change)(request)
