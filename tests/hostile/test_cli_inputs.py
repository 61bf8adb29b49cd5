"""Hostile records on `copilot.decisions`, written by someone other than the SDK, read by
`contextplane trace` and `contextplane replay` against a real broker (in process): a
megabyte of nesting, fields of the wrong type, positions no record can have (a partition
past int32, a negative one, an offset past int64, a topic name Kafka refuses; a
changelog record that is another record), an id
longer than a header takes, a ledger key nested too deeply, and a thousand links to a
topic that does not exist. Each is answered as a missing link or a decision not replayed,
naming the problem, never a traceback, and a trace ends by its deadline however many
links a decision names.

And `contextplane cost`'s inputs: TOML files nested past the parser's depth, benchmark
tables with partition counts of 0 or thousands of digits and figures past the rate bound,
a --metrics-url whose counters are NaN, infinite or negative, and one that trickles a
byte at a time forever: each a one-line error naming the file or URL."""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.cli import cost_inputs
from contextplane.cli.main import main
from contextplane.services.actions import ledger
from contextplane.services.trace.event import DECISIONS_TOPIC
from tests.support.inprocess import InProcessBroker

TIMEOUT_S = 30
DEEP = b"[" * 500_000  # under max.message.bytes; json.loads recurses past Python's limit
LONG_ID = "d" * 2000  # past the 1,024 characters a decision id header takes
LINKS = 1000
COPILOT = "def decide(input, context, tools, decision):\n    decision.outcome = 'ok'\n"


def _changed_by(topic: Any, partition: Any, offset: Any) -> bytes:
    read = {"view": "v", "entity": "e", "found": True}
    read["changed_by"] = {"topic": topic, "partition": partition, "offset": offset}
    return json.dumps({"reads": [read]}).encode()


def _changelog(topic: Any, partition: Any, offset: Any) -> bytes:
    read = {"view": "v", "entity": "e", "found": True}
    read["changelog"] = {"topic": topic, "partition": partition, "offset": offset}
    return json.dumps({"reads": [read]}).encode()


HOSTILE: dict[str, bytes] = {
    "deep": DEEP,  # first: offset 0 of the decisions topic
    # A read's changelog record at a position that holds another record, or none can.
    "changelog-elsewhere": _changelog(DECISIONS_TOPIC, 0, 0),
    "changelog-past-int64": _changelog(DECISIONS_TOPIC, 0, 2**70),
    "deep-reads": b'{"reads":' + DEEP + b"}",
    "wrong-types": json.dumps({"reads": 7, "tool_calls": 5, "write_backs": "w"}).encode(),
    "partition-past-int32": _changed_by(DECISIONS_TOPIC, 2**40, 0),
    "negative-partition": _changed_by(DECISIONS_TOPIC, -1, 0),
    "offset-past-int64": _changed_by(DECISIONS_TOPIC, 0, 2**70),
    "empty-topic": _changed_by("", 0, 0),
    "request-past-int32": json.dumps(
        {"tool_calls": [{"key": "k", "tool": "t", "request": {"partition": 2**40, "offset": 0}}]}
    ).encode(),
    LONG_ID: json.dumps({"outcome": "ok"}).encode(),
    # Its call's key is looked for on copilot.ledger, where a record's key is nested too deep.
    "ledger-poison": json.dumps({"tool_calls": [{"key": "k", "tool": "t"}]}).encode(),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    """The broker's address, and each hostile decision's offset on partition 0."""
    broker = InProcessBroker(tmp_path_factory.mktemp("decisions") / "broker").start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(DECISIONS_TOPIC, 1, 1)]).values():
        future.result(TIMEOUT_S)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    offsets: dict[str, int] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        offsets[message.key().decode()] = message.offset()

    # Each a topic of its own: a trace asks the metadata of a topic once.
    many = [
        {"found": True, "changed_by": {"topic": f"nosuch-{n}", "partition": 0, "offset": 0}}
        for n in range(LINKS)
    ]
    records = {**HOSTILE, "many-links": json.dumps({"reads": many}).encode()}
    producer.produce(ledger.LEDGER_TOPIC, key=DEEP[:5000], value=b"{}")
    try:
        for key, value in records.items():
            producer.produce(DECISIONS_TOPIC, key=key.encode(), value=value, on_delivery=delivered)
            producer.flush(TIMEOUT_S)
        yield broker.bootstrap, offsets
    finally:
        broker.stop()


