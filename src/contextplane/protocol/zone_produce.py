"""ZoneProduce v0: contextplane's own inter-broker API (no Kafka counterpart) by which a
broker in a client's zone hands produce requests to the leaders in other zones without
sending their record bytes across zones (RFC 0004 §7, "Writes, a smaller first cut").

The proxy PUTs the client's Produce request frames (header and body, as the client sent
them, each holding only the partitions one leader leads) into one object of the shared
store, then sends each leader the object's key and the positions of its frames, each
with its client's principal and address (one object holds several clients' requests).
The leader reads them from the store (in region), handles each as the client's own
Produce, in order, and answers each with its Produce response body, encoded at the
request's version (none for acks=0).

Like MirrorAppend, its key is outside Kafka's range and ApiVersions does not list it.
"""

from dataclasses import dataclass, field
from typing import ClassVar

from kio.schema.errors import ErrorCode
from kio.schema.request_header.v2.header import RequestHeader
from kio.schema.response_header.v1.header import ResponseHeader
from kio.static.constants import EntityType
from kio.static.primitive import i16, i32, i32Timedelta, i64

API_KEY = 10_001
VERSION = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneProduceFrame:
    __type__: ClassVar = EntityType.nested
    __version__: ClassVar[i16] = i16(VERSION)
    __flexible__: ClassVar[bool] = True
    __api_key__: ClassVar[i16] = i16(API_KEY)
    __header_schema__: ClassVar[type[RequestHeader]] = RequestHeader
    position: i64 = field(metadata={"kafka_type": "int64"})  # in the object, in bytes
    size: i32 = field(metadata={"kafka_type": "int32"})  # the frame without its length
    # Who sent the frame to the proxy, as its authenticator saw them (`Type:name`), and
    # from where (`host:port`).
    principal: str = field(metadata={"kafka_type": "string"})
    client_address: str = field(metadata={"kafka_type": "string"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneProduceRequest:
    __type__: ClassVar = EntityType.request
    __version__: ClassVar[i16] = i16(VERSION)
    __flexible__: ClassVar[bool] = True
    __api_key__: ClassVar[i16] = i16(API_KEY)
    __header_schema__: ClassVar[type[RequestHeader]] = RequestHeader
    # How long the leader may take to read the object, before the frames' own timeouts.
    timeout: i32Timedelta = field(metadata={"kafka_type": "timedelta_i32"})
    object_key: str = field(metadata={"kafka_type": "string"})
    frames: tuple[ZoneProduceFrame, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneProduceFrameResponse:
    __type__: ClassVar = EntityType.nested
    __version__: ClassVar[i16] = i16(VERSION)
    __flexible__: ClassVar[bool] = True
    __api_key__: ClassVar[i16] = i16(API_KEY)
    __header_schema__: ClassVar[type[ResponseHeader]] = ResponseHeader
    # NONE: `body` is the frame's Produce response body (null: acks=0, none is owed);
    # else the frame was not handled (unreadable, not a Produce), and no partition of it
    # was written.
    error_code: ErrorCode = field(metadata={"kafka_type": "error_code"})
    error_message: str | None = field(metadata={"kafka_type": "string"}, default=None)
    body: bytes | None = field(metadata={"kafka_type": "bytes"}, default=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneProduceResponse:
    __type__: ClassVar = EntityType.response
    __version__: ClassVar[i16] = i16(VERSION)
    __flexible__: ClassVar[bool] = True
    __api_key__: ClassVar[i16] = i16(API_KEY)
    __header_schema__: ClassVar[type[ResponseHeader]] = ResponseHeader
    throttle_time: i32Timedelta = field(metadata={"kafka_type": "timedelta_i32"})
    # NONE: one answer per frame, in order; else nothing was handled (refused, the
    # object unreadable) and `frames` is empty.
    error_code: ErrorCode = field(metadata={"kafka_type": "error_code"})
    error_message: str | None = field(metadata={"kafka_type": "string"}, default=None)
    frames: tuple[ZoneProduceFrameResponse, ...] = ()


__all__ = ["API_KEY", "VERSION", "ZoneProduceRequest", "ZoneProduceResponse"]
