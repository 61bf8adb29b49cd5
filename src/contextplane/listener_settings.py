"""Kafka's listener settings: which listeners the broker serves, with Kafka's validation.

`listeners` (`NAME://host:port`, several separated by commas), `advertised.listeners`
(what Metadata, FindCoordinator and DescribeCluster tell a client that came in on that
listener; by default the listener itself), `listener.security.protocol.map`
(`NAME:PROTOCOL`; by default each protocol's name maps to itself),
`inter.broker.listener.name` and `security.inter.broker.protocol` (the listener the
inter-broker client dials on a peer: cluster/peer_client.py, security/inter_broker.py).
Listeners named in `controller.listener.names` are not served (no controller quorum).

Kafka's checks and messages: each listener a different name and (port 0 aside) a
different port, every name in the protocol map, advertised names a subset of the
listeners, no advertised 0.0.0.0, at most one of the two inter-broker settings.

`read` checks the settings; `resolve` turns them into the listeners to serve, the first
being the one `listener.host`/`listener.port` describe; `check_listener_ssl` checks that
each `listener.name.<listener>.ssl.*` names a TLS listener.

Beyond Kafka, the safe default: an empty host binds `listener.host` (loopback unless
given), where Kafka would bind every interface; a listener without TLS (PLAINTEXT,
SASL_PLAINTEXT) beyond loopback needs `allow.plaintext.non.loopback=true`; a SASL
listener needs SASL support (`sasl_available`), so that an operator who asks for
authentication never gets an open door.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

NAMES = (
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "security.inter.broker.protocol",
    "inter.broker.listener.name",
)
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
# Kafka's default listener.security.protocol.map: each protocol's name maps to itself.
_DEFAULT_MAP = {protocol: protocol for protocol in PROTOCOLS}
SASL_NOT_AVAILABLE = "SASL is not supported yet (a SASL listener would accept anyone)"
ALLOW_NON_LOOPBACK = "allow.plaintext.non.loopback"


def sasl_available() -> bool:
    """Whether this broker can authenticate SASL clients (PLAIN and SCRAM: it can)."""
    return True


# Addresses that bind every interface but that no client can dial.
NONROUTABLE = frozenset({"0.0.0.0", "::"})


class ListenerError(ValueError):
    """A listener setting is invalid or asks for something this broker does not serve."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    host: str  # empty: Kafka's "every interface" (here: listener.host)
    port: int


@dataclass(frozen=True)
class ListenerSpec:
    """One listener the broker serves: where it binds and what it tells its clients."""

    name: str  # upper case, as Kafka normalises listener names
    security_protocol: str
    host: str
    port: int  # 0: any free port
    advertised_host: str | None = None  # None: the bind host
    advertised_port: int | None = None  # None: the bound port

    @property
    def tls(self) -> bool:
        return self.security_protocol in TLS_PROTOCOLS

    @property
    def sasl(self) -> bool:
        return self.security_protocol in SASL_PROTOCOLS

    def url(self) -> str:
        return f"{self.name}://{_bracketed(self.host)}:{self.port}"


@dataclass(frozen=True)
class Listeners:
    """What the listener settings ask for: the client listeners (in the order given) with
    their protocols, and each one's advertised endpoint."""

    binds: tuple[tuple[Endpoint, str], ...]  # (endpoint, security protocol)
    advertised: dict[str, Endpoint]
    # Given names that are only checked, never used: name -> why.
    unused: dict[str, str]
    explicit: bool  # `listeners` was given (else Kafka's default PLAINTEXT://:9092)
    # The inter-broker listener named, and by which setting, as the Settings fields
    # `inter_broker_listener` and `inter_broker_setting` (empty: neither was given).
    inter_broker: dict[str, str] = field(default_factory=dict)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _protocol_map(text: str | None) -> dict[str, str]:
    if text is None:
        return dict(_DEFAULT_MAP)
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, protocol = item.partition(":")
        protocol = protocol.strip().upper()
        if not sep or not name.strip():
            raise ListenerError(
                f"listener.security.protocol.map: {item!r} is not NAME:PROTOCOL "
                f"(a protocol of {', '.join(PROTOCOLS)})"
            )
        if protocol not in PROTOCOLS:
            raise ListenerError(
                f"listener.security.protocol.map: {item!r}: no security protocol {protocol!r}"
                f" (one of {', '.join(PROTOCOLS)})"
            )
        if name.strip().upper() in mapping:
            raise ListenerError(
                f"listener.security.protocol.map: {name.strip()} is mapped more than once"
            )
        mapping[name.strip().upper()] = protocol
    return mapping


