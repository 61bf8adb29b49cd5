"""Kafka's listener settings, read so that none that matters is silently ignored.

`listeners`, `advertised.listeners`, `listener.security.protocol.map`,
`security.inter.broker.protocol` and `inter.broker.listener.name` may only describe what
this broker serves: one PLAINTEXT listener. Anything asking for SSL, SASL_PLAINTEXT or
SASL_SSL is refused (an operator who believes SASL is on must not get an open broker).
One PLAINTEXT listener `PLAINTEXT://host:port` sets the port, as in Kafka; its host too
when that is loopback or agrees with `listener.host`. An empty host keeps `listener.host`
(loopback by default), where Kafka would bind every interface: listening beyond loopback
needs `listener.host` (`--host`). Listeners named in `controller.listener.names` have no
effect (one broker, no controller quorum).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

NAMES = (
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "security.inter.broker.protocol",
    "inter.broker.listener.name",
)
NOT_SUPPORTED = "TLS/SASL listeners are not supported yet"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# Kafka's default listener.security.protocol.map: each protocol's name maps to itself.
_DEFAULT_MAP = {protocol: protocol for protocol in PROTOCOLS}


class ListenerError(ValueError):
    """A listener setting asks for something this broker does not serve."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    host: str  # empty: Kafka's "every interface"
    port: int


@dataclass(frozen=True)
class Listeners:
    """What the listener settings ask for: the one client listener and the advertised one."""

    bind: Endpoint | None
    advertised: Endpoint | None
    # Given names that are only checked, never used: name -> why.
    unused: dict[str, str]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _protocol_map(text: str | None) -> dict[str, str]:
    if text is None:
        return dict(_DEFAULT_MAP)
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, protocol = item.partition(":")
        protocol = protocol.strip().upper()
        if not sep or not name.strip() or protocol not in PROTOCOLS:
            raise ListenerError(
                f"listener.security.protocol.map: {item!r} is not NAME:PROTOCOL "
                f"(a protocol of {', '.join(PROTOCOLS)})"
            )
        mapping[name.strip().upper()] = protocol
    return mapping


def _endpoints(setting: str, text: str) -> list[Endpoint]:
    endpoints = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, address = item.partition("://")
        host, colon, port_text = address.rpartition(":")
        if not sep or not colon or not name:
            raise ListenerError(f"{setting}: {item!r} is not NAME://host:port")
        try:
            port = int(port_text)
        except ValueError:
            raise ListenerError(f"{setting}: {item!r}: {port_text!r} is not a port") from None
        if not 0 <= port <= 65535:
            raise ListenerError(f"{setting}: {item!r}: port {port} is not in [0, 65535]")
        host = host.removeprefix("[").removesuffix("]")
        endpoints.append(Endpoint(name.upper(), host, port))
    return endpoints


def _protocol(setting: str, name: str, mapping: dict[str, str]) -> str:
    protocol = mapping.get(name)
    if protocol is None:
        raise ListenerError(
            f"{setting}: listener name {name} is not in listener.security.protocol.map"
        )
    if protocol != "PLAINTEXT":
        what = f"a {protocol} listener" if name == protocol else f"listener {name} is {protocol}"
        raise ListenerError(f"{setting}: {what}: {NOT_SUPPORTED}")
    return protocol


def _client_endpoint(
    setting: str, text: str, controllers: set[str], mapping: dict[str, str]
) -> Endpoint | None:
    chosen = []
    for endpoint in _endpoints(setting, text):
        if endpoint.name in controllers:
            continue
        _protocol(setting, endpoint.name, mapping)
        chosen.append(endpoint)
    if len(chosen) > 1:
        raise ListenerError(f"{setting}={text}: this broker has one PLAINTEXT listener")
    return chosen[0] if chosen else None


def read(given: dict[str, str], controller_names: str | None) -> Listeners:
    """The listener settings given (name -> value), checked; raises ListenerError."""
    controllers = {n.strip().upper() for n in (controller_names or "").split(",") if n.strip()}
    mapping = _protocol_map(given.get("listener.security.protocol.map"))
    unused: dict[str, str] = {}
    inter = given.get("security.inter.broker.protocol")
    if inter is not None:
        if inter.strip().upper() != "PLAINTEXT":
            raise ListenerError(f"security.inter.broker.protocol={inter}: {NOT_SUPPORTED}")
        unused["security.inter.broker.protocol"] = "one broker, no inter-broker traffic"
    inter_name = given.get("inter.broker.listener.name")
    if inter_name is not None:
        _protocol("inter.broker.listener.name", inter_name.strip().upper(), mapping)
        unused["inter.broker.listener.name"] = "one broker, no inter-broker traffic"
    bind = advertised = None
    if "listeners" in given:
        bind = _client_endpoint("listeners", given["listeners"], controllers, mapping)
    else:
        # Kafka's default listener is PLAINTEXT://:9092: its name must still mean PLAINTEXT.
        _protocol("listener.security.protocol.map", "PLAINTEXT", mapping)
    if "advertised.listeners" in given:
        advertised = _client_endpoint(
            "advertised.listeners", given["advertised.listeners"], controllers, mapping
        )
        if advertised is not None and advertised.port == 0:
            raise ListenerError("advertised.listeners: port 0 cannot be advertised")
    if "listener.security.protocol.map" in given:
        unused["listener.security.protocol.map"] = "every listener used was checked to be PLAINTEXT"
    return Listeners(bind, advertised, unused)
