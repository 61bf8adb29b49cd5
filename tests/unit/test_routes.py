"""Every version a route advertises has its request and response schemas (the broker
loads them on a version's first request, not at start)."""

from __future__ import annotations

from contextplane.broker.app import ROUTES, build_routes
from contextplane.protocol.codec import request_schema, response_schema


def test_every_advertised_version_has_its_schemas() -> None:
    missing = []
    for api_key, low, high, *_ in ROUTES:
        for version in range(low, high + 1):
            try:
                request_schema(api_key, version)
                response_schema(api_key, version)
            except Exception as exc:  # noqa: BLE001 - reported below
                missing.append(f"api {api_key} v{version}: {exc}")
    assert not missing, "\n".join(missing)


def test_routes_advertise_the_declared_ranges() -> None:
    assert [(r.api_key, r.min_version, r.max_version) for r in build_routes()] == [
        (api_key, low, high) for api_key, low, high, *_ in ROUTES
    ]
