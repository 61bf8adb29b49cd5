"""What counting record bytes by the client's zone (broker/zones.py) costs Produce and
Fetch, as a ratio of each request's handler time with the counting on to off.

    .venv/bin/python -m bench.zone_bytes [--rounds 8] [--records 3000]

One broker in this process (`broker.rack=a`); each round produces `--records` 1 KiB
records one request each (linger 0, a flush per record) from a client naming its zone
in client.id, then reads them back (a fetch per 100 records at most), with the counting
on and off in alternate rounds (off: the handlers' `count_zone_bytes` replaced by a
no-op). The handler time is the broker's own per-request ring (`localtimems`: the
handler called to returned), whose median per round is taken; prints one JSON line per
round and the on / off ratio of the medians. Also the added call alone, timed in a loop.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import timeit
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import confluent_kafka as ck

from contextplane.broker.handlers import fetch, produce
from contextplane.broker.zones import ZoneLedger
from tests.support.inprocess import InProcessBroker

TOPIC = "zones"
PRODUCE, FETCH = 0, 1


def _no_count(*_: Any) -> None:
    return None


def _handler_ms(broker: InProcessBroker, api_key: int, since: int) -> list[float]:
    assert broker.broker is not None
    times = broker.broker.pipeline.services.stats.requests[api_key]
    rows = times.rows()
    new = min(times.count - since, len(rows))
    return [(r[3] - r[2]) / 1e6 for r in rows[len(rows) - new :]]


def _count(broker: InProcessBroker, api_key: int) -> int:
    assert broker.broker is not None
    times = broker.broker.pipeline.services.stats.requests.get(api_key)
    return times.count if times is not None else 0


def _round(broker: InProcessBroker, records: int, start: int) -> None:
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                            "client.id": "bench,contextplane_az=b"})  # fmt: skip
    for _ in range(records):
        producer.produce(TOPIC, value=b"v" * 1024)
        producer.flush(30)
    consumer = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bench",
                            "client.rack": "b",
                            "max.partition.fetch.bytes": 100 * 1100})  # fmt: skip
    consumer.assign([ck.TopicPartition(TOPIC, 0, start)])
    read = 0
    while read < records:
        message = consumer.poll(5)
        if message is None:
            raise RuntimeError("records not read back")
        read += message.error() is None
    consumer.close()


def _added_call_ns() -> dict[str, float]:
    """The two calls alone, on a connection whose zone is known (the steady state)."""
    ledger = ZoneLedger()
    connection = SimpleNamespace(zone=None)
    ctx: Any = SimpleNamespace(
        connection=connection,
        services=SimpleNamespace(stats=SimpleNamespace(zones=ledger)),
        header=SimpleNamespace(client_id="bench,contextplane_az=b"),
    )
    loops = 200_000
    return {
        "produce_ns": timeit.timeit(lambda: produce.count_zone_bytes(ctx, 1024), number=loops)
        / loops * 1e9,
        "fetch_ns": timeit.timeit(lambda: fetch.count_zone_bytes(ctx, 1024, "b"), number=loops)
        / loops * 1e9,
        "empty_lambda_ns": timeit.timeit(lambda: None, number=loops) / loops * 1e9,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.zone_bytes")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--records", type=int, default=3000)
    args = parser.parse_args()
    counting = (produce.count_zone_bytes, fetch.count_zone_bytes)
    medians: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-zones-") as tmp:
        broker = InProcessBroker(Path(tmp), settings={"broker.rack": "a"}).start()
        try:
            _round(broker, 200, 0)  # warm up: topic created, code paths compiled
            start = 200
            for index in range(args.rounds):
                on = index % 2 == 1
                produce.count_zone_bytes, fetch.count_zone_bytes = (
                    counting if on else (_no_count, _no_count)
                )
                before = {key: _count(broker, key) for key in (PRODUCE, FETCH)}
                _round(broker, args.records, start)
                start += args.records
                line: dict[str, Any] = {"round": index, "counting": on}
                for key, name in ((PRODUCE, "produce"), (FETCH, "fetch")):
                    median = statistics.median(_handler_ms(broker, key, before[key]))
                    medians.setdefault((name, on), []).append(median)
                    line[f"{name}_handler_median_us"] = round(median * 1000, 2)
                print(json.dumps(line), flush=True)
        finally:
            produce.count_zone_bytes, fetch.count_zone_bytes = counting
            broker.stop()
    summary: dict[str, Any] = {"added_call": {k: round(v, 1) for k, v in _added_call_ns().items()}}
    for name in ("produce", "fetch"):
        on = statistics.median(medians[(name, True)])
        off = statistics.median(medians[(name, False)])
        summary[f"{name}_on_to_off"] = round(on / off, 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
