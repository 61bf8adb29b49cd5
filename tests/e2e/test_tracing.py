"""OpenTelemetry traces end to end: a broker process configured with
`otel.exporter.otlp.endpoint` exports spans to a real OTLP/HTTP receiver (its bodies
decoded with opentelemetry-proto) while confluent-kafka produces and fetches (a record
carrying a `traceparent` is linked to its producer's span); the schema registry's
requests are server spans continuing the caller's `traceparent`; a tool call is a client
span whose context reaches the endpoint; a collector that is dead, or that never
answers, leaves produce working; with tracing off a broker serves produce and fetch
without importing OpenTelemetry."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.services.actions.client import ActionsClient
from tests.support.actions import CountingEndpoint, ExecutorProcess
from tests.support.broker import BrokerProcess
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.registry import RegistryProcess
from tests.support.wait import wait_until

SERVER = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER
CLIENT = 3
STATUS_ERROR = 2
SPANS_S = 60.0
PRODUCER_TRACE = "0af7651916cd43dd8448eb211c80319c"
PRODUCER_SPAN = "b7ad6b7169203331"
TRACEPARENT = (
    f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"  # the batch processor exports every 5 s by default
)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    running = OtlpReceiver().start()
    try:
        yield running
    finally:
        running.stop()


def _produce(
    bootstrap: str, topic: str, values: list[bytes], headers: list[tuple[str, str]] | None = None
) -> list[ck.Message]:
    producer = ck.Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "client.id": "traced-producer"}
    )
    delivered: list[ck.Message] = []
    for value in values:
        producer.produce(
            topic,
            value=value,
            headers=headers,
            on_delivery=lambda err, msg: delivered.append(msg),
        )
    assert producer.flush(30) == 0
    return delivered


def _consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"traced-{topic}",
            "auto.offset.reset": "earliest",
            "client.id": "traced-consumer",
        }
    )
    consumer.assign([ck.TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    try:

        def got_all() -> bool:
            for message in consumer.consume(count - len(values), 0.5):
                if message.error() is None:
                    values.append(message.value())
            return len(values) >= count

        wait_until(got_all, 30, f"{count} records consumed from {topic}")
    finally:
        consumer.close()
    return values


def _create(bootstrap: str, topic: str, **config: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(30)


def test_produce_and_fetch_spans_reach_the_collector(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    broker = BrokerProcess(
        tmp_path / "broker",
        settings={
            "otel.exporter.otlp.endpoint": receiver.endpoint,
            # Reads go to objects once uploaded: the fetch's object GETs are spans too.
            "upload.interval.ms": "100",
            "log.cache.bytes": "1",
        },
    ).start()
    try:
        _create(broker.bootstrap, "traced")
        _create(broker.bootstrap, "small", **{"max.message.bytes": "1000"})
        delivered = _produce(broker.bootstrap, "traced", [b"one", b"two", b"three"])
        assert all(message.error() is None for message in delivered)
        # A record carrying its producer's W3C context: the produce span links to it.
        linked = _produce(broker.bootstrap, "linked", [b"v"], [("traceparent", TRACEPARENT)])
        assert linked[0].error() is None
        # What a client names is cut in a span: a client id of 2,000 characters.
        long_id = ck.Producer({"bootstrap.servers": broker.bootstrap, "client.id": "c" * 2000})
        long_id.produce("long-client", value=b"v")
        assert long_id.flush(30) == 0
        refused = _produce(broker.bootstrap, "small", [b"x" * 5000])
        assert refused[0].error().code() == ck.KafkaError.MSG_SIZE_TOO_LARGE
        assert _consume(broker.bootstrap, "traced", 3) == [b"one", b"two", b"three"]

        produced = wait_until(
            lambda: (
                _total_records(receiver.named("produce traced")) >= 3
                and receiver.named("produce traced")
            ),
            SPANS_S,
            "the produce spans of topic traced",
        )
        for span in produced:
            assert span.kind == SERVER
            assert span.parent_span_id == ""  # a request is a root
            assert span.scope == "contextplane.broker"
            assert span.resource["service.name"] == "contextplane"
            assert span.status_code != STATUS_ERROR
            attributes = span.attributes
            assert attributes["messaging.system"] == "kafka"
            assert attributes["messaging.operation.name"] == "produce"
            assert attributes["messaging.operation.type"] == "send"
            assert attributes["messaging.destination.name"] == "traced"
            assert attributes["messaging.destination.partition.id"] == "0"
            assert attributes["messaging.client.id"] == "traced-producer"
            assert attributes["enduser.id"] == "User:ANONYMOUS"
            assert attributes["client.address"] == "127.0.0.1"
            assert "error.type" not in attributes
            # acks=all: the wait for the WAL's group commit is a child span.
            waits = [s for s in receiver.children_of(span) if s.name == "acknowledgement wait"]
            assert len(waits) == 1 and waits[0].trace_id == span.trace_id

        (with_link,) = wait_until(
            lambda: receiver.named("produce linked"), SPANS_S, "the linked produce's span"
        )
        assert with_link.links == [(PRODUCER_TRACE, PRODUCER_SPAN)]
        assert all(span.links == [] for span in produced)
        (long_client,) = wait_until(
            lambda: receiver.named("produce long-client"), SPANS_S, "the long client id's span"
        )
        assert long_client.attributes["messaging.client.id"] == "c" * 1024
        (too_large,) = wait_until(
            lambda: receiver.named("produce small"), SPANS_S, "the refused produce's span"
        )
        assert too_large.status_code == STATUS_ERROR
        assert too_large.attributes["error.type"] == "MESSAGE_TOO_LARGE"
        assert too_large.attributes["contextplane.kafka.error_code"] == 10

        fetched = wait_until(
            lambda: [
                s
                for s in receiver.named("fetch traced")
                if s.attributes["contextplane.fetch.record_bytes"]
            ],
            SPANS_S,
            "a fetch span that returned records",
        )
        span = fetched[0]
        assert span.kind == SERVER
        assert span.attributes["messaging.operation.name"] == "fetch"
        assert span.attributes["messaging.operation.type"] == "receive"
        assert span.attributes["messaging.client.id"] == "traced-consumer"
        assert span.attributes["messaging.destination.partition.id"] == "0"

        # Once uploaded (the log cache holds nothing), a new consumer's fetch reads the
        # object store: its GETs are children of the fetch span.
        def object_read_under_a_fetch() -> bool:
            assert _consume(broker.bootstrap, "traced", 3) == [b"one", b"two", b"three"]
            return any(
                child.name == "object get"
                for fetch in receiver.named("fetch traced")
                for child in receiver.children_of(fetch)
            )

        wait_until(object_read_under_a_fetch, SPANS_S, "an object GET span under a fetch", 1.0)
        # Only Produce and Fetch are traced: no span for Metadata, heartbeats, commits.
        assert {s.name.split()[0] for s in receiver.spans} <= {
            "produce",
            "fetch",
            "acknowledgement",
            "object",
        }
    finally:
        broker.stop()


def _total_records(spans: list[ReceivedSpan]) -> int:
    return sum(span.attributes["messaging.batch.message_count"] for span in spans)


def test_registry_requests_are_server_spans_continuing_the_callers_trace(
    receiver: OtlpReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = BrokerProcess(tmp_path / "broker").start()
    # The standard variables configure a service's tracing (the registry's process
    # inherits them).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "registry-under-test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    registry = RegistryProcess(broker.bootstrap, tmp_path / "registry.log").start()
    try:
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        request = urllib.request.Request(
            f"{registry.url}/subjects",
            headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{registry.url}/schemas/ids/12345", timeout=30)
        assert missing.value.code == 404

        def spans_of(path: str) -> list[ReceivedSpan]:
            return [s for s in receiver.spans if s.attributes.get("url.path") == path]

        (listed,) = wait_until(lambda: spans_of("/subjects"), SPANS_S, "the GET /subjects span")
        assert listed.kind == SERVER
        assert listed.trace_id == trace_id and listed.parent_span_id == "00f067aa0ba902b7"
        assert listed.resource["service.name"] == "registry-under-test"
        assert listed.scope == "contextplane-schema-registry"
        assert listed.attributes["http.request.method"] == "GET"
        assert listed.attributes["http.response.status_code"] == 200
        (absent,) = wait_until(
            lambda: spans_of("/schemas/ids/12345"), SPANS_S, "the GET of a missing id's span"
        )
        assert absent.parent_span_id == "" and absent.trace_id != trace_id
        assert absent.attributes["http.response.status_code"] == 404
        assert absent.status_code != STATUS_ERROR  # a 4xx is the client's, not a failure
    finally:
        registry.stop()
        broker.stop()


TOOLS = """
[tools.refund]
endpoint = "{url}"
idempotent = true
timeout_ms = 60000
policy = 'permit(principal, action, resource == Tool::"refund");'
"""


def test_a_tool_call_is_a_client_span_whose_context_reaches_the_endpoint(
    receiver: OtlpReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = BrokerProcess(tmp_path / "broker").start()
    endpoint = CountingEndpoint(honours_key=True)
    tools = tmp_path / "tools.toml"
    tools.write_text(TOOLS.format(url=endpoint.url))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.endpoint}/v1/traces")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    running = ExecutorProcess(
        broker.bootstrap, tools, tmp_path, tmp_path / "executor.log", transactional_id="traced"
    ).start()
    try:
        outcome = ActionsClient(broker.bootstrap, running.url).call(
            "refund", {"account": "a1", "amount": 5}, "refund-traced"
        )
        assert outcome.state == "done"
        (span,) = wait_until(lambda: receiver.named("call refund"), SPANS_S, "the call's span")
        assert span.kind == CLIENT
        assert span.resource["service.name"] == "contextplane-executor"
        assert span.attributes["contextplane.tool.name"] == "refund"
        assert span.attributes["http.response.status_code"] == 200
        assert span.status_code != STATUS_ERROR
        # The endpoint was called within the span: its traceparent names it.
        ((version, trace_id, parent_id, flags),) = [t.split("-") for t in endpoint.traceparents]
        assert (version, trace_id, parent_id) == ("00", span.trace_id, span.span_id)
        assert int(flags, 16) & 1  # sampled
        # The ledger read the client polled is a server span of the executor's HTTP.
        wait_until(
            lambda: any(s.attributes.get("http.route") == "/v1/ledger" for s in receiver.spans),
            SPANS_S,
            "a GET /v1/ledger span",
        )
    finally:
        running.stop()
        endpoint.close()
        broker.stop()


def test_a_dead_or_silent_collector_leaves_produce_working(tmp_path: Path) -> None:
    # One port nothing listens on, one that accepts connections and never answers.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1024)
    try:
        for endpoint in (dead, f"http://127.0.0.1:{silent.getsockname()[1]}"):
            broker = BrokerProcess(
                tmp_path / f"broker-{endpoint.rsplit(':', 1)[1]}",
                settings={"otel.exporter.otlp.endpoint": endpoint},
            ).start()
            try:
                values = [f"record {i}".encode() for i in range(200)]
                delivered = _produce(broker.bootstrap, "unobserved", values)
                assert [m.error() for m in delivered] == [None] * len(values)
                assert _consume(broker.bootstrap, "unobserved", len(values)) == values
            finally:
                broker.stop()
    finally:
        silent.close()


TRACING_OFF = """
import sys
from pathlib import Path
import confluent_kafka as ck
from tests.support.inprocess import InProcessBroker

broker = InProcessBroker(Path(sys.argv[1])).start()
try:
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    producer.produce("untraced", value=b"v")
    assert producer.flush(30) == 0
    consumer = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g"})
    consumer.assign([ck.TopicPartition("untraced", 0, 0)])
    for _ in range(60):
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            break
    assert message is not None and message.value() == b"v"
    consumer.close()
finally:
    broker.stop()
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""


def test_tracing_off_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", TRACING_OFF, str(tmp_path / "data")],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
