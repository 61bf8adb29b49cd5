"""The statements of the broker registry (migration 0010, RFC 0004 §1), and the engine
and store methods over them (mixed into `SqlEngine` and `SqlMetadataStore`).

Every lease time is the database's clock (`SqlEngine._now_ms`): brokers never compare
their wall clocks with each other's. A registration takes the row of its node id only
when the holder's lease expired or the holder stopped, in one statement, so two brokers
starting with one id cannot both succeed. A registration, its endpoints and a clean stop
are announced to every broker (`announce`, on PostgreSQL), which read the brokers then.
"""

from __future__ import annotations

import json
from typing import Any

from contextplane.metadata.records import BrokerEndpoint, BrokerRecord, Registration
from contextplane.metadata.sql_assignment import (
    ASSIGNMENT_GENERATION,
    BROKERS_CHANGED,
    LEASED_STATES,
    announce,
    bump_generation,
)
from contextplane.metadata.sql_db import Db
from contextplane.metadata.sql_owed_marks import set_unmarked_acks, write_owed_marks

_LEASED = LEASED_STATES
_COLUMNS = "node_id, incarnation, rack, endpoints, state, lease_expires_ms - NOW_MS, zone_proxy"


def endpoints_text(endpoints: tuple[BrokerEndpoint, ...]) -> str:
    return json.dumps(
        [
            {"listener": e.listener, "host": e.host, "port": e.port, "protocol": e.protocol}
            for e in endpoints
        ],
        separators=(",", ":"),
    )


def _record(row: Any) -> BrokerRecord:
    endpoints = tuple(
        BrokerEndpoint(str(e["listener"]), str(e["host"]), int(e["port"]), str(e["protocol"]))
        for e in json.loads(row[3])
    )
    return BrokerRecord(
        int(row[0]), int(row[1]), row[2], endpoints, str(row[4]), int(row[5]), bool(row[6])
    )


