"""librdkafka's SASL and SSL tests, and a few ordinary produce/consume tests, over a
SASL_SSL listener (PLAIN) with a certificate made for the run.

The same test runner as the librdkafka suite (Debian's 2.0.2 source package); test.conf
holds the client's security settings as trivup writes them for a SASL_SSL cluster
(security.protocol, sasl.mechanisms, sasl.username/password, ssl.ca.location and a client
key and certificate), and the runner's environment the SSL_* files 0097_ssl_verify reads.
PLAIN rather than SCRAM: librdkafka 2.0.2 sends a wrong nonce in its final SCRAM message (a
client bug fixed in later releases), which Kafka and contextplane both refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conformance.suites import BrokerSpec, pki, work_dir
from conformance.suites.librdkafka import suite as librdkafka

NAME = "librdkafka (Debian src) over SASL_SSL"
USER, PASSWORD = "testuser", "testuser-secret"
PLAIN_JAAS = (
    f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";'
)
# What the variant runs: every test whose name or flags say SASL or SSL and that needs a
# broker (0097_ssl_verify, 0135_sasl_credentials; 0126_oauthbearer_oidc needs an OIDC
# token endpoint and a librdkafka built with libcurl, see FINDINGS.md), and ordinary
# produce/consume tests that prove the common path over TLS and SASL.
TESTS = [
    "0097_ssl_verify",
    "0135_sasl_credentials",
    "0001_multiobj",
    "0012_produce_consume",
    "0017_compression",
    "0018_cgrp_term",
    "0022_consume_batch",
    "0030_offset_commit",
    "0031_get_offsets",
    "0034_offset_reset",
    "0035_api_version",
    "0056_balanced_group_mt",
    "0063_clusterid",
    "0081_admin",
    "0090_idempotence",
    "0099_commit_metadata",
    "0130_store_offsets",
]


@dataclass(frozen=True)
class Prepared:
    src: Path
    pki: pki.Pki


def prepare(log) -> Prepared:  # noqa: ANN001
    src = librdkafka.prepare(log)
    return Prepared(src, pki.make(work_dir("rdk_pki-")))


def broker_spec(prepared: Prepared) -> BrokerSpec:
    return BrokerSpec(
        {
            **librdkafka.BROKER_SETTINGS,
            "listeners": "SASL_SSL://127.0.0.1:0",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
            "ssl.keystore.location": str(prepared.pki.keystore),
            # As the secured clusters librdkafka's and kafka-python's tests run against: the
            # ACL APIs answer (0081_admin creates, describes and deletes ACLs) and every
            # request passes the authorizer, which allows what no ACL covers.
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "true",
        },
        tls_cafile=prepared.pki.ca,
    )


def client_conf(prepared: Prepared) -> dict[str, str]:
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": USER,
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(prepared.pki.ca),
        "ssl.key.location": str(prepared.pki.client_key),
        "ssl.key.password": pki.KEY_PASSWORD,
        "ssl.certificate.location": str(prepared.pki.client_cert),
    }


def run(
    prepared: Prepared,
    bootstrap: str,
    kafka_version: str,
    tests: list[str] | None,
    log,  # noqa: ANN001
    deadline: float,
) -> dict[str, str]:
    return librdkafka.run_tests(
        prepared.src,
        bootstrap,
        kafka_version,
        TESTS if tests is None else list(tests),
        log,
        deadline,
        client_conf=client_conf(prepared),
        env_more=prepared.pki.trivup_env,
        parallel=1,  # a handful of tests: one at a time keeps the run's CPU small
    )
