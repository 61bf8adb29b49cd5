"""`partitions move` and `cluster rebalance` send their request to the controller through
kafka-python, which may pick a broker killed while its lease lasts (Metadata still lists
it) and fail with a connection error; the request is sent again, kafka-python having
backed that broker off, rather than the command failing on a bare KafkaConnectionError."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kafka.errors as errors
import pytest

from contextplane.cli.kafka_client import CommandError
from contextplane.cli.partitions import controller_request


class Admin:
    """`_manager.run` fails `failures` times with a refused connection, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self._manager = self
        self._send_request_to_controller = object()

    def run(self, *_: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise errors.KafkaConnectionError("111 ECONNREFUSED")
        return SimpleNamespace(error_code=0, error_message=None)


def test_a_refused_connection_is_tried_again() -> None:
    admin = Admin(failures=2)
    assert controller_request(admin, object(), "move t-0 to broker 2").error_code == 0
    assert admin.calls == 3


def test_a_cluster_refusing_every_try_is_named_in_one_line() -> None:
    admin = Admin(failures=10)
    with pytest.raises(CommandError, match="move t-0 to broker 2: no broker of the cluster"):
        controller_request(admin, object(), "move t-0 to broker 2")
    assert admin.calls == 4