class BrokerRows:
    """`SqlEngine`'s registry methods (over its connection, transactions and clock)."""

    _db: Db
    _now_ms: str

    def _sql(self, statement: str) -> str:
        return statement.replace("NOW_MS", self._now_ms)

    def register_broker(
        self,
        node_id: int,
        incarnation: int,
        rack: str | None,
        endpoints: tuple[BrokerEndpoint, ...],
        session_ms: int,
        replaces: int = -1,
        wal_url: str | None = None,
        zone_proxy: bool = False,
    ) -> Registration:
        """Take `node_id` for this incarnation unless a live broker holds it; a live row
        of incarnation `replaces` (one the caller knows is gone) is taken too. A node id
        drained and not undrained registers 'draining' (migration 0018). `wal_url`
        names its object WAL (None: a local WAL), which another broker recovers if it
        dies; `zone_proxy`, whether it stands in for its zone (migration 0020). A start's
        write, as the claim is: run as `SqlEngine.write` runs those (SQLite's reserve)."""
        engine: Any = self  # a SqlEngine: its transactions
        result: Registration = engine._run_write(
            lambda: self._register(
                node_id, incarnation, rack, endpoints, session_ms, replaces, wal_url, zone_proxy
            )
        )
        return result

    def _register(
        self,
        node_id: int,
        incarnation: int,
        rack: str | None,
        endpoints: tuple[BrokerEndpoint, ...],
        session_ms: int,
        replaces: int,
        wal_url: str | None,
        zone_proxy: bool,
    ) -> Registration:
        engine: Any = self
        with engine._transaction():
            self._db.execute(
                self._sql(
                    "INSERT INTO brokers (node_id, incarnation, rack, endpoints, state,"
                    " lease_expires_ms, registered_ms, wal_url, zone_proxy)"
                    " VALUES (?, ?, ?, ?, 'live', NOW_MS + ?, NOW_MS, ?, ?)"
                    " ON CONFLICT (node_id) DO UPDATE SET incarnation=excluded.incarnation,"
                    " rack=excluded.rack, endpoints=excluded.endpoints,"
                    " state=CASE WHEN brokers.draining <> 0 THEN 'draining' ELSE 'live' END,"
                    " lease_expires_ms=excluded.lease_expires_ms,"
                    " registered_ms=excluded.registered_ms, wal_url=excluded.wal_url,"
                    " zone_proxy=excluded.zone_proxy, load='{}'"
                    " WHERE brokers.lease_expires_ms < NOW_MS"
                    " OR brokers.state IN ('stopped', 'expired') OR brokers.incarnation = ?"
                ),
                (
                    node_id,
                    incarnation,
                    rack,
                    endpoints_text(endpoints),
                    session_ms,
                    wal_url,
                    int(zone_proxy),
                    replaces,
                ),
            )
            row = self._db.execute(
                self._sql(f"SELECT {_COLUMNS} FROM brokers WHERE node_id=?"), (node_id,)
            ).fetchone()
            if int(row[1]) == incarnation:
                announce(self._db, BROKERS_CHANGED)
        broker = _record(row)
        return Registration(broker.incarnation == incarnation, broker)

    def heartbeat_broker(
        self, node_id: int, incarnation: int, session_ms: int
    ) -> list[BrokerRecord] | None:
        """Renew this incarnation's lease and read the live brokers, in one transaction;
        None when the row is no longer this incarnation's (replaced, or expired)."""
        engine: Any = self
        with engine._transaction():
            if not self._renew(node_id, incarnation, session_ms):
                return None
            return self.live_brokers()

    def _renew(
        self, node_id: int, incarnation: int, session_ms: int, load: str | None = None
    ) -> bool:
        """In a heartbeat's transaction: renew this incarnation's lease, and write its
        measured load unless None (False: the row is no longer its own)."""
        loaded = "" if load is None else ", load = ?"
        renewed = self._db.execute(
            self._sql(
                f"UPDATE brokers SET lease_expires_ms = NOW_MS + ?{loaded}"
                f" WHERE node_id=? AND incarnation=? AND state IN {_LEASED}"
            ),
            (session_ms, *(() if load is None else (load,)), node_id, incarnation),
        ).rowcount
        return bool(renewed == 1)

    def broker_loads(self) -> list[tuple[int, str, str]]:
        """(node id, state, load document) of every broker whose lease has not expired."""
        rows = self._db.execute(
            self._sql(
                f"SELECT node_id, state, load FROM brokers WHERE state IN {_LEASED}"
                " AND lease_expires_ms >= NOW_MS ORDER BY node_id"
            )
        ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def set_broker_draining(self, node_id: int, draining: bool) -> bool:
        """Mark a live broker draining (placement and the balancer put nothing there) or
        live again, announced with `generation.assignment`; False: no such live broker.
        The drain is kept for the node id until undrained: its restarts register it
        draining."""
        engine: Any = self
        with engine._transaction():
            changed = self._db.execute(
                self._sql(
                    "UPDATE brokers SET state=CASE WHEN state='shutting_down' THEN state"
                    f" ELSE ? END, draining=? WHERE node_id=? AND state IN {_LEASED}"
                    " AND lease_expires_ms >= NOW_MS"
                ),
                ("draining" if draining else "live", int(draining), node_id),
            ).rowcount
            if changed == 1:
                bump_generation(self._db, ASSIGNMENT_GENERATION)
            return bool(changed == 1)

    def begin_shutdown(self, node_id: int, incarnation: int) -> bool:
        """A controlled shutdown's start: this incarnation's row is marked
        `shutting_down` (the controller moves its partitions off it, placement puts
        nothing there), announced with `generation.assignment`. Unlike a drain it is
        not kept for the node id: the next registration is live (or draining, if
        drained). False: the row is no longer this incarnation's live one."""
        engine: Any = self
        with engine._transaction():
            changed = self._db.execute(
                self._sql(
                    "UPDATE brokers SET state='shutting_down' WHERE node_id=? AND incarnation=?"
                    f" AND state IN {_LEASED} AND lease_expires_ms >= NOW_MS"
                ),
                (node_id, incarnation),
            ).rowcount
            if changed == 1:
                bump_generation(self._db, ASSIGNMENT_GENERATION)
            return bool(changed == 1)

    def live_brokers(self) -> list[BrokerRecord]:
        """Every broker whose lease has not expired, by node id."""
        rows = self._db.execute(
            self._sql(
                f"SELECT {_COLUMNS} FROM brokers WHERE state IN {_LEASED}"
                " AND lease_expires_ms >= NOW_MS ORDER BY node_id"
            )
        ).fetchall()
        return [_record(row) for row in rows]

    def set_broker_endpoints(
        self, node_id: int, incarnation: int, endpoints: tuple[BrokerEndpoint, ...]
    ) -> bool:
        """Publish the endpoints once the listeners are bound (a port 0 is known only
        then); False when the row is no longer this incarnation's."""
        engine: Any = self
        with engine._transaction():
            published = (
                self._db.execute(
                    "UPDATE brokers SET endpoints=? WHERE node_id=? AND incarnation=?",
                    (endpoints_text(endpoints), node_id, incarnation),
                ).rowcount
                == 1
            )
            if published:
                announce(self._db, BROKERS_CHANGED)
            return published

    def deregister_broker(
        self, node_id: int, incarnation: int, owed_marks: dict[int, int] | None = None
    ) -> None:
        """A clean stop: the row stays (its id is free to take at once), listed by no one.
        The dirty marks it owes are written in the same transaction, so its partitions
        stop counting as dirty all together (`unmarked_acks`) only once they are; with
        `owed_marks` None (storage never opened: a predecessor's WAL may hold records
        it owes marks for) the flag stays as it is."""
        engine: Any = self
        with engine._transaction():
            if owed_marks is not None:
                write_owed_marks(self._db, node_id, owed_marks)
                set_unmarked_acks(self._db, node_id, incarnation, False)
            self._db.execute(
                self._sql(
                    "UPDATE brokers SET state='stopped', lease_expires_ms=NOW_MS"
                    " WHERE node_id=? AND incarnation=?"
                ),
                (node_id, incarnation),
            )
            announce(self._db, BROKERS_CHANGED)


class BrokerCalls:
    """`SqlMetadataStore`'s registry methods, run on its worker thread."""

    async def register_broker(
        self,
        node_id: int,
        incarnation: int,
        rack: str | None,
        endpoints: tuple[BrokerEndpoint, ...],
        session_ms: int,
        replaces: int = -1,
        wal_url: str | None = None,
        zone_proxy: bool = False,
    ) -> Registration:
        store: Any = self  # a SqlMetadataStore
        result: Registration = await store._call(
            store.engine.register_broker,
            node_id,
            incarnation,
            rack,
            endpoints,
            session_ms,
            replaces,
            wal_url,
            zone_proxy,
        )
        return result

    async def heartbeat_broker(
        self, node_id: int, incarnation: int, session_ms: int
    ) -> list[BrokerRecord] | None:
        store: Any = self
        result: list[BrokerRecord] | None = await store._call(
            store.engine.heartbeat_broker, node_id, incarnation, session_ms
        )
        return result

    async def live_brokers(self) -> list[BrokerRecord]:
        store: Any = self
        result: list[BrokerRecord] = await store._call(store.engine.live_brokers)
        return result

    async def broker_loads(self) -> list[tuple[int, str, str]]:
        store: Any = self
        result: list[tuple[int, str, str]] = await store._call(store.engine.broker_loads)
        return result

    async def set_broker_draining(self, node_id: int, draining: bool) -> bool:
        store: Any = self
        result: bool = await store._call(store.engine.set_broker_draining, node_id, draining)
        return result

    async def begin_shutdown(self, node_id: int, incarnation: int) -> bool:
        store: Any = self
        result: bool = await store._call(store.engine.begin_shutdown, node_id, incarnation)
        return result

    async def set_broker_endpoints(
        self, node_id: int, incarnation: int, endpoints: tuple[BrokerEndpoint, ...]
    ) -> bool:
        store: Any = self
        result: bool = await store._call(
            store.engine.set_broker_endpoints, node_id, incarnation, endpoints
        )
        return result

    async def deregister_broker(
        self, node_id: int, incarnation: int, owed_marks: dict[int, int] | None = None
    ) -> None:
        store: Any = self
        await store._call(store.engine.deregister_broker, node_id, incarnation, owed_marks)
