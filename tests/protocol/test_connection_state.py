"""The connection's transition table, state by state: for every (state, event) pair the
allowed ones move to the state Kafka's SaslServerAuthenticator moves to, the others raise
an error naming the role, the state and the event; and which APIs each state lets through.

The expectations are written here from Kafka's behaviour, not copied from
connection_state.TRANSITIONS, so a wrong row in the table fails a test.
"""

from __future__ import annotations

import itertools

import pytest
from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema

from contextplane.errors import ProtocolError
from contextplane.protocol.connection import NO_MORE_REQUESTS, ServerConnection
from contextplane.protocol.connection_state import (
    ConnectionState,
    Event,
    LocalProtocolError,
    Role,
    State,
    initial_state,
    request_event,
)

from .golden_table import by_client

S, E = State, Event

# Where each allowed event takes each state (Kafka: SaslServerAuthenticator's
# HANDSHAKE_OR_VERSIONS_REQUEST → HANDSHAKE_REQUEST → AUTHENTICATE → COMPLETE / FAILED).
EXPECTED: dict[tuple[State, Event], State] = {
    # SASL listener, nothing received: ApiVersions (once) or SaslHandshake.
    (S.HANDSHAKE_OR_VERSIONS, E.API_VERSIONS): S.HANDSHAKE,
    (S.HANDSHAKE_OR_VERSIONS, E.SASL_HANDSHAKE): S.HANDSHAKE_OR_VERSIONS,
    (S.HANDSHAKE_OR_VERSIONS, E.MECHANISM_ACCEPTED): S.AUTHENTICATING,
    (S.HANDSHAKE_OR_VERSIONS, E.MECHANISM_REJECTED): S.CLOSING,
    # ApiVersions answered: SaslHandshake only.
    (S.HANDSHAKE, E.SASL_HANDSHAKE): S.HANDSHAKE,
    (S.HANDSHAKE, E.MECHANISM_ACCEPTED): S.AUTHENTICATING,
    (S.HANDSHAKE, E.MECHANISM_REJECTED): S.CLOSING,
    # Mechanism chosen: SaslAuthenticate tokens until the verdict.
    (S.AUTHENTICATING, E.SASL_AUTHENTICATE): S.AUTHENTICATING,
    (S.AUTHENTICATING, E.AUTHENTICATED): S.READY,
    (S.AUTHENTICATING, E.AUTHENTICATION_FAILED): S.CLOSING,
    # Ready: every request (SASL ones get ILLEGAL_SASL_STATE from their handlers).
    (S.READY, E.API_VERSIONS): S.READY,
    (S.READY, E.SASL_HANDSHAKE): S.READY,
    (S.READY, E.SASL_AUTHENTICATE): S.READY,
    (S.READY, E.OTHER_REQUEST): S.READY,
    # Re-authentication (KIP-368): a SaslHandshake on a ready connection whose session
    # has a lifetime starts the exchange again with the session's mechanism, or closes.
    (S.READY, E.MECHANISM_ACCEPTED): S.AUTHENTICATING,
    (S.READY, E.MECHANISM_REJECTED): S.CLOSING,
    # The broker may close for several reasons at once; the transport may go anytime.
    **{(state, E.CLOSE): S.CLOSING for state in State if state is not S.CLOSED},
    (S.CLOSED, E.CLOSE): S.CLOSED,
    **{(state, E.CONNECTION_LOST): S.CLOSED for state in State},
}

PAIRS = list(itertools.product(State, Event))


def pair_id(pair: tuple[State, Event]) -> str:
    return f"{pair[0].name}-{pair[1].name}"


@pytest.mark.parametrize("pair", [p for p in PAIRS if p in EXPECTED], ids=pair_id)
def test_an_allowed_event_moves_to_its_state(pair: tuple[State, Event]) -> None:
    state, event = pair
    connection = ConnectionState(state)
    assert connection.process_event(event) is EXPECTED[pair]
    assert connection.state is EXPECTED[pair]


@pytest.mark.parametrize("pair", [p for p in PAIRS if p not in EXPECTED], ids=pair_id)
def test_an_illegal_event_names_role_state_and_event(pair: tuple[State, Event]) -> None:
    state, event = pair
    connection = ConnectionState(state)
    with pytest.raises(LocalProtocolError) as raised:
        connection.process_event(event)
    message = str(raised.value)
    assert f"role={event.role.value}" in message
    assert f"state={state.name}" in message
    assert event.name in message
    assert connection.state is state  # an illegal event changes nothing


# -- requests: the client's events ---------------------------------------------------------


def _has_schema(key: int) -> bool:
    for version in range(20):  # kio drops the oldest versions of some APIs
        try:
            load_request_schema(key, version)
        except (UnknownAPIKey, UnknownEntity):
            continue
        return True
    return False


def _api_keys() -> list[int]:
    return [key for key in range(100) if _has_schema(key)]


API_KEYS = _api_keys()
SASL_ONLY = {
    S.HANDSHAKE_OR_VERSIONS: {18, 17},  # ApiVersions, SaslHandshake
    S.HANDSHAKE: {17},  # SaslHandshake
    S.AUTHENTICATING: {36},  # SaslAuthenticate
    S.READY: set(API_KEYS),
    S.CLOSING: set(),
    S.CLOSED: set(),
}


