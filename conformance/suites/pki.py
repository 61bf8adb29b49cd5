"""Certificates made for one run of a secured suite: a CA, the broker's keystore, and a
client certificate in every encoding librdkafka's SSL tests read, under the environment
names librdkafka's test cluster tool (trivup) sets: SSL_pkcs, SSL_pub_der, SSL_priv_pem..."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.support.tls import TestCa

KEY_PASSWORD = "client-key-secret"


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA that signed the broker's certificate (PEM)
    keystore: Path  # the broker's key and chain, as Kafka's ssl.keystore.location (PEM)
    client_key: Path  # PEM, encrypted with KEY_PASSWORD
    client_cert: Path  # PEM
    trivup_env: dict[str, str]  # the SSL_* variables librdkafka's 0097_ssl_verify reads


def make(where: Path) -> Pki:
    where.mkdir(parents=True, exist_ok=True)
    ca = TestCa("conformance CA")
    other = TestCa("another conformance CA")
    keystore = ca.issue("broker", server=True).write(where / "broker.pem")
    client = ca.issue("testclient", key_password=KEY_PASSWORD)
    key = serialization.load_pem_private_key(client.key_pem, KEY_PASSWORD.encode())
    cert = x509.load_pem_x509_certificate(client.cert_pem)

    def write(name: str, data: bytes) -> str:
        path = where / name
        path.write_bytes(data)
        return str(path)

    der = serialization.Encoding.DER
    env = {
        "SSL_password": KEY_PASSWORD,
        "SSL_pub_pem": write("client.crt", client.cert_pem),
        "SSL_priv_pem": write("client.key", client.key_pem),
        "SSL_pub_der": write("client.crt.der", cert.public_bytes(der)),
        "SSL_priv_der": write(
            "client.key.der",
            key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        ),
        "SSL_ca_der": write("ca.der", ca.cert.public_bytes(der)),
        # Several CAs in one file, the broker's among them.
        "SSL_all_cas_pem": write("all-cas.pem", other.cert_pem + ca.cert_pem),
        # Key, certificate and CA in one PKCS#12 file, protected by the key password.
        "SSL_pkcs": write(
            "client.p12",
            pkcs12.serialize_key_and_certificates(
                b"testclient",
                key,  # type: ignore[arg-type]
                cert,
                [ca.cert],
                serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
            ),
        ),
    }
    return Pki(
        ca=ca.write(where / "ca.pem"),
        keystore=keystore,
        client_key=where / "client.key",
        client_cert=where / "client.crt",
        trivup_env=env,
    )
