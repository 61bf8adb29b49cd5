"""`contextplane_zone_record_bytes_total`: record bytes by the client's zone and its
relation to this broker's `broker.rack` (broker/zones.py counts them)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, Metric

from contextplane.broker.zones import ZONES_TRACKED_MAX

ZONE_BYTES = "contextplane_zone_record_bytes"
# (client zone, relation: same, cross or unknown, bytes in, bytes out): ZoneLedger.rows.
ZoneRow = tuple[str, str, int, int]


def zone_families(rows: list[ZoneRow]) -> Iterable[Metric]:
    family = CounterMetricFamily(
        ZONE_BYTES,
        "Record bytes of Produce requests (direction in) and Fetch responses (out), by the"
        " client's zone (client.id contextplane_az=, ws_az= or automq_az=, else the Fetch's"
        " client.rack; unknown, or other past"
        f" {ZONES_TRACKED_MAX} zones) and whether it is this broker's"
        " broker.rack (zone_relation same, cross, unknown)",
        labels=["direction", "zone_relation", "client_zone"],
    )
    for zone, relation, bytes_in, bytes_out in sorted(rows):
        family.add_metric(["in", relation, zone], bytes_in)
        family.add_metric(["out", relation, zone], bytes_out)
    yield family
