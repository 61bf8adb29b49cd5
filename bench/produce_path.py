"""In-process cost of handling a small Produce request on the event loop, against a
git ref's Produce handler.

    .venv/bin/python -m bench.produce_path [--baseline main] [--rounds 7] [--requests 2000]

One broker in this process (tests/support/inprocess.py, file:// store, the start-up heap
frozen as `contextplane up` freezes it); on its loop, `--requests` Produce requests of
one partition and one lz4 batch of one 100-byte record (what librdkafka sends with
`linger.ms=1` at 2,000 msg/s), at v9 and v11, go through what the connection does
between reading a frame and writing its response: `decode_request`, `Pipeline.dispatch`
(the Produce handler, the append) and the acknowledgement's response bytes, at most
`IN_FLIGHT` owed at a time. The figure is the loop thread's CPU time (`time.thread_time`)
per request; the WAL's sync thread is not counted. The baseline is `--baseline`'s
`broker/handlers/produce.py` with its `protocol/record_validation.py`, and its
`storage/appender.py` and `storage/file_wal.py` (the running broker's appender and WAL
take the baseline's classes for its rounds: methods only, the objects' state is
shared), loaded from git beside the current ones (everything else is the current
tree's); rounds alternate
between the two, so load from other work falls on both alike. Prints the median per
variant and the current one's ratio to the baseline (below 1 is cheaper).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import inspect
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.request_path import create_topic, request_frame
from conformance.wire import encode_batch
from contextplane.broker.context import ConnectionInfo
from contextplane.broker.gc_policy import settle_after_start
from contextplane.protocol.codec import decode_request
from tests.support.inprocess import InProcessBroker

PRODUCE = 0
TOPIC = "produce-path"
VALUE = bytes(range(100))
IN_FLIGHT = 16


def frames(count: int, version: int) -> list[bytes]:
    out = []
    for i in range(count):
        batch = encode_batch([VALUE], compression="lz4", timestamp=int(time.time() * 1000))
        fields = {
            "transactional_id": None,
            "acks": -1,
            "timeout": 30_000,
            "topic_data": [{"name": TOPIC, "partition_data": [{"index": 0, "records": batch}]}],
        }
        out.append(request_frame(PRODUCE, version, i, fields)[4:])
    return out


async def handle_all(broker: Any, requests: list[bytes]) -> float:
    """Loop CPU seconds to handle `requests`, responses included. Like a connection, it
    handles requests in turn and awaits their responses in order, at most `IN_FLIGHT`
    owed (a producer's pipeline at this rate)."""
    pipeline = broker.pipeline
    info = ConnectionInfo("127.0.0.1:1")
    owed: list[Any] = []
    started = time.thread_time()
    for frame in requests:
        reply = await pipeline.dispatch(decode_request(frame), info)
        owed.append(reply.later if reply.later is not None else reply.body)
        if len(owed) >= IN_FLIGHT:
            for result in owed:
                _check(await result if inspect.isawaitable(result) else result)
            owed.clear()
    for result in owed:
        _check(await result if inspect.isawaitable(result) else result)
    return time.thread_time() - started


def _check(body: Any) -> None:
    assert isinstance(body, list), body
    frame = b"".join(body)
    # One topic, one partition: its error code follows the header, counts and name.
    assert struct.unpack_from(">h", frame, frame.index(TOPIC.encode()) + len(TOPIC) + 5)[0] == 0


# The modules this bench compares, as `--baseline` has them and as they are now.
COMPARED = (
    "broker/handlers/produce.py",
    "protocol/record_validation.py",
    "storage/appender.py",
    "storage/file_wal.py",
)


def baseline_module(ref: str, path: str) -> Any:
    """`src/contextplane/<path>` at git `ref`, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{ref}:src/contextplane/{path}"], capture_output=True, check=True
    ).stdout
    name = "baseline_" + path.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{ref}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own source
    return module


@dataclasses.dataclass(frozen=True)
class Variant:
    handler: Any  # the Produce handler
    appender: type  # the storage engine's Appender class
    wal: type  # FileWal


def variants(ref: str) -> dict[str, Variant]:
    """Per variant: `ref`'s Produce handler (with `ref`'s record check), appender and
    WAL classes, and now's."""
    from contextplane.broker.handlers import produce
    from contextplane.storage import appender, file_wal

    old_produce = baseline_module(ref, COMPARED[0])
    old_produce.validate_records = baseline_module(ref, COMPARED[1]).validate_records
    old_appender = baseline_module(ref, COMPARED[2]).Appender
    old_wal = baseline_module(ref, COMPARED[3]).FileWal
    return {
        ref: Variant(old_produce.produce, old_appender, old_wal),
        "current": Variant(produce.produce, appender.Appender, file_wal.FileWal),
    }


def use(broker: Any, variant: Variant) -> None:
    """Between rounds (nothing in flight): the variant's handler, and its methods on the
    broker's own appender and WAL objects."""
    routes = broker.pipeline.routes
    routes[PRODUCE] = dataclasses.replace(routes[PRODUCE], handler=variant.handler)
    storage = broker.storage
    storage._appender.__class__ = variant.appender
    storage.wal.__class__ = variant.wal


def main(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--version", type=int, action="append")
    parser.add_argument("--baseline", default="main", help="the git ref to compare with")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        broker = InProcessBroker(Path(tmp), object_store=f"file://{tmp}/objects").start()
        thresholds = gc.get_threshold()
        freezer = None
        try:
            create_topic(broker.bootstrap, TOPIC)
            freezer = settle_after_start()  # as `contextplane up` does: the start-up heap frozen
            return run(broker, args.version or [9, 11], args)
        finally:
            broker.stop()
            # This process may go on (a test run): its collector as it was before.
            if freezer is not None:
                freezer.uninstall()
            gc.unfreeze()
            gc.set_threshold(*thresholds)


def run(broker: InProcessBroker, versions: list[int], args: Any) -> dict[int, dict[str, float]]:
    compared = variants(args.baseline)
    names = list(compared)
    results: dict[tuple[str, int], list[float]] = {}
    for round_ in range(args.rounds + 1):
        for name in names if round_ % 2 == 0 else names[::-1]:
            use(broker.broker, compared[name])
            for version in versions:
                requests = frames(args.requests, version)
                cpu = broker.call(handle_all(broker.broker, requests), 120)
                if round_:  # the first round warms caches
                    results.setdefault((name, version), []).append(cpu / args.requests * 1e6)
    summary = {}
    for version in versions:
        medians = {name: statistics.median(results[(name, version)]) for name in names}
        medians["ratio"] = medians["current"] / medians[names[0]]
        summary[version] = medians
        print(
            f"v{version}: {names[0]} {medians[names[0]]:.1f} µs, current "
            f"{medians['current']:.1f} µs, current ÷ {names[0]} {medians['ratio']:.2f} "
            f"(loop CPU per request, median of {args.rounds} rounds)"
        )
    return summary


if __name__ == "__main__":
    main()
