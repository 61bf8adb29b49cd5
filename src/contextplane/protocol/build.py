"""Build version-specific kio entities from plain values.

Each Kafka API version has its own kio dataclass with its own field set. Handlers
describe a response once, as keyword values and nested dicts, and `build` keeps the
fields that this version has, fills the ones it lacks from their defaults, and turns
nested dicts into the right nested entity for the version.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import typing
import uuid
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from kio.static.primitive import i8, i16, i32, i64

_PRIMITIVES: dict[str, Any] = {"int8": i8, "int16": i16, "int32": i32, "int64": i64}


@functools.cache
def _field_plan(cls: type) -> tuple[tuple[str, str | None, type | None, bool, bool], ...]:
    """(name, kafka_type, nested entity type, is_tuple, optional) per field of `cls`."""
    hints = typing.get_type_hints(cls)
    plan: list[tuple[str, str | None, type | None, bool, bool]] = []
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        optional = False
        if get_origin(hint) in (UnionType, Union):  # Optional[tuple[...]] or Optional[X]
            optional = True
            hint = next(a for a in get_args(hint) if a is not NoneType)
        is_tuple = get_origin(hint) is tuple
        inner = get_args(hint)[0] if is_tuple else hint
        if get_origin(inner) in (UnionType, Union):
            optional = True
            inner = next(a for a in get_args(inner) if a is not NoneType)
        nested = inner if isinstance(inner, type) and dataclasses.is_dataclass(inner) else None
        plan.append((field.name, field.metadata.get("kafka_type"), nested, is_tuple, optional))
    return tuple(plan)


def _convert(kafka_type: str | None, value: Any) -> Any:
    if value is None:
        return None
    wrap = _PRIMITIVES.get(kafka_type or "")
    if wrap is not None:
        return wrap(value)
    if kafka_type == "timedelta_i32" or kafka_type == "timedelta_i64":
        if isinstance(value, datetime.timedelta):
            return value
        return datetime.timedelta(milliseconds=value)
    if kafka_type == "datetime_i64" and isinstance(value, int):
        # Kafka writes -1 for "no timestamp"; kio models that as None.
        if value < 0:
            return None
        return datetime.datetime.fromtimestamp(value / 1000, datetime.UTC)
    if kafka_type == "uuid" and isinstance(value, bytes):
        return uuid.UUID(bytes=value)
    return value


def build(cls: type, values: dict[str, Any] | None = None, /, **kwargs: Any) -> Any:
    """Instantiate `cls` from `values`, dropping keys this version does not have."""
    source = dict(values or {}, **kwargs)
    args: dict[str, Any] = {}
    for name, kafka_type, nested, is_tuple, _optional in _field_plan(cls):
        if name not in source:
            continue
        value = source[name]
        if nested is not None:
            if is_tuple:
                value = None if value is None else tuple(_nest(nested, v) for v in value)
            else:
                value = None if value is None else _nest(nested, value)
        elif is_tuple:
            value = None if value is None else tuple(_convert(kafka_type, v) for v in value)
        else:
            value = _convert(kafka_type, value)
        args[name] = value
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in args
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    for name in missing:
        args[name] = _default_for(cls, name)
    return cls(**args)


def _nest(cls: type, value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return value
    return build(cls, value)


def _default_for(cls: type, name: str) -> Any:
    """Zero value for a required field the caller did not give (absent in its model)."""
    for fname, kafka_type, nested, is_tuple, optional in _field_plan(cls):
        if fname != name:
            continue
        if is_tuple:
            return ()
        if optional:
            return None
        if nested is not None:
            return build(nested)
        if kafka_type in _PRIMITIVES or kafka_type in ("uint16", "uint32", "uint64", "float64"):
            return _convert(kafka_type, 0)
        if kafka_type == "bool":
            return False
        if kafka_type == "string":
            return ""
        if kafka_type in ("bytes", "records"):
            return b""
        if kafka_type == "error_code":
            from kio.schema.errors import ErrorCode

            return ErrorCode.none
        if kafka_type in ("timedelta_i32", "timedelta_i64"):
            return datetime.timedelta(0)
        if kafka_type == "uuid":
            return None
        if kafka_type == "datetime_i64":
            return datetime.datetime.fromtimestamp(0, datetime.UTC)
        raise TypeError(f"no default for {cls.__name__}.{name} ({kafka_type})")
    raise KeyError(name)
