"""HTTPS on the schema registry's port, from the `contextplane.registry.ssl.*` settings (PEM
files, as the broker's TLS listeners take): `contextplane registry` requiring client
certificates and `contextplane up --registry-port` without; confluent-kafka's
SchemaRegistryClient over https with `ssl.ca.location` (and its certificate), plain HTTP
and a client without a certificate refused; a keystore without a key refused at start."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tests.e2e.test_registry_auth import running_up
from tests.support.inprocess import InProcessBroker
from tests.support.registry import RegistryProcess
from tests.support.tls import TestCa

ORDER = json.dumps({"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]})
# What a refused connection raises: a reset or closed socket, or TLS's own alert.
REFUSED = (urllib.error.URLError, http.client.HTTPException, ConnectionError, ssl.SSLError)


def _files(where: Path) -> tuple[TestCa, Path, Path]:
    """(the CA, its certificate file, the server's keystore: key then chain)."""
    ca = TestCa()
    return (
        ca,
        ca.write(where / "ca.pem"),
        ca.issue("localhost", server=True).write(where / "server.pem"),
    )


def _registers(client: SchemaRegistryClient) -> None:
    schema_id = client.register_schema("orders-value", Schema(ORDER, "AVRO"))
    assert json.loads(client.get_schema(schema_id).schema_str) == json.loads(ORDER)


def _get(url: str, context: ssl.SSLContext | None = None) -> None:
    with urllib.request.urlopen(url, timeout=30, context=context) as answer:
        answer.read()


def _refused(url: str, context: ssl.SSLContext | None = None) -> None:
    """The connection is refused: no HTTP answer at all (HTTPError is an answer)."""
    with pytest.raises(REFUSED) as refused:
        _get(url, context)
    assert not isinstance(refused.value, urllib.error.HTTPError), refused.value


def _plain_http_refused(port: int) -> None:
    _refused(f"http://127.0.0.1:{port}/subjects")


def test_the_standalone_registry_serves_https_to_clients_with_certificates(
    broker: InProcessBroker, tmp_path: Path
) -> None:
    ca, ca_file, keystore = _files(tmp_path)
    client_files = ca.issue("app").write(tmp_path / "app.pem")  # key, then chain
    registry = RegistryProcess(
        broker.bootstrap,
        tmp_path / "registry.log",
        extra_args=(
            "--set", f"contextplane.registry.ssl.keystore.location={keystore}",
            "--set", f"contextplane.registry.ssl.truststore.location={ca_file}",
            "--set", "contextplane.registry.ssl.client.authentication=REQUIRED",
        ),
    ).start()  # fmt: skip
    try:
        assert registry.logged(r"ready on \S+ \(https\)")
        url = f"https://127.0.0.1:{registry.port}"
        _registers(
            SchemaRegistryClient(
                {
                    "url": url,
                    "ssl.ca.location": str(ca_file),
                    "ssl.certificate.location": str(client_files),
                    "ssl.key.location": str(client_files),
                }
            )
        )
        _plain_http_refused(registry.port)
        # Trusting the server is not enough: the registry asks for a certificate.
        _refused(f"{url}/subjects", ssl.create_default_context(cafile=str(ca_file)))
        # A certificate the registry's truststore does not know is refused too.
        stranger = TestCa("another CA").issue("app").write(tmp_path / "stranger.pem")
        unknown = ssl.create_default_context(cafile=str(ca_file))
        unknown.load_cert_chain(stranger)
        _refused(f"{url}/subjects", unknown)
    finally:
        assert registry.stop() == 0, registry.log_tail()


def test_the_registry_beside_the_broker_serves_https(tmp_path: Path) -> None:
    _, ca_file, keystore = _files(tmp_path)
    settings = {"contextplane.registry.ssl.keystore.location": str(keystore)}
    with running_up(tmp_path, settings) as (_, http_url):
        port = int(http_url.rsplit(":", 1)[1])
        url = f"https://127.0.0.1:{port}"
        _registers(SchemaRegistryClient({"url": url, "ssl.ca.location": str(ca_file)}))
        _plain_http_refused(port)


def test_a_keystore_without_a_key_is_refused_at_start(tmp_path: Path) -> None:
    _, ca_file, _ = _files(tmp_path)
    setting = "contextplane.registry.ssl.keystore.location"
    started = subprocess.run(
        [sys.executable, "-m", "contextplane.cli.main", "registry", "--bootstrap", "127.0.0.1:9",
         "--set", f"{setting}={ca_file}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert started.returncode == 2, started.stderr
    assert f"{setting}={ca_file}: holds no private key" in started.stderr
