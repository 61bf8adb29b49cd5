"""Every version a route advertises has its request and response schemas (the broker
loads them on a version's first request, not at start)."""

from __future__ import annotations

import dataclasses
import typing

from contextplane.broker.routes import ROUTES, build_routes
from contextplane.protocol.codec import (
    MIRROR_APPEND_KEY,
    ZONE_PRODUCE_KEY,
    request_schema,
    response_schema,
)


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
    routes = build_routes()
    assert [(r.api_key, r.min_version, r.max_version) for r in routes if r.advertised] == [
        (api_key, low, high) for api_key, low, high, *_ in ROUTES
    ]
    # contextplane's own APIs are served, not advertised to Kafka clients.
    own = [r for r in routes if not r.advertised]
    assert [(r.api_key, r.min_version, r.max_version) for r in own] == [
        (MIRROR_APPEND_KEY, 0, 0),
        (ZONE_PRODUCE_KEY, 0, 0),
    ]
    for route in own:
        request_schema(route.api_key, route.min_version)
        response_schema(route.api_key, route.min_version)


def _names_topic_ids(schema: type, seen: set[type]) -> bool:
    """Whether a request schema has a `topic_id` field at any depth."""
    if schema in seen:
        return False
    seen.add(schema)
    hints = typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        if field.name == "topic_id":
            return True
        for arg in typing.get_args(hints[field.name]) or (hints[field.name],):
            for inner in typing.get_args(arg) or (arg,):
                if dataclasses.is_dataclass(inner) and _names_topic_ids(inner, seen):
                    return True
    return False


def test_every_route_whose_request_names_topics_by_id_looks_unknown_ids_up() -> None:
    """An id another broker created a moment ago must be looked up before the request is
    served (broker/topic_ids.py), whichever API names it."""
    routes = {r.api_key: r for r in build_routes()}
    unlooked = sorted(
        api_key
        for api_key, low, high, *_ in ROUTES
        if routes[api_key].topic_ids is None
        and any(_names_topic_ids(request_schema(api_key, v), set()) for v in range(low, high + 1))
    )
    assert unlooked == []
