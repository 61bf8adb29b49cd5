"""One seeded run: a random sequence of appends, reads, uploads, retention, faults and
crashes against the storage engine, checked from outside (checker.py).

Everything random comes from one `random.Random(seed)` and everything runs on one
virtual-time event loop (loop.py) with no thread, so a seed is a complete description of
a run: the same seed gives the same trace, and `SEED=n` reproduces a failure.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contextplane.errors import KafkaError
from contextplane.metadata.runner import InlineRunner
from contextplane.metadata.store import MetadataStore, open_metadata_store
from contextplane.protocol.records import iter_batch_headers, split_batches
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.memory_wal import MemoryWal
from contextplane.storage.objectstore import ObjectStoreError
from contextplane.storage.wal import WalWriteError
from sim.checker import Checker, Violation, body
from sim.loop import BudgetExceeded, VirtualClock, VirtualTimeLoop
from sim.records import batch_bytes
from sim.world import ProcessCrashed, WalFactory, World, cancel_all_tasks

TOPIC = "sim"
# Every action answers within this (virtual) time, whatever the faults: reads and
# uploads are bounded by the object store request timeout, appends do not wait.
ACTION_DEADLINE_S = 60


@dataclass(frozen=True)
class Budget:
    """What one run may take before it fails as a spin (loop.py's BudgetExceeded)."""

    virtual_s: float
    iterations: int


def run_budget(steps: int) -> Budget:
    """About ten times what a clean run of `steps` takes: over 3,000 seeds of 200 steps,
    at most ~100 s of virtual time and ~5,000 loop iterations. A spin reaches it within
    half a second of CPU."""
    return Budget(virtual_s=200 + 4 * steps, iterations=10_000 + 200 * steps)


# Failures the engine may answer an append or a read with; anything else is a bug.
EXPECTED_ERRORS = (KafkaError, WalWriteError, ObjectStoreError, ProcessCrashed)


@dataclass
class Producer:
    index: int
    idempotent: bool
    partition: int
    sequence: int = 0
    batch: bytes | None = None  # the batch being sent until acknowledged
    task: asyncio.Task[None] | None = None


@dataclass
class Result:
    seed: int
    trace: list[str] = field(default_factory=list)
    violation: str | None = None
    acknowledged: int = 0
    crashes: int = 0
    virtual_s: float = 0.0  # virtual time the run took
    iterations: int = 0  # event loop iterations it took


class Simulation:
    def __init__(self, seed: int, steps: int, wal_factory: WalFactory) -> None:
        self.rng = rng = random.Random(seed)
        self.seed = seed
        self.steps = steps
        self.wal_factory = wal_factory
        self.result = Result(seed)
        self.partition_count = rng.randint(1, 4)
        self.checker = Checker(self.partition_count)
        self.producers = [
            Producer(
                i, idempotent=rng.random() < 0.7, partition=rng.randrange(self.partition_count)
            )
            for i in range(rng.randint(1, 5))
        ]
        self.settings = Settings(
            data_dir=Path("simulation-has-no-disk"),
            metadata_url="sqlite:///:memory:",
            object_store_url="memory://",
            upload_interval_ms=rng.choice([20, 200, 2_000]),
            upload_bytes=rng.choice([2_000, 16_000, 256_000]),
            message_max_bytes=16_000,
            log_cache_bytes=rng.choice([0, 4_000, 1 << 20]),
            memory_budget_bytes=rng.choice([200_000, 8 << 20]),
            wal_backlog_bytes=rng.choice([60_000, 1 << 30]),
            retention_check_interval_ms=rng.choice([100, 5_000]),
            retention_bytes=rng.choice([-1, -1, 20_000]),
            segment_bytes=rng.choice([1 << 30, 5_000]),
            object_store_request_timeout_ms=2_000,
            shutdown_timeout_ms=5_000,
        )
        self.wal_capacity = rng.choice([1 << 40, 1 << 40, 120_000])
        self.world: World
        self.failure: BaseException | None = None  # a violation a producer task found
        self.doing = "opening the metadata store"  # the phase a budget overrun names

    def log(self, line: str) -> None:
        now = asyncio.get_running_loop().time()
        self.result.trace.append(f"{now:10.3f} {line}")

    # -- the run -----------------------------------------------------------------------

    async def run(self) -> Result:
        store = open_metadata_store(self.settings.resolved_metadata_url, runner=InlineRunner())
        await store.open()
        await store.create_topic(TOPIC, self.partition_count, {})
        try:
            await self._run(store)
        except Violation as violation:
            self.result.violation = str(violation)
            self.log(f"VIOLATION {violation}")
            await cancel_all_tasks()
        except Exception as exc:  # noqa: BLE001 - an engine error the checkers did not expect
            self.result.violation = f"unexpected {type(exc).__name__}: {exc}"
            self.result.trace.extend(traceback.format_exc().splitlines())
            await cancel_all_tasks()
        finally:
            await store.close()
        return self.result

    async def _run(self, store: MetadataStore) -> None:
        rng = self.rng
        self.world = World(
            self.settings,
            store,
            VirtualClock(asyncio.get_running_loop()),  # type: ignore[arg-type]
            self.wal_capacity,
            object_latency_ms=rng.choice([0, 1, 20]),
            wal_sync_ms=rng.choice([0.5, 2, 10]),
            wal_factory=self.wal_factory,
        )
        await self._start()
        actions = [
            (40, self._produce),
            (20, self._read),
            (6, self._upload),
            (3, self._delete_records),
            (2, self._retention),
            (4, self._wal_fault),
            (4, self._object_fault),
            (1, self._crash),
        ]
        weights = [w for w, _ in actions]
        for step in range(self.steps):
            _, action = rng.choices(actions, weights)[0]
            self.doing = f"step {step}: {action.__name__.lstrip('_')}"
            try:
                await asyncio.wait_for(action(), ACTION_DEADLINE_S)
            except TimeoutError:
                raise Violation(
                    f"{action.__name__} did not finish within {ACTION_DEADLINE_S} s"
                ) from None
            if self.failure is not None:
                raise self.failure
            self._check_watermarks("step")
            await asyncio.sleep(rng.choice([0, 0, 0.001, 0.005, 0.05, 0.5]))
        self.doing = "settling"
        await self._settle()
        self.doing = "stopping cleanly"
        await self.world.engine.close()
        self.log("clean stop")
        self.doing = "restarting after the clean stop"
        await self._start()
        await self._verify_all("after a clean restart")
        self.doing = "ending the run"
        await cancel_all_tasks()

    async def _start(self) -> None:
        engine = await self.world.start()
        self.engine: StorageEngine = engine
        self.log(f"start (incarnation {self.world.crashes})")
        self._check_watermarks("start")
        await self._verify_all("at start")

    # -- actions -----------------------------------------------------------------------

    async def _produce(self) -> None:
        idle = [p for p in self.producers if p.task is None or p.task.done()]
        if not idle:
            return
        producer = self.rng.choice(idle)
        if producer.batch is None:
            producer.batch = self._new_batch(producer)
        producer.task = asyncio.create_task(self._send(producer, producer.batch))
        producer.task.add_done_callback(self._producer_done)

    def _producer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and isinstance(task.exception(), Violation):
            self.failure = task.exception()

    def _new_batch(self, producer: Producer) -> bytes:
        rng = self.rng
        count = rng.randint(1, 4)
        values = [
            f"{self.seed}/{producer.index}/{producer.sequence}/{i}/".encode()
            + b"x" * rng.choice([0, 10, 300, 3_000])
            for i in range(count)
        ]
        if producer.idempotent:
            data = batch_bytes(values, 1000 + producer.index, 0, producer.sequence)
            producer.sequence += count
        else:
            data = batch_bytes(values)
            producer.sequence += 1
        self.checker.sent(body(data), producer.idempotent)
        return data

    async def _send(self, producer: Producer, data: bytes) -> None:
        """One attempt to send the producer's batch; it is retried until acknowledged."""
        engine = self.engine
        index = producer.partition
        partition = engine.partition(TOPIC, index)
        refusal = engine.admission().refusal
        if refusal is not None:
            self.log(f"produce p{index} by {producer.index}: refused")
            return
        try:
            result = engine.append(partition, split_batches(data, self.settings.message_max_bytes))
            if result.durable is not None:
                await result.durable
        except EXPECTED_ERRORS as exc:
            if isinstance(exc, KafkaError) and exc.code.name in (
                "out_of_order_sequence_number",
                "invalid_producer_epoch",
            ):
                raise Violation(
                    f"p{index}: producer {producer.index}'s retry refused: {exc}"
                ) from exc
            self.log(f"produce p{index} by {producer.index}: {type(exc).__name__}")
            return
        self.checker.acknowledged(index, result.base_offset, body(data), partition.high_watermark)
        producer.batch = None
        self.result.acknowledged += 1
        self.log(f"produce p{index} by {producer.index}: acked at {result.base_offset}")

    async def _read(self) -> None:
        rng = self.rng
        index = rng.randrange(self.partition_count)
        partition = self.engine.partition(TOPIC, index)
        start, hw = partition.log_start_offset, partition.high_watermark
        offset = rng.randint(start, hw)
        bytes_max = rng.choice([1, 500, 20_000, 1 << 20])
        try:
            chunks = await self.engine.read(partition, offset, bytes_max)
        except EXPECTED_ERRORS as exc:
            self.log(f"read p{index}@{offset}: {type(exc).__name__}")
            return
        if offset < hw and not chunks and offset >= partition.log_start_offset:
            raise Violation(f"p{index}: read at {offset} below the HW {hw} returned nothing")
        end = self.checker.read(index, offset, hw, chunks)
        self.log(f"read p{index}@{offset}: up to {end}")

    async def _upload(self) -> None:
        try:
            size = await self.engine.upload_once()
        except (*EXPECTED_ERRORS, OSError) as exc:
            self.log(f"upload: {type(exc).__name__}")
            return
        self.log(f"upload: {size} bytes")

    async def _delete_records(self) -> None:
        index = self.rng.randrange(self.partition_count)
        partition = self.engine.partition(TOPIC, index)
        offset = self.rng.randint(partition.log_start_offset, partition.high_watermark)
        try:
            await self.engine.advance_log_start(partition, offset)
        except (*EXPECTED_ERRORS, OSError) as exc:
            self.log(f"delete records p{index} to {offset}: {type(exc).__name__}")
            return
        self.log(f"delete records p{index} to {offset}")

    async def _retention(self) -> None:
        try:
            await self.engine.enforce_retention(self.world.clock.wall_ms())
        except (*EXPECTED_ERRORS, OSError) as exc:
            self.log(f"retention: {type(exc).__name__}")
            return
        self.log("retention")

    async def _wal_fault(self) -> None:
        wal, roll = self.world.wal, self.rng.random()
        if roll < 0.3:
            wal.write_error = OSError(errno.EIO, "injected write error")
            self.log("wal: writes fail")
        elif roll < 0.5:
            wal.sync_error = OSError(errno.EIO, "injected fsync error")
            self.log("wal: syncs fail")
        elif roll < 0.65:
            wal.stall()
            self.log("wal: stalled")
        else:
            wal.write_error = wal.sync_error = None
            wal.resume()
            self.log("wal: healthy")

    async def _object_fault(self) -> None:
        objects, rng = self.world.objects, self.rng
        roll = rng.random()
        if roll < 0.3:
            objects.failing = {op for op in ("put", "get", "delete") if rng.random() < 0.5}
            self.log(f"objects: failing {sorted(objects.failing)}")
        elif roll < 0.45:
            objects.lose_put_replies = True
            self.log("objects: put replies lost")
        elif roll < 0.6:
            objects.stall()
            self.log("objects: stalled")
        else:
            self._heal_objects()
            self.log("objects: healthy")

    def _heal_objects(self) -> None:
        objects = self.world.objects
        objects.failing = set()
        objects.lose_put_replies = False
        objects.resume()

    async def _crash(self) -> None:
        rng = self.rng
        keep = rng.randint(0, len(self.world.medium.unsynced))
        step = self.doing
        self.doing = f"{step}: cancelling the crashed process's tasks"
        await self.world.crash(keep, lambda key: rng.random() < 0.5)
        self.result.crashes += 1
        self.log(f"CRASH (kept {keep} unsynced WAL entries)")
        for producer in self.producers:
            producer.task = None  # its batch is in doubt: sent again after the restart
        self.doing = f"{step}: restarting"
        await self._start()
        self.doing = step

    # -- checks ------------------------------------------------------------------------

    def _check_watermarks(self, when: str) -> None:
        for index in range(self.partition_count):
            partition = self.engine.partition(TOPIC, index)
            self.checker.watermarks(
                index, partition.high_watermark, partition.log_start_offset, when
            )

    async def _settle(self) -> None:
        """Heal every fault and let the producers finish."""
        wal = self.world.wal
        wal.write_error = wal.sync_error = None
        wal.resume()
        self._heal_objects()
        for _ in range(50):
            if all(p.batch is None for p in self.producers):
                break
            await self._produce()
            await asyncio.sleep(0.2)
        self.log("settled")

    async def _verify_all(self, when: str) -> None:
        """Read every partition from its log start to its high watermark."""
        for index in range(self.partition_count):
            await self._verify(index, when)

    async def _verify(self, index: int, when: str) -> None:
        partition = self.engine.partition(TOPIC, index)
        start, hw = partition.log_start_offset, partition.high_watermark
        offset = start
        bodies: list[tuple[int, bytes]] = []
        failures = 0
        while offset < hw:
            try:
                chunks = await self.engine.read(partition, offset, 1 << 20)
            except EXPECTED_ERRORS as exc:
                if partition.log_start_offset > offset:
                    # Retention moved the log start past the offset meanwhile (its
                    # object may be gone under the read): go on from there; the scan is
                    # no longer a whole log (see below).
                    offset = partition.log_start_offset
                    continue
                # The object store may be failing still; a verification needs it.
                failures += 1
                if failures > 20:
                    raise Violation(f"p{index}: data at {offset} unreadable {when}: {exc}") from exc
                self._heal_objects()
                await asyncio.sleep(1.5)
                continue
            if not chunks:
                raise Violation(f"p{index}: read at {offset} below the HW {hw} returned nothing")
            offset = self.checker.read(index, offset, hw, chunks)
            for chunk in chunks:
                view = memoryview(chunk)
                position = 0
                for header in iter_batch_headers(view):
                    bodies.append(
                        (header.base_offset, body(view[position : position + header.total_bytes]))
                    )
                    position += header.total_bytes
        if partition.log_start_offset != start:
            return  # retention moved on meanwhile: the scan is not a whole log
        self.checker.full_scan(index, start, hw, bodies)
        self.log(f"verified p{index} [{start}, {hw}) {when}")


def simulate(
    seed: int,
    steps: int = 200,
    wal_factory: WalFactory = MemoryWal,
    time_budget_s: float | None = None,
    iteration_budget: float | None = None,
) -> Result:
    """Run one seed to the end (or its first violation, or its budget: a run that goes
    past its virtual time or loop iterations is a violation naming what it was doing)."""
    budget = run_budget(steps)
    loop = VirtualTimeLoop(
        time_budget_s if time_budget_s is not None else budget.virtual_s,
        iteration_budget if iteration_budget is not None else budget.iterations,
    )
    simulation = Simulation(seed, steps, wal_factory)
    # The engine logs every injected fault; thousands of seeds would drown a test log.
    engine_log = logging.getLogger("contextplane")
    level = engine_log.level
    engine_log.setLevel(logging.CRITICAL + 1)
    try:
        result = loop.run_until_complete(simulation.run())
    except BudgetExceeded as exc:
        result = _over_budget(simulation, loop, exc)
    finally:
        engine_log.setLevel(level)
        loop.close()
    result.virtual_s, result.iterations = loop.time(), loop.iterations
    return result


def _over_budget(simulation: Simulation, loop: VirtualTimeLoop, exc: BudgetExceeded) -> Result:
    """The result of a run stopped by its budget: what it was doing, and where every task
    waits (the spin is among them). The tasks are abandoned with the loop."""
    result = simulation.result
    result.violation = f"{exc} while {simulation.doing}"
    result.trace.append(f"{loop.time():10.3f} BUDGET {result.violation}; tasks:")
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # abandoned on purpose
        result.trace.append(f"    {task.get_name()}: {' -> '.join(_awaiting(task))}")
    return result


def _awaiting(task: asyncio.Task[object]) -> list[str]:
    """Where a suspended task waits: each coroutine of its await chain, outermost first
    (Task.get_stack shows only the outermost)."""
    where = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        where.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return where
