"""Pairs of brokers (Apache Kafka and contextplane) that start in the background.

The differential suite runs its scenarios in groups, one pair of brokers per group of
broker settings. Starting a pair takes ~10 s (a JVM, KRaft, a broker process); the next
pair starts while the current group's scenarios run, so that wait mostly overlaps.

Each pair lives on a thread of its own from start to stop: the Kafka JVM is launched
with PR_SET_PDEATHSIG, so it would be killed when the thread that launched it ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from conformance import brokers


class BrokerPair(threading.Thread):
    """Kafka and contextplane with the same settings, up until close()."""

    def __init__(self, extra: dict[str, str], keep: Path | None) -> None:
        super().__init__(name="conformance-broker-pair", daemon=True)
        self.extra = extra
        self.keep = keep
        self._ready = threading.Event()
        self._release = threading.Event()
        self._pair: tuple[brokers.Running, brokers.Running] | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            with (
                brokers.kafka(self.extra) as kafka,
                brokers.contextplane(self.extra, keep=self.keep) as ours,
            ):
                self._pair = (kafka, ours)
                self._ready.set()
                self._release.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            self._error = exc
        finally:
            self._ready.set()

    def wait(self) -> tuple[brokers.Running, brokers.Running]:
        """Both brokers serving, or the start-up's error raised here."""
        self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self._pair is not None
        return self._pair

    def stop(self) -> None:
        self._release.set()
        self.join()

    def close(self) -> None:
        """Stop both brokers; a failure to stop is raised here."""
        self.stop()
        if self._error is not None and self._pair is not None:
            raise self._error


@contextmanager
def one_ahead(
    settings: Sequence[tuple[dict[str, str], Path | None]],
) -> Iterator[Iterator[BrokerPair]]:
    """Yields the pairs in order; each is started while its predecessor is in use.

    Every pair started is closed on the way out, whatever happened in between."""
    started: list[BrokerPair] = []

    def start(index: int) -> None:
        if index < len(settings) and len(started) == index:
            pair = BrokerPair(*settings[index])
            started.append(pair)
            pair.start()

    def pairs() -> Iterator[BrokerPair]:
        for index in range(len(settings)):
            start(index)
            start(index + 1)
            yield started[index]
            started[index].close()

    try:
        yield pairs()
    finally:
        for pair in started:
            pair.stop()
