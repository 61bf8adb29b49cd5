"""ApiVersions v5 (KIP-1242, Apache Kafka 4.4): the client may name the cluster id and
node id it means to reach, and a broker that is not that node answers
REBOOTSTRAP_REQUIRED.

The bundled kio knows ApiVersions up to v4; the v5 request follows kio's generated
dataclass conventions for Kafka's ApiVersionsRequest.json, so kio's readers and writers
(and protocol/build.py) handle it like its own. The v5 response is v4's on the wire, so
kio's v4 entity is used as it is. The codec looks them up before kio (protocol/codec.py).
"""

from dataclasses import dataclass, field
from typing import ClassVar

from kio.schema.api_versions.v4.response import ApiVersionsResponse
from kio.schema.request_header.v2.header import RequestHeader
from kio.static.constants import EntityType
from kio.static.primitive import i16, i32

API_KEY = 18
VERSION = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiVersionsRequest:
    __type__: ClassVar = EntityType.request
    __version__: ClassVar[i16] = i16(VERSION)
    __flexible__: ClassVar[bool] = True
    __api_key__: ClassVar[i16] = i16(API_KEY)
    __header_schema__: ClassVar[type[RequestHeader]] = RequestHeader
    client_software_name: str = field(metadata={"kafka_type": "string"})
    client_software_version: str = field(metadata={"kafka_type": "string"})
    cluster_id: str | None = field(metadata={"kafka_type": "string"}, default=None)
    node_id: i32 = field(metadata={"kafka_type": "int32"}, default=i32(-1))


__all__ = ["API_KEY", "VERSION", "ApiVersionsRequest", "ApiVersionsResponse"]
