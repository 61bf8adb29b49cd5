"""SaslHandshake and SaslAuthenticate, as Kafka's SaslServerAuthenticator answers them.

The pipeline has already moved the connection's state on the request (and closed the
connection for one its state does not take); these handlers report the verdict:

* SaslHandshake: an enabled mechanism is accepted (the response lists the enabled
  ones); any other is UNSUPPORTED_SASL_MECHANISM with that list, and the connection is
  closed once the response is written. On an authenticated connection it is
  ILLEGAL_SASL_STATE, unless sessions have a lifetime (connections.max.reauth.ms): then it
  begins a re-authentication with the session's mechanism (KIP-368).
* SaslAuthenticate: each token goes to the mechanism; a challenge is answered, success
  sets the connection's principal (and, with a session lifetime, session_lifetime_ms,
  v1+: connections.max.reauth.ms capped by an OAUTHBEARER token's expiry), failure is
  SASL_AUTHENTICATION_FAILED with Kafka's message, audited, answered after
  connection.failed.authentication.delay.ms, and the connection is closed. After
  authentication it is ILLEGAL_SASL_STATE.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from contextplane.broker.context import Reply, RequestContext
from contextplane.logsafe import escape
from contextplane.protocol.connection_state import Event, State
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.principal import Principal
from contextplane.security.sasl_authenticator import SaslSession, session_lifetime_ms
from contextplane.security.sasl_errors import (
    SaslAuthenticationError,
    SaslInvalid,
    generic_failure,
)

log = logging.getLogger(__name__)


def _reauthentication_enabled(ctx: RequestContext) -> bool:
    # A session with a lifetime (connections.max.reauth.ms, or a token's expiry).
    session = ctx.connection.sasl
    return (
        session is not None
        and session.expires_ms is not None
        and session.principal is not None
        and session.exchange is None
    )


async def sasl_handshake(ctx: RequestContext, request: Any) -> Reply:
    connection = ctx.connection
    authenticator = ctx.services.sasl
    ready = connection.state.state is State.READY
    if authenticator is None or (ready and not _reauthentication_enabled(ctx)):
        return ctx.reply(error_code=ErrorCode.illegal_sasl_state, mechanisms=[])
    enabled = authenticator.mechanisms(connection.listener)
    if ctx.api_version == 0:
        # v0 is advertised, as Kafka 4.4 does (librdkafka before 2.x enables SASL only
        # when the range includes it, then uses v1); a v0 exchange of raw tokens without
        # Kafka headers (clients before Kafka 1.0) is not served: refused and closed.
        connection.state.process_event(Event.MECHANISM_REJECTED)
        log.warning(
            "closing connection from %s: SaslHandshake v0 (raw SASL tokens) is not served; "
            "the client must use SaslHandshake v1 and SaslAuthenticate",
            ctx.peer,
        )
        return ctx.reply(error_code=ErrorCode.unsupported_version, mechanisms=enabled)
    mechanism = request.mechanism
    previous = connection.sasl
    reauthenticating = ready and previous is not None
    if mechanism not in enabled or (reauthenticating and previous.mechanism != mechanism):
        connection.state.process_event(Event.MECHANISM_REJECTED)
        log.warning(
            "closing connection from %s: SASL mechanism %s is not enabled (enabled: %s)",
            ctx.peer,
            escape(mechanism, quote=True),
            ", ".join(enabled),
        )
        return ctx.reply(error_code=ErrorCode.unsupported_sasl_mechanism, mechanisms=enabled)
    connection.state.process_event(Event.MECHANISM_ACCEPTED)
    session = SaslSession(mechanism, authenticator.start(connection.listener, mechanism))
    if reauthenticating:
        assert previous is not None
        session.principal = previous.principal
        session.expires_ms = previous.expires_ms
        session.reauthenticating = True
    connection.sasl = session
    return ctx.reply(error_code=ErrorCode.none, mechanisms=enabled)


def _authenticate_reply(ctx: RequestContext, error: ErrorCode, message: str | None) -> Reply:
    return ctx.reply(error_code=error, error_message=message, auth_bytes=b"")


async def sasl_authenticate(ctx: RequestContext, request: Any) -> Reply:
    connection = ctx.connection
    session = connection.sasl
    if connection.state.state is not State.AUTHENTICATING or session is None:
        return _authenticate_reply(
            ctx,
            ErrorCode.illegal_sasl_state,
            "SaslAuthenticate request received after successful authentication",
        )
    exchange = session.exchange
    assert exchange is not None
    try:
        outcome = exchange.evaluate(bytes(request.auth_bytes))
        challenge = await outcome if inspect.isawaitable(outcome) else outcome
        principal = None
        if exchange.complete:
            assert exchange.username is not None
            principal = Principal("User", exchange.username)
            if session.reauthenticating and principal != session.principal:
                raise SaslAuthenticationError(
                    f"Cannot change principals during re-authentication from "
                    f"{session.principal}: {principal}"
                )
    except SaslAuthenticationError as exc:
        return await _failed(ctx, session, str(exc), exc.reason)
    except SaslInvalid as exc:
        return await _failed(
            ctx, session, generic_failure(session.mechanism, session.reauthenticating), str(exc)
        )
    if principal is None:
        return ctx.reply(error_code=ErrorCode.none, error_message=None, auth_bytes=challenge)
    lifetime = session_lifetime_ms(
        ctx.settings.connections_max_reauth_ms,
        exchange.credential_expires_ms,
        ctx.clock.wall_ms(),
    )
    session.exchange = None
    session.principal = principal
    session.reauthenticating = False
    session.expires_ms = ctx.clock.monotonic_ms() + lifetime if lifetime is not None else None
    connection.principal = principal
    connection.state.process_event(Event.AUTHENTICATED)
    ctx.audit.authentication(
        peer=ctx.peer,
        listener=connection.listener,
        mechanism=session.mechanism,
        principal=principal,
        success=True,
        client_id=ctx.header.client_id or "",
    )
    return ctx.reply(
        error_code=ErrorCode.none,
        error_message=None,
        auth_bytes=challenge,
        session_lifetime=(lifetime or 0) if ctx.api_version >= 1 else 0,
    )


async def _failed(ctx: RequestContext, session: SaslSession, message: str, why: str) -> Reply:
    """SASL_AUTHENTICATION_FAILED, audited (one line: client address, mechanism, and the
    reason the client is not told), answered after
    connection.failed.authentication.delay.ms; then the connection closes (KIP-306:
    guessing is slow, other connections are served meanwhile)."""
    session.exchange = None
    ctx.connection.state.process_event(Event.AUTHENTICATION_FAILED)
    ctx.audit.sasl_failure(
        peer=ctx.peer,
        host=ctx.client_host,
        listener=ctx.connection.listener,
        mechanism=session.mechanism,
        client_id=ctx.header.client_id or "",
        error=ErrorCode.sasl_authentication_failed,
        reason=why,
    )
    delay_ms = ctx.settings.connection_failed_authentication_delay_ms
    if delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000)
    return _authenticate_reply(ctx, ErrorCode.sasl_authentication_failed, message)
