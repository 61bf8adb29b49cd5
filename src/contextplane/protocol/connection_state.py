"""The states a Kafka connection goes through on the broker, as a transition table.

Rule 1: everything that decides whether a connection may move from one state to another
lives in this file, as data (`TRANSITIONS`) wherever it fits. Code elsewhere reports
events; it never sets a state.

Rule 2: this file knows nothing of bytes, frames, sockets or handlers. An event is either
a request the client sent (named by its API key) or a verdict the broker reached
(the SASL mechanism is accepted, the credentials are wrong, the connection must close).

Theory of operation
-------------------

A connection on a PLAINTEXT (or SSL) listener starts READY: every request goes on to the
route table. A connection on a SASL listener goes through Kafka's handshake first
(`SaslServerAuthenticator`):

    HANDSHAKE_OR_VERSIONS --ApiVersions--> HANDSHAKE            (ApiVersions at most once)
    HANDSHAKE_OR_VERSIONS, HANDSHAKE --SaslHandshake--> (same state; the broker decides)
        --MECHANISM_ACCEPTED--> AUTHENTICATING
        --MECHANISM_REJECTED--> CLOSING                         (UNSUPPORTED_SASL_MECHANISM)
    AUTHENTICATING --SaslAuthenticate--> AUTHENTICATING         (a challenge: more tokens)
        --AUTHENTICATED--> READY
        --AUTHENTICATION_FAILED--> CLOSING                      (SASL_AUTHENTICATION_FAILED)

Any other request before READY is illegal: Kafka closes the connection ("Unexpected Kafka
request of type ... during SASL handshake"), and so does this broker. Requests are
handled one at a time, in order, and a SASL handler reports its verdict before the
connection's next request is looked at, so a client request and the broker's verdict on
it never interleave with another request.

READY takes every request. SaslHandshake and SaslAuthenticate on a READY connection are
handed to their handlers, which answer ILLEGAL_SASL_STATE as Kafka's KafkaApis does,
unless the SaslHandshake begins a re-authentication (KIP-368: the listener gives
sessions a lifetime): then the handler accepts the mechanism and the connection
authenticates again, READY --MECHANISM_ACCEPTED--> AUTHENTICATING, or is closed
(MECHANISM_REJECTED: a different mechanism than the session's).

CLOSING: the broker has decided to close. No further request is handled; responses
already owed may still be written (the failure response of a SASL exchange), then the
connection closes. CLOSED: the transport is gone. The broker may decide to close for
several reasons at once (a deadline and a malformed frame), so CLOSE is accepted again
in CLOSING and CLOSED, and CONNECTION_LOST in every state.

An event a state has no row for raises `LocalProtocolError` naming the role, the state
and the event. `ConnectionState.process_request` turns that into `ProtocolError` (the
client broke the protocol: the connection must close); a broker verdict in the wrong
state stays a `LocalProtocolError` (a bug in the broker).
"""

from __future__ import annotations

import enum

from contextplane.errors import ProtocolError

API_VERSIONS_KEY = 18
SASL_HANDSHAKE_KEY = 17
SASL_AUTHENTICATE_KEY = 36


class LocalProtocolError(Exception):
    """The broker itself asked for something the protocol does not allow (a bug)."""


class Role(enum.Enum):
    CLIENT = "client"  # sends requests
    SERVER = "server"  # the broker: reaches verdicts, closes


class State(enum.Enum):
    HANDSHAKE_OR_VERSIONS = "HANDSHAKE_OR_VERSIONS"  # SASL listener: nothing received yet
    HANDSHAKE = "HANDSHAKE"  # SASL listener: ApiVersions answered, SaslHandshake next
    AUTHENTICATING = "AUTHENTICATING"  # mechanism chosen: SaslAuthenticate tokens
    READY = "READY"  # every request goes on to the route table
    CLOSING = "CLOSING"  # the broker closes once the responses owed are written
    CLOSED = "CLOSED"  # the transport is gone


class Event(enum.Enum):
    # Client events: the request's API key, in four classes.
    API_VERSIONS = (Role.CLIENT, "ApiVersions")
    SASL_HANDSHAKE = (Role.CLIENT, "SaslHandshake")
    SASL_AUTHENTICATE = (Role.CLIENT, "SaslAuthenticate")
    OTHER_REQUEST = (Role.CLIENT, "a request other than ApiVersions and SASL")
    # Server events: the broker's verdicts.
    MECHANISM_ACCEPTED = (Role.SERVER, "SASL mechanism accepted")
    MECHANISM_REJECTED = (Role.SERVER, "SASL mechanism rejected")
    AUTHENTICATED = (Role.SERVER, "authentication succeeded")
    AUTHENTICATION_FAILED = (Role.SERVER, "authentication failed")
    CLOSE = (Role.SERVER, "close")  # malformed frame, deadline, internal error, shutdown
    CONNECTION_LOST = (Role.SERVER, "connection lost")

    @property
    def role(self) -> Role:
        return self.value[0]

    @property
    def description(self) -> str:
        return self.value[1]