def _endpoints(setting: str, text: str, mapping: dict[str, str]) -> list[Endpoint]:
    endpoints = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, address = item.partition("://")
        host, colon, port_text = address.rpartition(":")
        if not sep or not colon or not name:
            raise ListenerError(
                f"Error creating broker listeners from '{text}': Unable to parse {item} "
                "to a broker endpoint (NAME://host:port)"
            )
        try:
            port = int(port_text)
        except ValueError:
            raise ListenerError(f"{setting}: {item!r}: {port_text!r} is not a port") from None
        if not 0 <= port <= 65535:
            raise ListenerError(f"{setting}: {item!r}: port {port} is not in [0, 65535]")
        if name.upper() not in mapping:
            raise ListenerError(
                f"Error creating broker listeners from '{text}': "
                f"No security protocol defined for listener {name.upper()}"
            )
        host = host.removeprefix("[").removesuffix("]")
        endpoints.append(Endpoint(name.upper(), host, port))
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        raise ListenerError(f"Each listener must have a different name, listeners: {text}")
    ports = [e.port for e in endpoints if e.port != 0]
    if setting == "listeners" and len(set(ports)) != len(ports):
        raise ListenerError(f"Each listener must have a different port, listeners: {text}")
    return endpoints


def _check_serveable(setting: str, name: str, protocol: str) -> None:
    what = f"a {protocol} listener" if name == protocol else f"listener {name} is {protocol}"
    if protocol in SASL_PROTOCOLS and not sasl_available():
        raise ListenerError(f"{setting}: {what}: {SASL_NOT_AVAILABLE}")


def read(given: dict[str, str], controller_names: str | None) -> Listeners:
    """The listener settings given (name -> value), checked; raises ListenerError."""
    controllers = {n.strip().upper() for n in (controller_names or "").split(",") if n.strip()}
    mapping = _protocol_map(given.get("listener.security.protocol.map"))
    unused: dict[str, str] = {}
    if "listeners" in given:
        every = _endpoints("listeners", given["listeners"], mapping)
    else:
        # Kafka's default listener is PLAINTEXT://:9092, whatever its name maps to.
        every = [Endpoint("PLAINTEXT", "", 9092)]
        if "PLAINTEXT" not in mapping:
            raise ListenerError(
                "Error creating broker listeners from 'PLAINTEXT://:9092': "
                "No security protocol defined for listener PLAINTEXT"
            )
    client = [e for e in every if e.name not in controllers]
    source = "listeners" if "listeners" in given else "listener.security.protocol.map"
    for endpoint in client:
        _check_serveable(source, endpoint.name, mapping[endpoint.name])
    listener_names = [e.name for e in every]
    advertised: dict[str, Endpoint] = {}
    if "advertised.listeners" in given:
        text = given["advertised.listeners"]
        for endpoint in _endpoints("advertised.listeners", text, mapping):
            if endpoint.name not in listener_names:
                raise ListenerError(
                    "advertised.listeners listener names must be equal to or a subset of the "
                    f"ones defined in listeners. Found {endpoint.name}. The valid options "
                    f"based on the current configuration are {','.join(listener_names)}"
                )
            if endpoint.host == "0.0.0.0":
                raise ListenerError(
                    "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. "
                    "Use a routable IP address."
                )
            if endpoint.port == 0 and endpoint.name not in controllers:
                raise ListenerError(
                    f"advertised.listeners: {endpoint.name}: port 0 cannot be advertised"
                )
            advertised[endpoint.name] = endpoint
    inter_broker = _inter_broker(given, listener_names, [e.name for e in client])
    binds = tuple((e, mapping[e.name]) for e in client)
    return Listeners(binds, advertised, unused, "listeners" in given, inter_broker)


def _inter_broker(given: dict[str, str], names: list[str], served: list[str]) -> dict[str, str]:
    """The inter-broker listener and the setting naming it, when given."""
    inter = given.get("security.inter.broker.protocol")
    inter_name = given.get("inter.broker.listener.name")
    if inter is not None and inter_name is not None:
        raise ListenerError(
            "Only one of inter.broker.listener.name and security.inter.broker.protocol "
            "should be set."
        )
    if inter is not None:
        protocol = inter.strip().upper()
        if protocol not in PROTOCOLS:
            raise ListenerError(
                f"security.inter.broker.protocol: no security protocol {inter.strip()!r}"
                f" (one of {', '.join(PROTOCOLS)})"
            )
        inter_name = protocol
        setting = "security.inter.broker.protocol"
    else:
        setting = "inter.broker.listener.name"
    if inter_name is None:
        return {}
    name = inter_name.strip().upper()
    if name not in names:
        raise ListenerError(
            f"{setting} must name a listener defined in advertised.listeners. The valid "
            f"options based on currently configured listeners are {','.join(names)}"
        )
    if name not in served:
        raise ListenerError(
            f"{setting}={inter_name.strip()}: listener {name} is in controller.listener.names;"
            f" brokers call each other on a broker listener ({','.join(served)})"
        )
    return {"inter_broker_listener": name, "inter_broker_setting": setting}


