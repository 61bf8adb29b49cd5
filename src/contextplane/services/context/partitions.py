"""Partitioned context instances (RFC 0006 §1, "Partitioned instances as built"): the
sources co-partitioned by entity id, which partition an entity lives in, and which
instance of the group owns a partition."""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient

# A member's client id carries the URL its instance serves at, after this separator
# (the classic group protocol has no other field a librdkafka client can fill).
URL_SEPARATOR = "@"
# Longer advertised URLs are not named (a client id is the member's to fill).
URL_CHARS_MAX = 256
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*$")


def co_partitioned(counts: dict[str, int]) -> int:
    """The one partition count every source topic has; ValueError naming each topic and
    its count when they differ (an entity's records would land in partitions of
    different numbers, which no one instance owns together)."""
    distinct = set(counts.values())
    if len(distinct) != 1:
        named = ", ".join(f"{t} has {n}" for t, n in sorted(counts.items()))
        raise ValueError(
            f"partitioned instances need co-partitioned sources (one partition count): {named}"
        )
    return distinct.pop()


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (`Utils.murmur2`), as a signed 32-bit value."""
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    end = length - length % 4
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= data[end + 2] << 16
    if tail >= 2:
        h ^= data[end + 1] << 8
    if tail >= 1:
        h ^= data[end]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def entity_partition(entity: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed by the entity id
    (Java's and librdkafka's `murmur2_random` alike): where its records are, when the
    producers key them by it."""
    return (murmur2(entity.encode()) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class Owner:
    client_id: str
    host: str
    url: str | None  # from the client id, when the instance advertised one


def client_id(name: str, instance: str, url: str | None) -> str:
    base = f"{name}-sources-{instance}"
    return base if url is None else f"{base}{URL_SEPARATOR}{url}"


def owners(admin: AdminClient, group: str, timeout_s: float) -> dict[int, Owner]:
    """Each partition number the group's members are assigned, with its member."""
    described: Any = admin.describe_consumer_groups([group], request_timeout=timeout_s)[
        group
    ].result(timeout_s)
    found: dict[int, Owner] = {}
    for member in described.members:
        cid, host = str(member.client_id), str(member.host)
        url = cid.split(URL_SEPARATOR, 1)[1] if URL_SEPARATOR in cid else None
        owner = Owner(cid, host, None if url is None else vouched_url(url, host))
        assignment = member.assignment
        parts: list[Any] = [] if assignment is None else list(assignment.topic_partitions)
        for tp in parts:
            found[int(tp.partition)] = owner
    return found


def vouched_url(url: str, member_host: str) -> str | None:
    """The URL a member advertises, when readers may be sent there: an origin
    (http(s)://host[:port], nothing more) whose host is the member's own address as the
    broker saw it (`/ADDRESS`), as written or as it resolves. Any client allowed to join
    the group fills its client id as it likes: a member can name itself, never a third
    party's server (nor smuggle one in as `http://own-host@elsewhere`)."""
    if len(url) > URL_CHARS_MAX or not url.isascii() or not url.isprintable() or " " in url:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if (
        parts.scheme not in ("http", "https")
        or host is None
        or parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    try:
        member = ipaddress.ip_address(member_host.removeprefix("/"))
    except ValueError:
        return None
    if _addresses(host, port) & {member, _unmapped(member)}:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def _addresses(host: str, port: int | None) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return {ipaddress.ip_address(host)}
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        return set()
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        return set()
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        found |= {address, _unmapped(address)}
    return found


def _unmapped(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IPv4-mapped IPv6 address as its IPv4 address (a dual-stack peer's form)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
