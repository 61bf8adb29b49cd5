"""tests.support.sasl_login, the raw client's SASL login the differential ACL scenarios
use, against a broker with PLAIN and SCRAM users: each mechanism logs in, a wrong
password and an unknown mechanism raise with Kafka's error code."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextplane.protocol.error_codes import ErrorCode
from tests.protocol.test_sasl_wire import sasl_broker
from tests.support.rawclient import RawClient
from tests.support.sasl_login import SaslLoginFailed, login


def test_login_with_each_mechanism_then_wrong_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = sasl_broker(tmp_path, monkeypatch)
    try:
        for mechanism, user in (
            ("PLAIN", "carol"),
            ("SCRAM-SHA-512", "alice"),
            ("SCRAM-SHA-256", "alice"),
        ):
            with RawClient(broker.bootstrap) as client:
                login(client, mechanism, user, f"{user}-secret")
                assert client.request(3, 12, topics=[]).brokers, mechanism
        with RawClient(broker.bootstrap) as client, pytest.raises(SaslLoginFailed) as failed:
            login(client, "PLAIN", "carol", "wrong")
        assert failed.value.code == ErrorCode.sasl_authentication_failed
        with RawClient(broker.bootstrap) as client, pytest.raises(SaslLoginFailed) as failed:
            login(client, "GSSAPI", "carol", "carol-secret")
        assert failed.value.code == ErrorCode.unsupported_sasl_mechanism
    finally:
        broker.stop()
