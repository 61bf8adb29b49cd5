"""The local cluster's lifecycle: PostgreSQL, then SeaweedFS, then the brokers, each
waited for; stopped the other way round (brokers first, so each uploads its tail and
marks its row stopped while the stores still answer). Its directory keeps the stores'
data and `cluster.json` (the ports PostgreSQL and SeaweedFS were given, the same on the
next start: each broker's registry row names its object WAL by endpoint)."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from contextplane.clock import SystemClock
from contextplane.cluster.local.brokers import LocalBroker
from contextplane.cluster.local.postgres import INSTALL_HINT as PG_HINT
from contextplane.cluster.local.postgres import LocalPostgres, check_traversable, server_binaries
from contextplane.cluster.local.processes import (
    MissingProgram,
    StartFailed,
    free_ports,
    taken_ports,
    wait_for,
)
from contextplane.cluster.local.seaweedfs import INSTALL_HINT as WEED_HINT
from contextplane.cluster.local.seaweedfs import PORT_FLAGS, LocalSeaweedFS, weed_binary
from contextplane.storage.data_dir_lock import DataDirInUse, DataDirLock

MAX_BROKERS = 9
STATE_FILE = "cluster.json"
MEMBERSHIP_TIMEOUT_S = 60.0
_CLOCK = SystemClock()


def require_programs() -> None:
    """MissingProgram naming what to install when PostgreSQL or weed is absent."""
    if server_binaries() is None:
        raise MissingProgram(PG_HINT)
    if weed_binary() is None:
        raise MissingProgram(WEED_HINT)


class LocalCluster:
    def __init__(
        self,
        directory: Path | None,
        brokers: int,
        base_port: int,
        settings: Mapping[str, str],
    ) -> None:
        require_programs()  # before any directory is made
        if directory is not None:
            check_traversable(directory / "postgres")
        self.temporary = directory is None
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="contextplane-cluster-"))
            directory.chmod(0o711)  # PostgreSQL's user (nobody, as root) passes through
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory.resolve()
        # Held while this cluster runs: a second `up` on the directory would stop this
        # one's PostgreSQL as a leftover of a killed `up` (released by close or death).
        self._lock = DataDirLock(self.directory, "`contextplane cluster up`")
        try:
            self._lock.acquire()
        except DataDirInUse as exc:
            raise StartFailed(str(exc)) from None
        pg_port, weed_ports = self._store_ports()
        self.postgres = LocalPostgres(self.directory / "postgres", pg_port)
        self.seaweedfs = LocalSeaweedFS(self.directory / "seaweedfs", weed_ports)
        shared = {
            "metadata.url": self.postgres.url,
            "object.store.url": self.seaweedfs.url_for("data"),
            # The object WAL: a killed broker's acknowledged tail is in the bucket, so
            # another broker takes its partitions over at once (a local WAL would keep
            # them offline until that broker came back).
            "wal.url": self.seaweedfs.url_for("wal"),
            **settings,
        }
        # Base port 0: each broker binds free ports itself and reports them (ports chosen
        # here could be taken before a broker binds them).
        self.brokers = [
            LocalBroker(
                node_id=n,
                port=base_port and base_port + n - 1,
                http_port=base_port and base_port + 100 + n - 1,
                directory=self.directory / f"broker-{n}",
                settings=shared,
            )
            for n in range(1, brokers + 1)
        ]

    def _store_ports(self) -> tuple[int, dict[str, int]]:
        """Those of the last start in this directory, else free ones (then recorded)."""
        state = self.directory / STATE_FILE
        if state.exists():
            saved = json.loads(state.read_text())
            return int(saved["postgres"]), {k: int(v) for k, v in saved["seaweedfs"].items()}
        ports = free_ports(1 + len(PORT_FLAGS))
        weed = dict(zip(PORT_FLAGS, ports[1:], strict=True))
        state.write_text(json.dumps({"postgres": ports[0], "seaweedfs": weed}, indent=1))
        return ports[0], weed

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers)

    def start(self, stop: threading.Event) -> float:
        """Everything, waited for until each broker lists all; the seconds it took.
        Interrupted on `stop`; StartFailed or MissingProgram (the caller then `close`s)."""
        began = _CLOCK.monotonic_ms() / 1000
        # Before anything starts: a broker that cannot bind its port would exit only
        # once PostgreSQL and SeaweedFS are up.
        wanted = {}
        for broker in self.brokers:
            if broker.port:  # base port 0: each broker binds free ones itself
                wanted[broker.port] = f"broker {broker.node_id}"
                wanted[broker.http_port] = f"broker {broker.node_id}'s metrics"
        taken = taken_ports(wanted)
        if taken:
            raise StartFailed(
                f"port{'s' if len(taken) > 1 else ''} {', '.join(taken)} already in use"
                " (another cluster up?): choose another --base-port, or 0 for free ports"
            )
        self.postgres.start(stop)
        self.seaweedfs.start(stop)
        for broker in self.brokers:  # started together, then waited for
            broker.start()
        for broker in self.brokers:
            broker.wait_ready(stop)
        for broker in self.brokers:
            wait_for(
                lambda b=broker: _listed(b, len(self.brokers)),  # type: ignore[misc]
                MEMBERSHIP_TIMEOUT_S,
                f"broker {broker.node_id} listing all {len(self.brokers)} brokers",
                stop,
            )
        return _CLOCK.monotonic_ms() / 1000 - began

    def close(self, keep_logs: Path | None = None) -> None:
        """Brokers (all signalled at once, then waited for), SeaweedFS, PostgreSQL; the
        directory too when it was a temporary one (after copying the brokers' logs to
        `keep_logs`, when given)."""
        for broker in self.brokers:
            broker.signal_stop()
        for broker in self.brokers:
            broker.stop()
        self.seaweedfs.stop()
        self.postgres.stop()
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for broker in self.brokers:
                if broker.log.exists():
                    shutil.copy(broker.log, keep_logs / broker.log.name)
        self._lock.release()
        if self.temporary:
            shutil.rmtree(self.directory, ignore_errors=True)


def _listed(broker: LocalBroker, count: int) -> bool:
    """Whether `broker`'s Metadata lists `count` brokers (StartFailed if it exited)."""
    from confluent_kafka.admin import AdminClient

    if broker.exited() is not None:
        raise StartFailed(f"broker {broker.node_id} exited ({broker.exited()})")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 0})
    try:
        return len(admin.list_topics(timeout=5).brokers) == count
    except Exception:  # noqa: BLE001 - KafkaException while it settles; poll again
        return False
