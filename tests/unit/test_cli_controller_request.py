"""`partitions move` and `cluster rebalance` send their request to the controller through
kafka-python, which may pick a broker killed while its lease lasts (Metadata still lists
it) and fail with a connection error; the request is sent again, kafka-python having
backed that broker off, rather than the command failing on a bare KafkaConnectionError.
While the controller is dead and its lease lasts, every broker answers NOT_CONTROLLER
(kafka-python: a RuntimeError): the request is sent again until a controller answers, and
a cluster with none for the whole wait is named as such."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kafka.errors as errors
import pytest

from contextplane.cli import partitions
from contextplane.cli.kafka_client import CommandError
from contextplane.cli.partitions import controller_request

NO_CONTROLLER = RuntimeError("Failed to find active controller id!")


class Admin:
    """`_manager.run` fails `failures` times (a refused connection unless `error` is
    given), then answers."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or errors.KafkaConnectionError("111 ECONNREFUSED")
        self.calls = 0
        self._manager = self
        self._send_request_to_controller = object()
        self._controller_id: int | None = 1

    def run(self, *_: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
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


def test_no_controller_while_a_lease_lasts_is_waited_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partitions, "_NO_CONTROLLER_BACKOFF_S", 0.01)
    admin = Admin(failures=5, error=NO_CONTROLLER)
    assert controller_request(admin, object(), "move t-0 to broker 2").error_code == 0
    assert admin.calls == 6
    assert admin._controller_id is None  # asked of Metadata again before each try


def test_no_controller_for_the_whole_wait_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partitions, "_NO_CONTROLLER_BACKOFF_S", 0.01)
    monkeypatch.setattr(partitions, "_NO_CONTROLLER_WAIT_S", 0.2)
    admin = Admin(failures=10**6, error=NO_CONTROLLER)
    with pytest.raises(CommandError, match="no live controller within 0.2 s .*lease lapses"):
        controller_request(admin, object(), "move t-0 to broker 2")
    assert admin.calls > 1


def test_another_runtime_error_is_not_waited_on() -> None:
    admin = Admin(failures=1, error=RuntimeError("something else"))
    with pytest.raises(CommandError, match="move t-0 to broker 2: .*something else"):
        controller_request(admin, object(), "move t-0 to broker 2")
    assert admin.calls == 1
