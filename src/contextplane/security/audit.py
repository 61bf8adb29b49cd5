"""The security audit: one line per administrative change, refused attempt at one, or
authorization denial (from the pipeline's authorize stage, with the operation).

    audit <Api> <resource>="<name>" result=<ERROR_NAME> client_id="<id>"
    peer=<host:port> principal="User:alice" [key=value ...]

Handlers record each change with the resource it named and its result; every string is
quoted and escaped (logsafe.py), numbers are not. The lines go to the `contextplane.audit`
logger; a later step adds a durable audit topic behind the same call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from contextplane.logsafe import escape
from contextplane.protocol.error_codes import ErrorCode

if TYPE_CHECKING:
    from contextplane.broker.context import RequestContext

_log = logging.getLogger("contextplane.audit")


class AuditLog:
    def record(
        self,
        ctx: RequestContext,
        api: str,
        resource: str,
        name: object,
        error: int = ErrorCode.none,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """`api` is the Kafka API (CreateTopics, DeleteGroups, ...), `resource` what it
        changed (topic, partition, group)."""
        try:
            result = ErrorCode(error).name.upper()
        except ValueError:
            result = str(int(error))
        fields = [
            f"audit {api} {resource}={escape(name, quote=True)} result={result}",
            f"client_id={escape(ctx.header.client_id, quote=True)} peer={escape(ctx.peer)}",
            f"principal={escape(str(ctx.principal), quote=True)}",
        ]
        for key, value in (details or {}).items():
            text = str(value) if isinstance(value, int) else escape(value, quote=True)
            fields.append(f"{key}={text}")
        _log.info(" ".join(fields))
