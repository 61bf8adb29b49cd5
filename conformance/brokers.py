"""The two brokers under comparison, started with the same effective settings.

Apache Kafka comes from harness.kafka_reference (Maven Central, cached, KRaft on
127.0.0.1, stopped by pid); contextplane from tests.support.broker.BrokerProcess.

A scenario's settings may carry `CLIENT_LISTENER` (a harness key, given to neither
broker): "SASL_PLAINTEXT" starts both with one SASL_PLAINTEXT client listener, the
mechanisms and JAAS entries coming from the Kafka settings beside it
(`sasl.enabled.mechanisms`, `listener.name.sasl_plaintext.<mechanism>.sasl.jaas.config`).
`SASL_ADMIN` then names the user (and password) the harness logs in as to see that the
broker is ready.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import kafka_reference
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient
from tests.support.sasl_login import login
from tests.support.wait import wait_until

CLIENT_LISTENER = "harness.client.listener"
SASL_ADMIN = "harness.sasl.admin"  # "MECHANISM:user:password"
_HARNESS_KEYS = (CLIENT_LISTENER, SASL_ADMIN)

# Settings both brokers get (Kafka's names). Group joins are immediate on both, so group
# scenarios observe protocol behaviour rather than a delay that only one would have.
COMMON = {
    "group.initial.rebalance.delay.ms": "0",
}


@dataclass
class Running:
    name: str
    bootstrap: str
    log_hint: str


def _split(extra: dict[str, str] | None) -> tuple[dict[str, str], str, str | None]:
    """The broker settings, the client listener's protocol and the admin login."""
    settings = dict(COMMON, **(extra or {}))
    protocol = settings.get(CLIENT_LISTENER, "PLAINTEXT")
    admin = settings.get(SASL_ADMIN)
    for key in _HARNESS_KEYS:
        settings.pop(key, None)
    return settings, protocol, admin


def admin_client(bootstrap: str, admin: str | None) -> RawClient:
    """A raw client, logged in as the harness's admin when the listener is SASL."""
    client = RawClient(bootstrap, "conformance-harness")
    if admin is not None:
        mechanism, user, password = admin.split(":", 2)
        try:
            login(client, mechanism, user, password)
        except BaseException:
            client.close()
            raise
    return client


def _serves_metadata(bootstrap: str, admin: str | None) -> bool:
    """An authenticated Metadata lists a broker: the broker is unfenced."""
    try:
        with admin_client(bootstrap, admin) as client:
            return bool(client.request(3, 12, topics=[]).brokers)
    except Exception:  # noqa: BLE001 - not up yet, whatever the symptom
        return False


@contextlib.contextmanager
def kafka(extra: dict[str, str] | None = None) -> Iterator[Running]:
    props, protocol, admin = _split(extra)
    handle = kafka_reference.start(extra_props=props, client_protocol=protocol)
    try:
        if protocol != "PLAINTEXT":
            wait_until(lambda: _serves_metadata(handle.bootstrap, admin), 90, "Kafka unfenced")
        yield Running("kafka", handle.bootstrap, str(handle.log_path))
    finally:
        handle.stop()


@contextlib.contextmanager
def contextplane(
    extra: dict[str, str] | None = None, keep: Path | None = None
) -> Iterator[Running]:
    settings, protocol, _ = _split(extra)
    if protocol != "PLAINTEXT":
        # Port 0, as --port: the broker's ready line names the port it bound.
        settings["listeners"] = f"{protocol}://127.0.0.1:0"
    root = Path(tempfile.mkdtemp(prefix="conformance-cp-"))
    process = BrokerProcess(root / "broker", settings=settings).start()
    try:
        yield Running("contextplane", process.bootstrap, str(process.log_path))
    finally:
        try:
            process.stop()
        finally:
            if keep is not None and process.log_path and process.log_path.exists():
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(process.log_path, keep / "contextplane-broker.log")
            shutil.rmtree(root, ignore_errors=True)