def listener_ssl_name(name: str, ssl_names: frozenset[str]) -> tuple[str, str] | None:
    """(listener, ssl setting) of `listener.name.<listener>.ssl.*`, else None."""
    if not name.startswith("listener.name."):
        return None
    listener, _, rest = name.removeprefix("listener.name.").partition(".")
    if not listener or rest not in ssl_names:
        return None
    return listener.upper(), rest


def check_listener_ssl(
    given: dict[str, dict[str, str]], specs: tuple[ListenerSpec, ...]
) -> dict[str, dict[str, str]]:
    """Per-listener TLS settings must name a TLS listener (Kafka ignores others: here a
    misspelt listener name must not leave the intended one on the global settings)."""
    tls = {spec.name for spec in specs if spec.tls}
    for listener, names in given.items():
        if listener not in tls:
            name = f"listener.name.{listener.lower()}.{next(iter(names))}"
            raise ListenerError(
                f"{name}: no SSL or SASL_SSL listener is named {listener} "
                f"(TLS listeners: {', '.join(sorted(tls)) or 'none'})"
            )
    return given


def resolve(
    found: Listeners,
    given: dict[str, str],
    values: dict[str, Any],
    given_as: dict[str, str],
    defaults: tuple[str, int],
) -> tuple[ListenerSpec, ...]:
    """The listeners to serve. The first one is the one listener.host/port (--host,
    --port) and advertised.host/port describe: given with `listeners`, they must agree
    with it. An empty host binds listener.host."""
    if not found.binds:
        raise ListenerError(
            f"listeners={given.get('listeners', '')}: no listener for clients (every one is "
            "in controller.listener.names)"
        )
    first, _ = found.binds[0]
    if found.explicit:
        _agree("listeners", given, first, values, given_as, "host", "port")
    advertised_first = found.advertised.get(first.name)
    if advertised_first is not None:
        _agree(
            "advertised.listeners",
            given,
            advertised_first,
            values,
            given_as,
            "advertised_host",
            "advertised_port",
        )
    default_host = values.get("host", defaults[0])
    specs = []
    for index, (endpoint, protocol) in enumerate(found.binds):
        if index == 0:
            host = default_host
            port = values.get("port", defaults[1])
            advertised_host = values.get("advertised_host")
            advertised_port = values.get("advertised_port")
        else:
            host = endpoint.host or default_host
            port = endpoint.port
            other = found.advertised.get(endpoint.name)
            advertised_host = (other.host or None) if other is not None else None
            advertised_port = other.port if other is not None else None
        spec = ListenerSpec(endpoint.name, protocol, host, port, advertised_host, advertised_port)
        _check_exposure(spec, values)
        if (advertised_host or host) in NONROUTABLE:
            # Kafka advertises listeners when advertised.listeners does not name one, and
            # refuses the meta-address there too: clients would be told to dial 0.0.0.0.
            raise ListenerError(
                f"listener {endpoint.name} binds {host} and advertises it: advertised.listeners "
                "cannot use the nonroutable meta-address 0.0.0.0. Use a routable IP address "
                "(advertised.listeners, or advertised.host for the first listener)."
            )
        specs.append(spec)
    return tuple(specs)


def _agree(
    setting: str,
    given: dict[str, str],
    endpoint: Endpoint,
    values: dict[str, Any],
    given_as: dict[str, str],
    host_attr: str,
    port_attr: str,
) -> None:
    """The first listener of `listeners` (`advertised.listeners`) sets listener.host/port
    (advertised.host/port); when those are given too, they must be the same."""
    text = f"{setting}={given[setting]}"
    if port_attr in given_as and values[port_attr] != endpoint.port:
        raise ListenerError(
            f"{text} asks for port {endpoint.port} but {given_as[port_attr]} is "
            f"{values[port_attr]}: give one of them"
        )
    values[port_attr] = endpoint.port
    if not endpoint.host:
        return  # Kafka's "every interface": listener.host (loopback by default) stays
    if host_attr in given_as and values[host_attr] != endpoint.host:
        raise ListenerError(
            f"{text} asks for host {endpoint.host} but {given_as[host_attr]} is "
            f"{values[host_attr]}: give one of them"
        )
    values[host_attr] = endpoint.host


def _check_exposure(spec: ListenerSpec, values: dict[str, Any]) -> None:
    """A listener without TLS beyond loopback only when the operator says so."""
    if spec.tls or is_loopback(spec.host):
        return
    if values.get("allow_plaintext_non_loopback", False):
        return
    where = spec.host or "every interface"
    raise ListenerError(
        f"listener {spec.name} ({spec.security_protocol}) would listen on {where}, beyond "
        f"loopback, without TLS: use an SSL or SASL_SSL listener, or set "
        f"{ALLOW_NON_LOOPBACK}=true to allow it"
    )


def controller_names(sources: list[tuple[str, list[tuple[str, str, Any]]]]) -> str | None:
    """`controller.listener.names` as the last source giving it says (None: not given)."""
    found = None
    for _, entries in sources:
        for _, name, value in entries:
            if name == "controller.listener.names":
                found = str(value)
    return found
