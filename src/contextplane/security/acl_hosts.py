"""An ACL's host: `*`, one address matched as written, or a CIDR block (Kafka 4.4,
metadata version 4.4-IV1 and later, which a new Kafka 4.4 cluster is formatted with).

What Kafka 4.4 does, and so this module:

- At CreateAcls (AclControlManager.validateHostPattern): an empty host is refused; a host
  with a `/` must be CIDR notation as Kafka's CidrUtils reads it, else INVALID_REQUEST
  "Invalid CIDR notation '<host>': <reason>"; any other host (a name, an address, garbage)
  is accepted and matched as written.
- A host with a `:` is read as IPv6 (commons-net SubnetUtils6: an IPv6 literal, prefix
  0..128; an IPv4-mapped address is "not an IPv6 address"); otherwise as IPv4 (commons-net
  SubnetUtils: four decimal octets of at most three digits, 0..255, a prefix of at most
  two digits, 0..32). Host bits may be set (`10.0.0.5/8` is `10.0.0.0/8`).
- Matching (StandardAuthorizerData.findResult): an ACL applies when its host is `*`, the
  client's address as written, or a CIDR block holding the client's address. An IPv4
  block holds IPv4 clients only (never 0.0.0.0) and an IPv6 block IPv6 clients only: an
  IPv4-mapped client (`::ffff:127.0.0.1`, which Java sees as 127.0.0.1) is an IPv4 client.
- DescribeAcls and DeleteAcls filters compare hosts as written: a filter for `127.0.0.1`
  does not select an ACL for `127.0.0.0/8`.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

WILDCARD_HOST = "*"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ClientAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# commons-net SubnetUtils' CIDR pattern (Java's \d: ASCII digits only).
_IPV4_CIDR = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/([0-9]{1,2})")
# What Java's Integer.parseInt takes (ASCII digits, an optional sign).
_JAVA_INT = re.compile(r"[+-]?[0-9]+")
_INT_MAX = 2**31 - 1


class InvalidCidr(ValueError):
    """The reason commons-net gives for a CIDR block it cannot read."""


def is_cidr(host: str) -> bool:
    return "/" in host


def parse_cidr(host: str) -> Network:
    """The block a CIDR host names, read as Kafka's CidrUtils reads it; InvalidCidr with
    commons-net's message otherwise."""
    if ":" in host:
        return _parse_ipv6(host)
    return _parse_ipv4(host)


def _parse_ipv4(host: str) -> ipaddress.IPv4Network:
    match = _IPV4_CIDR.fullmatch(host)
    if match is None:
        raise InvalidCidr(f"Could not parse [{host}]")
    octets = [_in_range(int(g), 0, 255) for g in match.groups()[:4]]
    prefix = _in_range(int(match.group(5)), 0, 32)
    address = int.from_bytes(bytes(octets), "big")
    return ipaddress.IPv4Network((address, prefix), strict=False)


def _in_range(value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidCidr(f"Value [{value}] not in range [{low},{high}]")
    return value


def _parse_ipv6(host: str) -> ipaddress.IPv6Network:
    text, _, prefix_text = host.partition("/")
    if not _JAVA_INT.fullmatch(prefix_text) or abs(int(prefix_text)) > _INT_MAX:
        raise InvalidCidr(f"Could not parse [{host}] - invalid prefix length")
    prefix = int(prefix_text)
    if not 0 <= prefix <= 128:
        raise InvalidCidr(f"Could not parse [{host}] - prefix length must be between 0 and 128")
    literal = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address = ipaddress.IPv6Address(literal)
    except ValueError:
        raise InvalidCidr(f"Could not parse [{text}]") from None
    if address.ipv4_mapped is not None:
        # Java reads an IPv4-mapped address as an IPv4 one.
        raise InvalidCidr(f"Could not parse [{text}] - not an IPv6 address")
    return ipaddress.IPv6Network((int(address), prefix), strict=False)


def host_problem(host: str) -> str | None:
    """Kafka's refusal of a new ACL's host (INVALID_REQUEST), or None if it is valid."""
    if not host:
        return "Host pattern cannot be null or empty"
    if host == WILDCARD_HOST or not is_cidr(host):
        return None
    try:
        parse_cidr(host)
    except InvalidCidr as exc:
        return f"Invalid CIDR notation '{host}': {exc}"
    return None


@lru_cache(maxsize=1024)
def client_address(host: str) -> ClientAddress | None:
    """The client's address as Kafka sees it (an IPv4-mapped IPv6 address is IPv4), or
    None if it is not an address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_block(network: Network, host: str) -> bool:
    """Does the CIDR block hold the client at `host` (Kafka's CidrUtils.isInRange)?"""
    address = client_address(host)
    if address is None or address.version != network.version:
        return False
    if address.version == 4 and int(address) == 0:
        return False  # commons-net SubnetUtils never places 0.0.0.0 in a block
    return address in network
