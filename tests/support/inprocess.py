"""A broker inside the test process: `Broker` on its own event loop in a background thread.

For tests that talk to a broker over the wire but need nothing of a separate process (no
kill -9, signals, log files of their own, descriptor or memory measurements): starting one
takes milliseconds instead of a Python interpreter's start-up. It has the interface of
`BrokerProcess` that such tests use: `bootstrap`, `port`, `data_dir`, `start`, `stop`,
`restart`, `log_tail`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from contextplane.broker.app import Broker
from contextplane.logsafe import EscapingFormatter
from contextplane.settings import load_settings

T = TypeVar("T")

_LOG_LINES_KEPT = 2000


class _ThreadLog(logging.Handler):
    """The log records emitted on one thread: the broker's event loop."""

    def __init__(self, thread_id: int) -> None:
        super().__init__()
        self.thread_id = thread_id
        self.lines: list[str] = []
        self.emitted = 0  # every line since start, kept or not
        self.setFormatter(EscapingFormatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id:
            self.lines.append(self.format(record))
            self.emitted += 1
            del self.lines[:-_LOG_LINES_KEPT]


@dataclass
class InProcessBroker:
    data_dir: Path
    settings: dict[str, str] = field(default_factory=dict)
    object_store: str | None = None
    port: int = 0  # 0: any free port at the first start; a restart keeps the port
    broker: Broker | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _log: _ThreadLog | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> InProcessBroker:
        assert self.broker is None, "already started"
        given = {
            "log.dirs": str(self.data_dir),
            "listener.host": "127.0.0.1",
            "listener.port": str(self.port),
            **self.settings,
        }
        if self.object_store:
            given["object.store.url"] = self.object_store
        settings = load_settings(overrides=given)
        self._loop = loop = _new_loop()
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"broker-{self.data_dir.name}", daemon=True
        )
        self._thread.start()
        assert self._thread.ident is not None
        self._log = _ThreadLog(self._thread.ident)
        logger = logging.getLogger("contextplane")
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)  # as `contextplane up` logs
        logger.addHandler(self._log)
        self.broker = Broker(settings)
        try:
            self._run(self.broker.start(), timeout_s)
        except BaseException:
            self._close_loop()
            self.broker = None
            raise
        self.port = self.broker.bound_port
        return self

    def listener_port(self, name: str) -> int:
        """The port the named listener bound (several listeners: `listeners=...`)."""
        assert self.broker is not None, "not started"
        return self.broker.bound_ports[name]

    def stop(self, timeout_s: float = 30.0) -> None:
        """A clean stop, as on SIGTERM: storage uploads what it can, then closes."""
        if self.broker is None:
            return
        try:
            self._run(self.broker.stop(), timeout_s)
        finally:
            self._close_loop()
            self.broker = None

    def restart(self) -> InProcessBroker:
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self._log.lines[-lines:]) if self._log is not None else ""

    def log_mark(self) -> int:
        """A position in the broker's log, for `log_since`."""
        return self._log.emitted if self._log is not None else 0

    def log_since(self, mark: int) -> list[str]:
        """The lines logged after `mark` (those still kept: the last 2,000)."""
        if self._log is None:
            return []
        new = self._log.emitted - mark
        return self._log.lines[-new:] if new > 0 else []

    def call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        """Run a coroutine on the broker's loop (to look at or drive its components)."""
        return self._run(coroutine, timeout_s)

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def _close_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        if self._log is not None:
            logging.getLogger("contextplane").removeHandler(self._log)
        self._loop = self._thread = None


def _new_loop() -> asyncio.AbstractEventLoop:
    """The loop the broker runs on in production: uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _cancel_the_rest() -> None:
    """Tasks still running after the broker stopped (none are expected): cancelled so the
    loop closes without warnings."""
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
