"""Audit records as CloudEvents 1.0 (structured JSON mode), one per event.

    {"specversion": "1.0", "id": "<uuid>", "source": "contextplane://<cluster>/<node>",
     "type": "io.contextplane.audit.authorization", "time": "2026-11-29T18:00:00.123Z",
     "subject": "topic:orders", "datacontenttype": "application/json",
     "data": {"principal": "User:bob", "client_address": "127.0.0.1:50312",
              "client_id": "rdkafka", "listener": "PLAINTEXT", "api": "Fetch",
              "operation": "READ", "resource_type": "TOPIC", "resource_name": "orders",
              "decision": "DENIED", "acl": "no ACL allows it", ...}}

Types: `...audit.authorization` (a denial, or an allowed read or write of an audited
topic), `...audit.change` (an administrative change or a refused attempt at one, with
its result), `...audit.authentication` (success or failure), `...audit.suppressed` (how
many denial records of a principal the per-second bound held back) and
`io.contextplane.read.receipt`
(offsets a consumer received). `decided_by` names what decided an authorization.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Mapping

from contextplane.security.acls import WILDCARD_PRINCIPAL, AclBinding, Permission
from contextplane.security.authorizer import Action, Authorizer
from contextplane.security.principal import Principal
from contextplane.security.standard_authorizer import StandardAuthorizer, grants

AUTHORIZATION = "io.contextplane.audit.authorization"
CHANGE = "io.contextplane.audit.change"
AUTHENTICATION = "io.contextplane.audit.authentication"
SUPPRESSED = "io.contextplane.audit.suppressed"
READ_RECEIPT = "io.contextplane.read.receipt"


def rfc3339(wall_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(wall_ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{wall_ms % 1000:03d}Z"


def cloud_event(
    source: str, event_type: str, subject: str, wall_ms: int, data: Mapping[str, object]
) -> bytes:
    """One CloudEvents 1.0 JSON record."""
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": rfc3339(wall_ms),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": dict(data),
    }
    return json.dumps(event, separators=(",", ":"), default=str).encode()


def decided_by(authorizer: Authorizer, principal: Principal, host: str, action: Action) -> str:
    """What decided `action` (Kafka's StandardAuthorizer order: super user, a DENY ACL,
    an ALLOW ACL, no ACL at all), as one line; asked only when a record is written."""
    if not isinstance(authorizer, StandardAuthorizer):
        return "no authorizer (everything is allowed)"
    who = str(principal)
    if who in authorizer.super_users:
        return f"super.users lists {who}"
    found = False
    allowing: str | None = None
    for acls in authorizer.acls.applying_to(action.resource_type, action.name, who):
        found = True
        for acl in sorted(acls, key=str):
            if acl.principal not in (who, WILDCARD_PRINCIPAL):
                continue
            if not authorizer.acls.host_applies(acl, host) or not grants(acl, action.operation):
                continue
            if acl.permission == Permission.DENY:
                return _describe(acl)  # deny wins
            allowing = allowing or _describe(acl)
    if allowing is not None:
        return allowing
    if found:
        return "no ACL allows it"
    allow = str(authorizer.allow_if_no_acl).lower()
    return f"no ACL found (allow.everyone.if.no.acl.found={allow})"


def _describe(acl: AclBinding) -> str:
    return (
        f"{acl.permission.name} {acl.principal} from {acl.host} {acl.operation.name} on "
        f"{acl.resource_type.name}:{acl.pattern_type.name}:{acl.name}"
    )
