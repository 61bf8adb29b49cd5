"""DeleteGroups v3 (Apache Kafka 4.4): each result carries an error message.

The bundled kio knows DeleteGroups up to v2; the v3 response follows kio's generated
dataclass conventions for Kafka's DeleteGroupsResponse.json, so kio's readers and writers
(and protocol/build.py) handle it like its own. The v3 request is v2's on the wire, so
kio's v2 entity is used as it is. The codec looks them up before kio (protocol/codec.py).
"""

from dataclasses import dataclass, field
from typing import ClassVar

from kio.schema.delete_groups.v2.request import DeleteGroupsRequest
from kio.schema.errors import ErrorCode
from kio.schema.response_header.v1.header import ResponseHeader
from kio.schema.types import GroupId
from kio.static.constants import EntityType
from kio.static.primitive import i16, i32Timedelta

API_KEY = 42
VERSION = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletableGroupResult:
    __type__: ClassVar = EntityType.nested
    __version__: ClassVar[i16] = i16(VERSION)
    __flexible__: ClassVar[bool] = True
    __api_key__: ClassVar[i16] = i16(API_KEY)
    __header_schema__: ClassVar[type[ResponseHeader]] = ResponseHeader
    group_id: GroupId = field(metadata={"kafka_type": "string"})
    error_code: ErrorCode = field(metadata={"kafka_type": "error_code"})
    error_message: str | None = field(metadata={"kafka_type": "string"}, default=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteGroupsResponse:
    __type__: ClassVar = EntityType.response
    __version__: ClassVar[i16] = i16(VERSION)
    __flexible__: ClassVar[bool] = True
    __api_key__: ClassVar[i16] = i16(API_KEY)
    __header_schema__: ClassVar[type[ResponseHeader]] = ResponseHeader
    throttle_time: i32Timedelta = field(metadata={"kafka_type": "timedelta_i32"})
    results: tuple[DeletableGroupResult, ...]


__all__ = ["API_KEY", "VERSION", "DeleteGroupsRequest", "DeleteGroupsResponse"]
