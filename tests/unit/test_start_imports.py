"""What the program's start imports: libraries and modules only some configurations or
rarely used APIs need are loaded when used, so every start does not pay for them (RFC
0003 slice 8, restart)."""

from __future__ import annotations

import importlib
import subprocess
import sys

from contextplane.protocol import codec

NOT_AT_START = (
    # Loaded only where an OAUTHBEARER listener checks a token or a JWKS is read.
    "jwt",
    "cryptography",
    "urllib.request",
    "http.client",
    # The Kafka client of `contextplane registry` and `context` (cli/registry.py).
    "confluent_kafka",
    # The MCP SDK and its pydantic models, of `contextplane mcp` only (cli/mcp.py).
    "mcp",
    "pydantic",
    # OpenTelemetry: only when traces are configured (tracing.py).
    "opentelemetry",
    # What the crc32c package's __init__ imports to set its __version__ (protocol/crc.py).
    "importlib.metadata",
    # Masking's codecs and their libraries: on the first Avro or Protobuf value masked.
    "contextplane.broker.masking_avro",
    "fastavro",
    "contextplane.broker.masking_protobuf",
    "google.protobuf",
    # zstd: on the first zstd batch (protocol/decompress.py); RE2: on the first regex
    # subscription (coordinators/consumer_group/regex.py).
    "backports.zstd",
    "re2",
    # tempfile (and shutil): only to load a PEM keystore (security/tls.py).
    "tempfile",
    # The other commands' modules: `up` builds only its own parser (cli/main.py).
    "contextplane.cli.client_commands",
    "contextplane.cli.users",
    "contextplane.cli.cost",
    "contextplane.cli.audit_reads",
    "contextplane.cli.registry",
    # Schemas of versions newer than kio's: on the first request of that version.
    *(module for module, _request, _response in codec.OWN_SCHEMAS.values()),
)

PROGRAM = """
import sys
sys.modules["hypothesis"] = None  # as cli/launch.py does
import contextplane.cli.main
import contextplane.broker.app
contextplane.cli.main.build_parser(up_only=True).parse_args(["up", "--port", "0"])
print(",".join(name for name in sys.argv[1:] if name in sys.modules))
"""


def test_the_broker_start_leaves_unneeded_modules_unloaded() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, *NOT_AT_START],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip() == "", f"imported at start: {out.stdout.strip()}"


def test_each_own_schema_is_the_version_it_is_listed_as() -> None:
    for (api_key, version), (module, request, response) in codec.OWN_SCHEMAS.items():
        loaded = importlib.import_module(module)
        assert (api_key, version) == (loaded.API_KEY, loaded.VERSION), module
        assert codec.request_schema(api_key, version) is getattr(loaded, request)
        assert codec.response_schema(api_key, version) is getattr(loaded, response)
        assert codec.request_schema(api_key, version).__api_key__ == api_key
