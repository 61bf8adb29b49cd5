"""Stand-in for the SASL brokers kafka-python's test/integration/test_sasl_integration.py
starts through its fixtures: every broker the fixtures ask for is the contextplane broker
the conformance harness started (CONFORMANCE_SASL_BOOTSTRAP), which has a SASL_PLAINTEXT
listener with the fixture's user (KafkaFixture.broker_user / broker_password) for PLAIN,
SCRAM-SHA-256 and SCRAM-SHA-512.

A pytest plugin (`-p contextplane_sasl_broker`): conftest.py's kafka_broker_factory calls
KafkaFixture.instance(...) when KAFKA_URI is unset (the SASL tests skip themselves with
KAFKA_URI), and this replaces that classmethod by one that describes the running broker as
an external fixture with the transport and mechanism asked for. The fixture's own helpers
then work unchanged: client_params() adds the SASL settings, get_topic_names() runs
kafka-topics.sh (Apache Kafka's TopicCommand) with the fixture's sasl_command.conf.
Written by contextplane's conformance harness (conformance/suites/kafka_python_sasl).
"""

import os

import py


def pytest_configure(config):
    from test.integration import fixtures

    host, port = os.environ["CONFORMANCE_SASL_BOOTSTRAP"].rsplit(":", 1)

    def instance(
        cls,
        broker_id,
        transport="PLAINTEXT",
        sasl_mechanism=None,
        partitions=4,
        replicas=1,
        **_ignored,
    ):
        if transport != "SASL_PLAINTEXT":
            raise RuntimeError(
                f"the conformance harness provides a SASL_PLAINTEXT broker only, not {transport}"
            )
        fixture = cls(
            host,
            int(port),
            broker_id,
            transport=transport,
            sasl_mechanism=sasl_mechanism,
            partitions=partitions,
            replicas=replicas,
            external=True,
            tmp_dir=py.path.local.mkdtemp(),
        )
        # open() returns at once for an external broker: what it would have derived for
        # the templates (sasl_command.conf) is set here.
        fixture.jaas_config = fixture._jaas_config()
        return fixture

    fixtures.KafkaFixture.instance = classmethod(instance)
