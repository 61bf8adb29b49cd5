"""What Kafka's RequestMetrics take from a response: its error codes (ErrorsPerSec, by
request and error) and its throttle time (ThrottleTimeMs).

Kafka counts each occurrence of an error code in the response's `errorCounts()`, NONE
included: the top-level code and the per-topic, per-partition, per-group ... ones. Most
responses' `errorCounts()` is every error code field they hold; the exceptions Kafka
makes are kept below. A response entity is walked here; one the handler encoded by hand
carries its counts (`protocol/encoded.py`).
"""

from __future__ import annotations

import datetime
from typing import Any

from contextplane.protocol.build import _field_plan
from contextplane.protocol.codec import encode_response
from contextplane.protocol.encoded import Encoded

# Responses whose top-level error code Kafka's errorCounts() leaves out: Metadata (v13+
# has one) and DescribeUserScramCredentials.
_TOP_LEVEL_UNCOUNTED = frozenset({3, 50})
# DeleteAcls counts its filter results, not the ACLs each matched (a field at any depth).
_NOT_WALKED = {31: "matching_acls"}
NO_ERRORS: dict[int, int] = {}


_Plan = tuple[tuple[str, ...], tuple[tuple[str, bool], ...]]
_PLANS: dict[type, _Plan] = {}  # a plain dict: a lookup per entity on the loop


def _plan(cls: type) -> _Plan:
    """(the error code fields, the (field, is a tuple) holding nested entities) of `cls`."""
    plan = _PLANS.get(cls)
    if plan is None:
        fields = _field_plan(cls)
        codes = tuple(name for name, kafka_type, *_ in fields if kafka_type == "error_code")
        nested = tuple((name, is_tuple) for name, _, entity, is_tuple, _ in fields if entity)
        plan = _PLANS[cls] = (codes, nested)
    return plan


def _walk(entity: Any, errors: dict[int, int], skip: str | None, counted: bool) -> None:
    cls: type = type(entity)
    codes, nested = _plan(cls)
    if counted:
        for name in codes:
            code = int(getattr(entity, name))
            errors[code] = errors.get(code, 0) + 1
    for name, is_tuple in nested:
        if name == skip:
            continue
        value = getattr(entity, name)
        if value is None:
            continue
        for item in value if is_tuple else (value,):
            _walk(item, errors, skip, True)


def entity_errors(api_key: int, entity: Any) -> dict[int, int]:
    """Error code -> occurrences in a response entity, as Kafka's errorCounts()."""
    errors: dict[int, int] = {}
    _walk(entity, errors, _NOT_WALKED.get(api_key), api_key not in _TOP_LEVEL_UNCOUNTED)
    return errors


def entity_throttle_ms(entity: Any) -> int:
    throttle = getattr(entity, "throttle_time", None)
    if not throttle:  # None, or a zero timedelta
        return 0
    return round(throttle.total_seconds() * 1000) if isinstance(throttle, datetime.timedelta) else 0


def response_facts(api_key: int, body: Any) -> tuple[dict[int, int], int]:
    """(error code -> occurrences, throttle ms) of a response: an entity, or frame parts
    (`Encoded` carries them; other parts report nothing)."""
    if isinstance(body, Encoded):
        return body.errors, body.throttle_ms
    if isinstance(body, list):
        return NO_ERRORS, 0
    return entity_errors(api_key, body), entity_throttle_ms(body)


def encoded_with_facts(header: Any, body: Any) -> tuple[bytes, tuple[dict[int, int], int]]:
    """A large response's frame and its metrics' facts (`response_facts`), in a worker
    thread (`broker/server.py`)."""
    frame = encode_response(header.api_key, header.api_version, header.correlation_id, body)
    return frame, response_facts(header.api_key, body)