def _links(tree: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield tree
    for child in tree["children"]:
        yield from _links(child)


@pytest.mark.parametrize(
    ("decision_id", "why"),
    [
        ("deep", "not a decision (not a JSON object)"),
        ("deep-reads", "not a decision (not a JSON object)"),
        ("partition-past-int32", "not a record position"),
        ("negative-partition", "not a record position"),
        ("offset-past-int64", "not a record position"),
        ("empty-topic", "not a record position"),
        ("request-past-int32", "not a record position"),
        ("ledger-poison", "key not in copilot.ledger"),
        ("changelog-elsewhere", "the record there is another's: key deep"),
        ("changelog-past-int64", "not a record position"),
    ],
)
def test_trace_names_what_cannot_be_followed(
    hostile: tuple[str, dict[str, int]],
    decision_id: str,
    why: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap, _ = hostile
    status = main(["trace", decision_id, "--bootstrap-server", bootstrap, "--output", "json"])
    captured = capsys.readouterr()
    tree = json.loads(captured.out)
    # A record that is not a decision is not found (1); a decision's dead links are (0).
    assert status == (1 if tree["status"] == "missing" else 0), captured.err
    assert (tree["status"] == "missing") == decision_id.startswith("deep")
    whys = [link["why"] for link in _links(tree) if link["status"] == "missing"]
    assert any(why in (text or "") for text in whys), whys


def test_trace_of_an_id_that_is_not_utf8_is_an_argument_error(
    hostile: tuple[str, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A shell passes any bytes: Python gives the ones UTF-8 cannot decode as lone
    surrogates (surrogateescape), which no record key can hold."""
    bootstrap, _ = hostile
    status = main(["trace", "d-\udcff", "--bootstrap-server", bootstrap])
    captured = capsys.readouterr()
    assert status == 2, captured.err
    assert "decision id" in captured.err and "UTF-8" in captured.err
    assert "Traceback" not in captured.err


def test_trace_of_fields_of_the_wrong_type_shows_the_decision(
    hostile: tuple[str, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap, _ = hostile
    status = main(["trace", "wrong-types", "--bootstrap-server", bootstrap, "--output", "json"])
    tree = json.loads(capsys.readouterr().out)
    assert status == 0
    assert (tree["status"], tree["children"]) == ("found", [])


def test_trace_of_a_thousand_dead_links_ends_by_its_deadline(
    hostile: tuple[str, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each link to another topic that does not exist costs a metadata round trip: past
    the deadline the rest are not asked, each named as not read in time."""
    bootstrap, _ = hostile
    argv = ["trace", "many-links", "--bootstrap-server", bootstrap, "--output", "json"]
    status = main([*argv, "--timeout", "1"])
    tree = json.loads(capsys.readouterr().out)
    assert status == 0
    reads = tree["children"]
    assert len(reads) == LINKS
    [source] = [c for c in reads[-1]["children"] if c["kind"] == "source-record"]
    assert source["why"] == "not read within 1 s"


@pytest.mark.parametrize(
    ("decision_id", "why"),
    [
        ("deep", "not replayed: value is not JSON (JSON nested too deeply)"),
        ("deep-reads", "not replayed: value is not JSON (JSON nested too deeply)"),
        ("wrong-types", "not replayed: value's reads is not a list"),
        (LONG_ID, "not replayed: decision id: expected 1 to 1024 characters"),
    ],
)
def test_replay_names_a_decision_it_cannot_run(
    hostile: tuple[str, dict[str, int]],
    decision_id: str,
    why: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap, offsets = hostile
    (tmp_path / "hostile_copilot.py").write_text(COPILOT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    offset = offsets[decision_id]
    status = main(
        [
            "replay",
            "--function",
            "hostile_copilot:decide",
            "--from-offset",
            str(offset),
            "--to-offset",
            str(offset + 1),
            "--bootstrap-server",
            bootstrap,
            "--output",
            "json",
        ]
    )
    captured = capsys.readouterr()
    assert status == 1, captured.err
    (result,) = json.loads(captured.out)["results"]
    assert result["note"] == why


@pytest.mark.parametrize(
    "since",
    ["1969-12-31T23:59:59.998Z", "0001-01-01T00:00:00Z"],  # -2: Kafka's "earliest"
)
def test_replay_refuses_a_time_before_the_epoch(
    since: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["replay", "--function", "hostile_copilot:decide", "--bootstrap-server", "127.0.0.1:1"]
    status = main([*argv, "--since", since, "--until", "2030-01-01T00:00:00Z"])
    assert status == 2
    assert f"--since: {since!r} is before 1970-01-01T00:00:00Z" in capsys.readouterr().err


def test_replay_skips_a_request_position_past_int32(
    hostile: tuple[str, dict[str, int]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A call's request position no record can have is not read back: the call is
    compared by key and tool (the replayed function calls nothing, so it differs)."""
    bootstrap, offsets = hostile
    (tmp_path / "hostile_copilot.py").write_text(COPILOT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    offset = offsets["request-past-int32"]
    argv = ["replay", "--function", "hostile_copilot:decide", "--bootstrap-server", bootstrap]
    status = main([*argv, "--from-offset", str(offset), "--to-offset", str(offset + 1)])
    captured = capsys.readouterr()
    assert status == 1, captured.err
    assert "1 decisions replayed" in captured.out and "1 differing" in captured.out
    assert captured.err == ""


# `contextplane cost`'s files and --metrics-url, each served or written by an attacker.
NESTED_TOML = {
    "arrays": "partitions = " + "[" * 100_000 + "]" * 100_000 + "\n",
    "inline tables": "partitions = " + "{a=" * 50_000 + "1" + "}" * 50_000 + "\n",
}
BENCH_HEAD = "| row | contextplane s3:// |\n|---|---|\n"
GETS_ROW = "| Object GETs per GiB read (after restart), 100 partitions | 5 |\n"


@pytest.mark.parametrize("nesting", sorted(NESTED_TOML))
@pytest.mark.parametrize("option", ["--workload", "--prices"])
def test_cost_names_a_toml_file_nested_too_deeply(
    nesting: str, option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hostile.toml"
    path.write_text(NESTED_TOML[nesting])
    status = main(["cost", "--write-mibps", "5", option, str(path)])
    assert status == 2
    assert capsys.readouterr().err.strip().endswith(f"{path}: not a TOML file (nested too deeply)")


@pytest.mark.parametrize(
    "puts_row",
    [
        "| Object PUTs per GiB ingested, 0 partitions | 5 |",  # log(0)
        f"| Object PUTs per GiB ingested, {'9' * 5000} partitions | 5 |",  # past int()'s digits
    ],
)
def test_cost_skips_benchmark_rows_of_no_partition_count(
    puts_row: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(BENCH_HEAD + puts_row + "\n" + GETS_ROW)
    status = main(["cost", "--write-mibps", "5", "--bench-results", str(results)])
    assert status == 2
    assert "no 'PUTs per GiB ingested' rows" in capsys.readouterr().err


def test_cost_refuses_a_benchmark_figure_past_the_rate_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "RESULTS.md"
    puts_row = f"| Object PUTs per GiB ingested, 100 partitions | {'9' * 400} |\n"
    results.write_text(BENCH_HEAD + puts_row + GETS_ROW)
    status = main(["cost", "--write-mibps", "5", "--bench-results", str(results)])
    assert status == 2
    assert "a number is needed, got inf" in capsys.readouterr().err


class _Metrics(http.server.BaseHTTPRequestHandler):
    body = b""  # what a GET answers; empty: a byte a second, forever

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.end_headers()
        if self.body:
            self.wfile.write(self.body)
            return
        try:
            while True:
                self.wfile.write(b"#\n")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:  # the reader gave up
            return

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def _metrics_server(body: bytes) -> Iterator[str]:
    handler = type("Handler", (_Metrics,), {"body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def _counters(puts: str, gets: str, bytes_in: str, bytes_out: str) -> bytes:
    return (
        f'contextplane_object_store_requests_total{{operation="put"}} {puts}\n'
        f'contextplane_object_store_requests_total{{operation="get"}} {gets}\n'
        f"kafka_server_brokertopicmetrics_bytesin_total {bytes_in}\n"
        f"kafka_server_brokertopicmetrics_bytesout_total {bytes_out}\n"
    ).encode()


@pytest.mark.parametrize(
    ("counters", "why"),
    [
        (_counters("NaN", "5", "1e12", "1e12"), "PUTs per GiB produced of nan"),
        (_counters("5", "5", "+Inf", "1e12"), "PUTs per GiB produced of 5 / inf"),
        (_counters("-100", "5", "1e12", "1e12"), "PUTs per GiB produced of -100"),
        (_counters("5", "1e300", "1e12", "1e12"), "GETs per GiB read of 1e+300"),
        (_counters("5", "5", "1e12", "1e-300"), "GETs per GiB read of 5 / 9.31323e-310"),
    ],
)
def test_cost_refuses_counters_that_make_no_rate(
    counters: bytes, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with _metrics_server(counters) as url:
        status = main(["cost", "--write-mibps", "5", "--metrics-url", url])
    err = capsys.readouterr().err
    assert status == 1
    assert why in err and "is not a rate from 0 to 10,000,000" in err


def test_cost_gives_up_on_metrics_that_trickle_forever(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each read gets a byte within the socket's timeout: only a deadline for the whole
    answer ends it (1 s here instead of 10)."""
    monkeypatch.setattr(cost_inputs, "METRICS_TIMEOUT_S", 1.0)
    with _metrics_server(b"") as url:
        status = main(["cost", "--write-mibps", "5", "--metrics-url", url])
    assert status == 1
    assert capsys.readouterr().err.strip().endswith(f"{url}: not answered in full within 1 s")
