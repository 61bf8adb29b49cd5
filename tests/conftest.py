from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import broker as broker_process
from tests.support.inprocess import InProcessBroker
from tests.support.postgres import postgres_server_fixture  # noqa: F401 - session fixture

if TYPE_CHECKING:
    from xdist.remote import Producer
    from xdist.scheduler.protocol import Scheduling

# Brokers run inside the test process (tests/support/inprocess.py). A test that needs a
# process of its own (kill -9, signals, its log file, its descriptors or memory) starts a
# tests.support.broker.BrokerProcess itself.
FAST_JOINS = {"group.initial.rebalance.delay.ms": "0"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A `long` test must be `slow` too: a caller's `-m "not slow"` replaces scripts/test's
    `-m "not long"`, and the quick subset must still leave the soaks out."""
    unslow = [
        i.nodeid for i in items if i.get_closest_marker("long") and not i.get_closest_marker("slow")
    ]
    if unslow:
        raise pytest.UsageError(f"marked long but not slow: {unslow}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    broker_process.STARTED.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report ends with the log tail of each broker process it started:
    a broker that died is otherwise only a refused connection in the client's error."""
    report: pytest.TestReport = yield
    if report.failed and call.when == "call":
        for started in broker_process.STARTED:
            report.sections.append(
                (
                    f"broker log {started.log_path} ({started.state()})",
                    started.log_tail(80),
                )
            )
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> Scheduling | None:
    """`--dist loadfile` keeps the tests that build into the harness cache in one worker
    (tests/support/xdist_scope.py); any other mode is xdist's own."""
    if config.getoption("dist") != "loadfile":
        return None
    from tests.support.xdist_scope import make_scheduler

    return make_scheduler(config, log)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[InProcessBroker]:
    """A fresh broker per test, with fast group joins."""
    running = InProcessBroker(tmp_path / "broker", settings=dict(FAST_JOINS)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    """One broker for a whole module of tests that use distinct topics."""
    data = tmp_path_factory.mktemp("shared") / "broker"
    running = InProcessBroker(data, settings=dict(FAST_JOINS)).start()
    yield running
    running.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A metadata store URL of each engine: a SQLite file in the test's directory, or a
    database of its own on the session's PostgreSQL server (started on first use)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    server = request.getfixturevalue("postgres_server")
    url: str = server.create_database()
    return url
