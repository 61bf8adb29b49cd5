"""A three-broker cluster for the cluster benches: one PostgreSQL, one object store
(SeaweedFS through `s3://`, or a shared `file://` directory), brokers with `node.id` 1..N
and racks a, b, c.

With `zones=True` every broker has one listener per zone (`ZA`, `ZB`, `ZC`), each
advertising that zone's counting forwarder to it (`bench/zone_proxy.py`): a client that
bootstraps on zone X's forwarders is answered with zone X's endpoints of every broker
(Metadata lists the endpoints of the listener the request came in on, as Kafka does),
and each broker calls its peers on its own zone's listener (`inter.broker.listener.name`),
so inter-broker bytes are counted by zone pair too.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from bench.zone_proxy import Route, ZoneProxy
from tests.support.broker import BrokerProcess, free_port
from tests.support.postgres import PostgresServer
from tests.support.seaweedfs import SeaweedFS
from tests.support.wait import wait_until

ZONES = ("a", "b", "c")


def listener(zone: str) -> str:
    return f"Z{zone.upper()}"


@dataclass
class Cluster:
    root: Path
    store: str = "file"  # "file" or "s3"
    zones: bool = False
    probes: bool = False  # each broker's probe line a second (`debug.probe.file`)
    size: int = 3
    settings: dict[str, str] = field(default_factory=dict)
    postgres: PostgresServer | None = None
    seaweedfs: SeaweedFS | None = None
    proxy: ZoneProxy | None = None
    brokers: dict[int, BrokerProcess] = field(default_factory=dict)
    metadata_url: str = ""
    objects_url: str = ""
    prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    # zone -> node id -> the forwarder's port (zones=True)
    forwarders: dict[str, dict[int, int]] = field(default_factory=dict)

    def rack(self, node_id: int) -> str:
        return ZONES[(node_id - 1) % len(ZONES)]

    def store_url(self, what: str) -> str:
        """The object store URL of `what` (`data`, `wal`) under this run's prefix."""
        if self.seaweedfs is not None:
            return self.seaweedfs.url_for(f"{self.prefix}/{what}")
        path = self.root / "objects" / what
        path.mkdir(parents=True, exist_ok=True)
        return path.as_uri()

    @staticmethod
    def probe_path(broker: BrokerProcess) -> Path:
        return broker.data_dir.parent / f"{broker.data_dir.name}.probe"

    def start(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.postgres = PostgresServer().start()
        self.metadata_url = self.postgres.create_database()
        if self.store == "s3":
            self.seaweedfs = SeaweedFS(self.root / "weed").start()
        self.objects_url = self.store_url("data")
        nodes = range(1, self.size + 1)
        ports = {n: {z: free_port() for z in ZONES} for n in nodes}
        if self.zones:
            self.proxy = ZoneProxy()
            for zone in ZONES:
                self.forwarders[zone] = {}
                for n in nodes:
                    route = self.proxy.listen(Route(zone, self.rack(n), n, ports[n][zone]))
                    self.forwarders[zone][n] = route.port
        for n in nodes:
            self.brokers[n] = self._start_broker(n, ports[n])
        self.wait_listed()
        return self

    def wait_listed(self) -> None:
        """Until every broker lists every live one at its bound endpoint: a broker asked
        for port 0 registers first and publishes its endpoint once bound, and a client
        that saw the first row would dial port 0."""
        if self.zones:
            return  # the advertised endpoints (the forwarders) are known before start
        expected = {n: b.bootstrap for n, b in self.brokers.items() if b.process is not None}
        for broker in self.brokers.values():
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})

            def listed(admin: AdminClient = admin) -> bool:
                brokers = admin.list_topics(timeout=10).brokers
                return {n: f"{b.host}:{b.port}" for n, b in brokers.items()} == expected

            wait_until(listed, 60, f"broker {broker.bootstrap} lists every broker, bound")

    def _start_broker(self, node_id: int, ports: dict[str, int]) -> BrokerProcess:
        """Start the broker; with zones (its listener ports picked beforehand, so another
        process may take one meanwhile) again on fresh ports if it exits at start."""
        for attempt in range(3):
            broker = self._broker(node_id, ports)
            try:
                return broker.start()
            except RuntimeError:
                if not self.zones or attempt == 2:
                    raise
            ports = {z: free_port() for z in ZONES}
            for zone in ZONES:
                assert self.proxy is not None
                self.proxy.retarget(zone, node_id, ports[zone])
        raise AssertionError("unreachable")

    def _broker(self, node_id: int, ports: dict[str, int]) -> BrokerProcess:
        settings = {
            "node.id": str(node_id),
            "broker.rack": self.rack(node_id),
            "broker.heartbeat.interval.ms": "300",
            **self.settings,
        }
        port = 0
        if self.zones:
            settings["listeners"] = ",".join(f"{listener(z)}://127.0.0.1:{ports[z]}" for z in ZONES)
            settings["advertised.listeners"] = ",".join(
                f"{listener(z)}://127.0.0.1:{self.forwarders[z][node_id]}" for z in ZONES
            )
            settings["listener.security.protocol.map"] = ",".join(
                f"{listener(z)}:PLAINTEXT" for z in ZONES
            )
            settings["inter.broker.listener.name"] = listener(self.rack(node_id))
            port = ports[ZONES[0]]
        data_dir = self.root / f"broker-{node_id}"
        if self.probes:
            settings["debug.probe.file"] = str(data_dir.parent / f"{data_dir.name}.probe")
        return BrokerProcess(
            data_dir,
            port=port,
            metadata_url=self.metadata_url,
            object_store=self.objects_url,
            settings=settings,
        )

    def bootstrap(self, zone: str | None = None) -> str:
        """Every broker, through zone `zone`'s forwarders (zones=True), else directly."""
        if zone is not None:
            return ",".join(f"127.0.0.1:{p}" for p in self.forwarders[zone].values())
        return ",".join(
            b.bootstrap
            for b in self.brokers.values()
            if b.process is not None and b.process.poll() is None
        )

    def dead(self) -> dict[int, str]:
        """node id -> the log tail of each broker process that exited."""
        return {
            n: b.log_tail(15)
            for n, b in self.brokers.items()
            if b.process is not None and b.process.poll() is not None
        }

    def stop(self) -> None:
        for n, tail in self.dead().items():
            print(f"broker {n} had exited:\n{tail}", file=sys.stderr, flush=True)
        for broker in self.brokers.values():
            with contextlib.suppress(RuntimeError):  # stopped it all the same
                broker.stop()
        if self.proxy is not None:
            self.proxy.close()
        if self.seaweedfs is not None:
            self.seaweedfs.stop()
        if self.postgres is not None:
            self.postgres.stop()