_REQUEST_EVENTS = {
    API_VERSIONS_KEY: Event.API_VERSIONS,
    SASL_HANDSHAKE_KEY: Event.SASL_HANDSHAKE,
    SASL_AUTHENTICATE_KEY: Event.SASL_AUTHENTICATE,
}


def request_event(api_key: int) -> Event:
    """The client event a request with this API key is."""
    return _REQUEST_EVENTS.get(api_key, Event.OTHER_REQUEST)


_ANY_STATE_ENDS: dict[Event, State] = {
    Event.CLOSE: State.CLOSING,
    Event.CONNECTION_LOST: State.CLOSED,
}

TRANSITIONS: dict[State, dict[Event, State]] = {
    State.HANDSHAKE_OR_VERSIONS: {
        Event.API_VERSIONS: State.HANDSHAKE,
        Event.SASL_HANDSHAKE: State.HANDSHAKE_OR_VERSIONS,
        Event.MECHANISM_ACCEPTED: State.AUTHENTICATING,
        Event.MECHANISM_REJECTED: State.CLOSING,
        **_ANY_STATE_ENDS,
    },
    State.HANDSHAKE: {
        Event.SASL_HANDSHAKE: State.HANDSHAKE,
        Event.MECHANISM_ACCEPTED: State.AUTHENTICATING,
        Event.MECHANISM_REJECTED: State.CLOSING,
        **_ANY_STATE_ENDS,
    },
    State.AUTHENTICATING: {
        Event.SASL_AUTHENTICATE: State.AUTHENTICATING,
        Event.AUTHENTICATED: State.READY,
        Event.AUTHENTICATION_FAILED: State.CLOSING,
        **_ANY_STATE_ENDS,
    },
    State.READY: {
        Event.API_VERSIONS: State.READY,
        Event.SASL_HANDSHAKE: State.READY,
        Event.SASL_AUTHENTICATE: State.READY,
        Event.OTHER_REQUEST: State.READY,
        Event.MECHANISM_ACCEPTED: State.AUTHENTICATING,  # re-authentication (KIP-368)
        Event.MECHANISM_REJECTED: State.CLOSING,
        **_ANY_STATE_ENDS,
    },
    State.CLOSING: {Event.CLOSE: State.CLOSING, Event.CONNECTION_LOST: State.CLOSED},
    State.CLOSED: {Event.CLOSE: State.CLOSED, Event.CONNECTION_LOST: State.CLOSED},
}

# Kafka's listener security protocols (listener.security.protocol.map).
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
SECURITY_PROTOCOLS = frozenset({"PLAINTEXT", "SSL"}) | SASL_PROTOCOLS


def initial_state(security_protocol: str) -> State:
    """Where a new connection starts on a listener of this security protocol."""
    if security_protocol not in SECURITY_PROTOCOLS:
        raise ValueError(f"unknown security protocol {security_protocol!r}")
    return State.HANDSHAKE_OR_VERSIONS if security_protocol in SASL_PROTOCOLS else State.READY


class ConnectionState:
    """One connection's state; moves only through `TRANSITIONS`."""

    __slots__ = ("state",)

    def __init__(self, state: State = State.READY) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"ConnectionState({self.state.name})"

    @property
    def closing(self) -> bool:
        """No further request is to be handled."""
        return self.state is State.CLOSING or self.state is State.CLOSED

    def allows(self, api_key: int) -> bool:
        """Whether a request with this API key may be handled now."""
        return request_event(api_key) in TRANSITIONS[self.state]

    def process_event(self, event: Event) -> State:
        """Move on `event`; LocalProtocolError (naming role, state and event) if the
        current state has no row for it."""
        try:
            self.state = TRANSITIONS[self.state][event]
        except KeyError:
            raise LocalProtocolError(
                f"can't handle event {event.name} ({event.description}) "
                f"when role={event.role.value} and state={self.state.name}"
            ) from None
        return self.state

    def process_request(self, api_key: int) -> State:
        """Move on a request the client sent; ProtocolError (the connection must close)
        if this state does not take it."""
        try:
            return self.process_event(request_event(api_key))
        except LocalProtocolError as exc:
            raise ProtocolError(f"api key {api_key}: {exc}") from None
