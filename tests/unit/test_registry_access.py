"""The registry's access control in its own ASGI app over the in-memory store, on the
broker's real pieces: bearer tokens from the test issuer checked by the broker's
JwtValidator against its JWKS file, the StandardAuthorizer holding subject ACLs, the
audit log's records; and a password checked against a SCRAM credential."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from contextplane.clock import SystemClock
from contextplane.security import scram
from contextplane.security.acls import AclBinding, Operation, PatternType, Permission, ResourceType
from contextplane.security.audit import AuditLog
from contextplane.security.jwks import Jwks
from contextplane.security.jwt_validator import JwtValidator
from contextplane.security.oauthbearer_settings import OAuthBearerConfig
from contextplane.security.registry_access import (
    BrokerAccess,
    RegistryAccessError,
    password_matches,
    registry_access,
)
from contextplane.security.standard_authorizer import StandardAuthorizer
from contextplane.security.subject_acls import acl_name
from contextplane.services.schema_registry.access_rules import NEEDS
from contextplane.services.schema_registry.app import build_app
from contextplane.services.schema_registry.dek_registry import DekRegistry
from contextplane.services.schema_registry.registry import SchemaRegistry
from contextplane.services.schema_registry.store import MemoryStore
from tests.support.asgi import Answer, call
from tests.support.jwt_issuer import AUDIENCE, ISSUER, Issuer

SCHEMA = {"schema": json.dumps({"type": "record", "name": "R", "fields": []})}


def _allow(principal: str, subject: str, pattern: PatternType, operation: Operation) -> AclBinding:
    return AclBinding(
        ResourceType.TOPIC, acl_name(subject), pattern, principal, "*", operation, Permission.ALLOW
    )


def _bearer_access(tmp_path: Path, issuer: Issuer, records: list[dict[str, Any]]) -> BrokerAccess:
    jwks_file = issuer.write_jwks(tmp_path / "jwks.json")
    config = OAuthBearerConfig(
        jwks_url=jwks_file.as_uri(), expected_issuer=ISSUER, expected_audience=(AUDIENCE,)
    )
    clock = SystemClock()
    validator = JwtValidator(config, Jwks(config.jwks_url, config.jwks_refresh_ms, clock), clock)
    authorizer = StandardAuthorizer(
        [
            _allow("User:alice", "orders-", PatternType.PREFIXED, Operation.WRITE),
            _allow("User:bob", "orders-value", PatternType.LITERAL, Operation.READ),
        ],
        super_users=frozenset({"User:admin"}),
    )

    def offer(key: bytes, value: bytes) -> bool:
        records.append(json.loads(value))
        return True

    audit = AuditLog(offer, authorizer=authorizer)
    access = registry_access("bearer", "SchemaRegistry", None, validator, authorizer, audit)
    assert isinstance(access, BrokerAccess)
    return access


def test_bearer_tokens_and_subject_acls(tmp_path: Path) -> None:
    issuer = Issuer()
    records: list[dict[str, Any]] = []
    access = _bearer_access(tmp_path, issuer, records)

    async def main() -> None:
        registry = SchemaRegistry(MemoryStore())
        await registry.start()
        app = build_app(registry, access)

        async def as_(sub: str | None, method: str, target: str, body: Any = None) -> Answer:
            headers = {"Authorization": f"Bearer {issuer.token(sub)}"} if sub else {}
            return await call(app, method, target, body, headers=headers)

        # alice may WRITE orders-* (and so DESCRIBE, not READ); bob may READ orders-value.
        registered = await as_("alice", "POST", "/subjects/orders-value/versions", SCHEMA)
        assert registered.status == 200, registered.body
        assert (await as_("bob", "GET", "/subjects/orders-value/versions/1")).status == 200
        invalid = {"schema": "{not json"}
        assert (await as_("alice", "POST", "/subjects/orders-key/versions", invalid)).status == 422
        assert (await as_("bob", "GET", "/subjects")).json() == ["orders-value"]
        assert (await as_("bob", "GET", "/schemas/ids/1")).status == 200
        denied = await as_("bob", "DELETE", "/subjects/orders-value")
        assert (denied.status, denied.json()["error_code"]) == (403, 40301)
        assert (await as_("alice", "PUT", "/mode", {"mode": "READONLY"})).status == 403
        assert (await as_("admin", "PUT", "/config", {"compatibility": "NONE"})).status == 200
        assert (await as_("carol", "GET", "/subjects")).json() == []
        assert (await as_("carol", "GET", "/schemas/ids/1")).status == 403
        assert (await as_("carol", "GET", "/subjects/orders-value/versions")).status == 403
        missing = await as_(None, "GET", "/subjects")
        assert missing.status == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="SchemaRegistry"'
        for token in (issuer.unsigned_token(), issuer.hmac_with_public_key(), "x.y.z"):
            answer = await call(
                app, "GET", "/subjects", headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status == 401
        expired = issuer.token("alice", lifetime_s=-3600)
        answer = await call(app, "GET", "/", headers={"Authorization": f"Bearer {expired}"})
        assert answer.status == 401

    asyncio.run(main())
    logins = [r["data"] for r in records if r["data"].get("operation") == "AUTHENTICATE"]
    data = [r["data"] for r in records if r["data"].get("operation") != "AUTHENTICATE"]
    assert {
        "api": "RegisterSchema",
        "principal": "User:alice",
        "resource_type": "SUBJECT",
        "resource_name": "orders-value",
        "decision": "ALLOWED",
        "result": "200",
    }.items() <= data[0].items()
    failed = next(d for d in data if d.get("resource_name") == "orders-key")
    assert (failed["decision"], failed["result"]) == ("FAILED", "42201")
    carol = [(d["api"], d["resource_type"]) for d in data if d["principal"] == "User:carol"]
    assert carol == [
        ("GET /schemas/ids/{schema_id}", "SCHEMA"),
        ("GET /subjects/{subject}/versions", "SUBJECT"),
    ]
    denial = next(d for d in data if d["principal"] == "User:bob")
    assert denial["api"] == "DeleteSubject"
    assert denial["decision"] == "DENIED"
    assert denial["acl"] == "no ACL allows it"
    assert any(
        d.get("api") == "UpdateGlobalConfig" and d["principal"] == "User:admin" for d in data
    )
    failures = [d for d in logins if d["decision"] == "DENIED"]
    assert len(failures) == 5 and {d["mechanism"] for d in logins} == {"HTTP BEARER"}
    # Each successful login of a new session (here a new token) is audited too.
    successes = {d["principal"] for d in logins if d["decision"] == "ALLOWED"}
    assert successes == {"User:alice", "User:bob", "User:admin", "User:carol"}


def test_every_route_has_a_need() -> None:
    routes = build_app(SchemaRegistry(MemoryStore()), None, DekRegistry(MemoryStore())).routes
    declared = {
        (method, route.path)  # type: ignore[attr-defined]
        for route in routes
        for method in route.methods - {"HEAD"}  # type: ignore[attr-defined]
    }
    assert declared == set(NEEDS)


def test_a_password_is_checked_against_the_stored_key() -> None:
    for mechanism in (scram.SHA_256, scram.SHA_512):
        stored = scram.credential_from_password(mechanism, "alice", "s3cret", 4096)
        check = (mechanism, stored.stored_key, stored.salt, stored.iterations)
        assert password_matches(*check, "s3cret")
        assert not password_matches(*check, "s3cret ")


def test_unknown_methods_and_bearer_without_a_validator_are_refused() -> None:
    authorizer = StandardAuthorizer()
    audit = AuditLog()
    assert registry_access("NONE", "r", None, None, authorizer, audit) is None
    with pytest.raises(RegistryAccessError, match="one of NONE, BASIC, BEARER"):
        registry_access("DIGEST", "r", None, None, authorizer, audit)
    with pytest.raises(RegistryAccessError, match="OAUTHBEARER"):
        registry_access("BEARER", "r", None, None, authorizer, audit)