def test_api_keys_cover_kafkas_apis() -> None:
    assert {0, 1, 3, 17, 18, 36, 60} <= set(API_KEYS) and len(API_KEYS) > 50


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
def test_which_apis_each_state_lets_through(state: State) -> None:
    connection = ConnectionState(state)
    allowed = {key for key in API_KEYS if connection.allows(key)}
    assert allowed == SASL_ONLY[state]


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
def test_a_request_the_state_refuses_must_close_the_connection(state: State) -> None:
    """A client request a state has no row for is the client's protocol error
    (ProtocolError: the connection closes), naming the API key and the state."""
    for key in API_KEYS:
        connection = ConnectionState(state)
        if key in SASL_ONLY[state]:
            assert connection.process_request(key) is EXPECTED[(state, request_event(key))]
            continue
        with pytest.raises(ProtocolError, match=f"api key {key}: .*state={state.name}"):
            connection.process_request(key)
        assert connection.state is state


def test_request_events_and_roles() -> None:
    assert request_event(18) is E.API_VERSIONS
    assert request_event(17) is E.SASL_HANDSHAKE
    assert request_event(36) is E.SASL_AUTHENTICATE
    assert {request_event(key) for key in API_KEYS} - {
        E.API_VERSIONS,
        E.SASL_HANDSHAKE,
        E.SASL_AUTHENTICATE,
    } == {E.OTHER_REQUEST}
    client_events = {E.API_VERSIONS, E.SASL_HANDSHAKE, E.SASL_AUTHENTICATE, E.OTHER_REQUEST}
    assert {event for event in Event if event.role is Role.CLIENT} == client_events


# -- where connections start, and whole conversations --------------------------------------


@pytest.mark.parametrize(
    ("protocol", "state"),
    [
        ("PLAINTEXT", S.READY),
        ("SSL", S.READY),
        ("SASL_PLAINTEXT", S.HANDSHAKE_OR_VERSIONS),
        ("SASL_SSL", S.HANDSHAKE_OR_VERSIONS),
    ],
)
def test_a_listener_decides_where_connections_start(protocol: str, state: State) -> None:
    assert initial_state(protocol) is state
    assert ServerConnection(security_protocol=protocol).state.state is state


def test_an_unknown_security_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="SASL_PLAIN"):
        initial_state("SASL_PLAIN")


def test_a_sasl_conversation_reaches_ready() -> None:
    connection = ConnectionState(initial_state("SASL_PLAINTEXT"))
    steps = [
        (lambda: connection.process_request(18), S.HANDSHAKE),
        (lambda: connection.process_request(17), S.HANDSHAKE),
        (lambda: connection.process_event(E.MECHANISM_ACCEPTED), S.AUTHENTICATING),
        (lambda: connection.process_request(36), S.AUTHENTICATING),
        (lambda: connection.process_request(36), S.AUTHENTICATING),  # a challenge
        (lambda: connection.process_event(E.AUTHENTICATED), S.READY),
        (lambda: connection.process_request(3), S.READY),
    ]
    for step, state in steps:
        assert step() is state


def test_api_versions_only_once_before_the_handshake() -> None:
    connection = ConnectionState(initial_state("SASL_SSL"))
    connection.process_request(18)
    with pytest.raises(ProtocolError, match="state=HANDSHAKE"):
        connection.process_request(18)


def test_a_plaintext_connection_takes_every_client_request_in_turn() -> None:
    """The golden frames of a client, through the connection and its state."""
    frames = by_client("java")
    conn = ServerConnection(security_protocol="PLAINTEXT")
    conn.receive_data(b"".join(g.frame() for g in frames))
    while conn.next_frame_size() is not None:
        conn.admit_frame()
    for golden in frames:
        request = conn.next_event()
        assert request.header.api_key == golden.api_key  # type: ignore[union-attr]
        assert conn.state.process_request(golden.api_key) is S.READY
    conn.close()
    conn.close()  # idempotent
    assert conn.next_event() is NO_MORE_REQUESTS
    conn.connection_lost()
    assert conn.state.state is S.CLOSED


def test_a_sasl_connection_refuses_a_client_that_skips_authentication() -> None:
    """librdkafka's Metadata on a SASL listener before any handshake: Kafka closes."""
    metadata = next(g for g in by_client("librdkafka") if g.api_key == 3)
    conn = ServerConnection(security_protocol="SASL_PLAINTEXT")
    conn.receive_data(metadata.frame())
    conn.admit_frame()
    request = conn.next_event()
    assert not conn.state.allows(3)
    with pytest.raises(ProtocolError, match="OTHER_REQUEST.*state=HANDSHAKE_OR_VERSIONS"):
        conn.state.process_request(request.header.api_key)  # type: ignore[union-attr]


def test_frames_before_authentication_are_bounded_by_the_sasl_receive_size() -> None:
    """Kafka's sasl.server.max.receive.size: a larger frame before authentication closes
    the connection as soon as its size prefix arrives (nothing is allocated for it); once
    authenticated, socket.request.max.bytes is the bound again."""
    conn = ServerConnection(10_000, "SASL_PLAINTEXT", sasl_frame_bytes_max=100)
    conn.receive_data((100).to_bytes(4, "big"))
    assert conn.next_frame_size() == 100
    conn = ServerConnection(10_000, "SASL_PLAINTEXT", sasl_frame_bytes_max=100)
    conn.receive_data((101).to_bytes(4, "big"))
    with pytest.raises(ProtocolError, match="sasl.server.max.receive.size=100"):
        conn.next_frame_size()
    assert conn.closing
    ready = ServerConnection(10_000, "SASL_PLAINTEXT", sasl_frame_bytes_max=100)
    ready.state.state = State.READY
    ready.receive_data((5_000).to_bytes(4, "big"))
    assert ready.next_frame_size() == 5_000
    plaintext = ServerConnection(10_000, "PLAINTEXT", sasl_frame_bytes_max=100)
    plaintext.receive_data((5_000).to_bytes(4, "big"))
    assert plaintext.next_frame_size() == 5_000
