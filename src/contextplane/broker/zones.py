"""Which zone each connection's client is in, and the record bytes it sends and receives
by zone (RFC 0004 §7, its measuring part): the counts `contextplane cost` prices
cross-zone transfer from instead of a model.

A connection's zone is, in order: a `client.id` token `contextplane_az=<rack>` (or
WarpStream's `ws_az=` or AutoMQ's `automq_az=`, so clients configured for either need no
change), else the `rack_id` (`client.rack`, KIP-392) of the first Fetch that carries one,
else unknown. An unknown zone is counted as unknown, never guessed from this broker's
rack. Bytes are counted where the broker reads and writes record bytes: a Produce
request's record bytes (in) and a Fetch response's record bytes (out).

Bounded: a rack name longer than RACK_CHARS_MAX, or with characters outside
`RACK_CHARACTERS`, is no zone (unknown); at most ZONES_TRACKED_MAX zones get their own
counters, later ones share OTHER's. The relation to this broker's `broker.rack` (same,
cross, unknown) is worked out when /metrics is scraped, so the hot path adds an integer
to a connection's cell and nothing more.
"""

from __future__ import annotations

import re

# The client.id tokens that name a zone: contextplane's, WarpStream's, AutoMQ's.
ZONE_TOKENS = ("contextplane_az=", "ws_az=", "automq_az=")
# Cloud zone names are short (us-east-1a, europe-west4-b, eastus2-az1); Kafka's rack is
# free text, but a label worth charting is not longer than this.
RACK_CHARS_MAX = 64
RACK_CHARACTERS = re.compile(r"[A-Za-z0-9._:/-]+")  # and at most RACK_CHARS_MAX
# Zones with their own counters; a client could otherwise make up one per connection.
ZONES_TRACKED_MAX = 32
UNKNOWN = "unknown"  # the client named no zone (or an unusable one)
OTHER = "other"  # a zone past ZONES_TRACKED_MAX
# What ends a token's value inside a client.id ("app,ws_az=us-east-1a;x").
_SEPARATORS = re.compile(r"[,; &|]")


class ZoneCell:
    """The record bytes of the connections of one client zone."""

    __slots__ = ("zone", "known", "bytes_in", "bytes_out")

    def __init__(self, zone: str) -> None:
        self.zone = zone
        self.known = zone != UNKNOWN  # a Fetch's rack_id cannot change a known zone
        self.bytes_in = 0  # Produce request record bytes
        self.bytes_out = 0  # Fetch response record bytes


def rack_name(text: str | None) -> str | None:
    """`text` as a zone name, or None when it is none (empty, too long, odd characters,
    or one of the two words the counters use themselves)."""
    if not text or len(text) > RACK_CHARS_MAX or RACK_CHARACTERS.fullmatch(text) is None:
        return None
    if text in (UNKNOWN, OTHER):  # the labels' own words: not a zone a client may claim
        return None
    return text


def client_id_zone(client_id: str | None) -> str | None:
    """The zone a client.id names with one of ZONE_TOKENS (at its start or after a
    separator), else None."""
    if not client_id or "_az=" not in client_id:  # the common case: one substring test
        return None
    for token in ZONE_TOKENS:
        at = client_id.find(token)
        while at >= 0:
            if at == 0 or _SEPARATORS.match(client_id, at - 1):
                start = at + len(token)
                end = _SEPARATORS.search(client_id, start)
                return rack_name(client_id[start : end.start() if end else len(client_id)])
            at = client_id.find(token, at + 1)
    return None


class ZoneLedger:
    """The broker's cells, one per client zone seen (bounded), and the unknown zone's."""

    def __init__(self) -> None:
        self.unknown = ZoneCell(UNKNOWN)
        self.cells: dict[str, ZoneCell] = {}

    def cell(self, zone: str | None) -> ZoneCell:
        """The cell of `zone` (a checked rack name, or None: unknown)."""
        if zone is None:
            return self.unknown
        found = self.cells.get(zone)
        if found is None:
            if len(self.cells) >= ZONES_TRACKED_MAX and OTHER not in self.cells:
                zone = OTHER
            elif len(self.cells) >= ZONES_TRACKED_MAX:
                return self.cells[OTHER]
            found = self.cells[zone] = ZoneCell(zone)
        return found

    def for_client_id(self, client_id: str | None) -> ZoneCell:
        """A new connection's cell, from its client.id (the unknown cell if it names none:
        a Fetch's rack_id may name it later, `for_fetch`)."""
        return self.cell(client_id_zone(client_id))

    def for_fetch(self, current: ZoneCell, rack_id: str | None) -> ZoneCell:
        """A connection's cell once a Fetch with `rack_id` arrives: its client.id's zone
        stands; an unknown one becomes the rack's."""
        if current is not self.unknown or not rack_id:
            return current
        return self.cell(rack_name(rack_id))

    def rows(self, broker_rack: str | None) -> list[tuple[str, str, int, int]]:
        """(client zone, relation to `broker_rack`, bytes in, bytes out) per cell."""
        rows = [(UNKNOWN, UNKNOWN, self.unknown.bytes_in, self.unknown.bytes_out)]
        for cell in list(self.cells.values()):
            if broker_rack is None or (cell.zone == OTHER and broker_rack not in self.cells):
                relation = UNKNOWN  # no rack here, or "other" may hold this broker's rack
            else:
                relation = "same" if cell.zone == broker_rack else "cross"
            rows.append((cell.zone, relation, cell.bytes_in, cell.bytes_out))
        return rows
