"""What masking costs a consumer's fetch: the same records read with and without a
masking policy, as ratios in one run.

    .venv/bin/python -m bench.masking [--records 50000] [--rounds 3]
        [--formats avro,json,protobuf] [--compression lz4]

One broker process (`contextplane up`) with a PLAINTEXT listener and a SASL_PLAINTEXT
one (PLAIN users `alice` and `copilot`), `contextplane registry` beside it. Per format,
a one-partition topic gets `--records` copilot events (13 fields, ~700 bytes, three of
them tagged: `user_email` PII, `account_id` ACCOUNT_ID, `user_phone` PHONE) written by
confluent-kafka's serializer for the format (Confluent wire format, schema registered),
`--compression` batches. Three policies (`contextplane mask add`) cover User:copilot on
every `bench-masking-` topic: PII redacted, ACCOUNT_ID hashed (HMAC-SHA256),
PHONE keep-last-4.

Each round, a confluent-kafka consumer logged in as `alice` (no policy: the zero-copy
path) and one logged in as `copilot` (every batch decoded, masked, re-encoded and
recompressed by the broker) each read the whole topic from offset 0, as fast as they can,
taking turns at going first. Reported per format: records/s and MB/s (MB = 10⁶ bytes of
values as produced, so both readers count the same bytes) of each reader, the broker
process's CPU seconds (user + system, /proc) per record of each, the ratio masked /
unmasked of the medians and the median of the per-round ratios, and the broker CPU a
masked record adds (µs). The clients run on the same cores as the broker.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import io
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bench.profiles import PROFILES
from contextplane.cli.main import main as cli
from tests.support.broker import BrokerProcess, free_port
from tests.support.registry import RegistryProcess

FORMATS = ("avro", "json", "protobuf")
READERS = ("unmasked", "masked")
TOPIC_PREFIX = "bench-masking-"
HMAC_KEY = "bench-masking-key"
PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'user_alice="alice-secret" user_copilot="copilot-secret";'
)
# (policy name, tag, action): one policy per action, each on its own tag (where several
# cover one field the strongest wins, so one tag would be redacted everywhere).
POLICIES = (
    ("bench-redact", "PII", "redact"),
    ("bench-hash", "ACCOUNT_ID", "hash"),
    ("bench-keep", "PHONE", "keep-last-4"),
)
TAGGED = {"user_email": "PII", "account_id": "ACCOUNT_ID", "user_phone": "PHONE"}
# The event's fields in order: name, Avro / JSON Schema / Protobuf type.
FIELDS = (
    ("event_id", "string"),
    ("occurred_at_ms", "long"),
    ("tenant_id", "string"),
    ("account_id", "string"),
    ("user_email", "string"),
    ("user_phone", "string"),
    ("channel", "string"),
    ("intent", "string"),
    ("prompt", "string"),
    ("response_summary", "string"),
    ("tokens", "int"),
    ("latency_ms", "int"),
    ("entitlements", "strings"),
)
# Support vocabulary for the free-text fields (compressible as real prompts are).
WORDS = (
    "account", "invoice", "renewal", "seat", "license", "upgrade", "refund", "ticket",
    "escalation", "outage", "billing", "plan", "contract", "usage", "quota", "export",
    "connector", "sync", "region", "compliance", "retention", "audit", "dashboard", "alert",
    "webhook", "integration", "sandbox", "trial", "onboarding", "migration", "latency",
    "error",
)  # fmt: skip


def event(rng: random.Random, index: int) -> dict[str, Any]:
    """A copilot interaction as a support assistant logs it (~700 bytes in Avro)."""

    def text(words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words))

    return {
        "event_id": f"evt-{index:012d}-{rng.getrandbits(32):08x}",
        "occurred_at_ms": 1_796_083_200_000 + index * 37,
        "tenant_id": f"tenant-{rng.randrange(200):04d}",
        "account_id": f"ACC-{rng.randrange(10**9):09d}",
        "user_email": f"user{rng.randrange(10**6)}@customer{rng.randrange(500)}.example.com",
        "user_phone": f"+1-555-{rng.randrange(10**3):03d}-{rng.randrange(10**4):04d}",
        "channel": rng.choice(("chat", "email", "voice", "slack")),
        "intent": rng.choice(("billing", "outage", "upgrade", "cancel", "how-to")),
        "prompt": text(rng.randrange(45, 65)),
        "response_summary": text(rng.randrange(20, 35)),
        "tokens": rng.randrange(200, 4000),
        "latency_ms": rng.randrange(150, 3000),
        "entitlements": [rng.choice(WORDS) for _ in range(rng.randrange(2, 6))],
    }


def avro_schema() -> str:
    types = {"string": "string", "long": "long", "int": "int",
             "strings": {"type": "array", "items": "string"}}  # fmt: skip
    fields = []
    for name, kind in FIELDS:
        field: dict[str, Any] = {"name": name, "type": types[kind]}
        if name in TAGGED:
            field["confluent:tags"] = [TAGGED[name]]
        fields.append(field)
    return json.dumps(
        {"type": "record", "name": "CopilotEvent", "namespace": "copilot", "fields": fields}
    )


def json_schema() -> str:
    types = {"string": {"type": "string"}, "long": {"type": "integer"},
             "int": {"type": "integer"},
             "strings": {"type": "array", "items": {"type": "string"}}}  # fmt: skip
    properties = {}
    for name, kind in FIELDS:
        properties[name] = dict(types[kind])
        if name in TAGGED:
            properties[name]["confluent:tags"] = [TAGGED[name]]
    return json.dumps(
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "CopilotEvent",
            "type": "object",
            "properties": properties,
            "required": [name for name, _ in FIELDS],
        }
    )


def protobuf_class() -> Any:
    """copilot.CopilotEvent built at run time, its tagged fields carrying Confluent's
    field_meta tags."""
    from confluent_kafka.schema_registry.confluent import meta_pb2
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file = descriptor_pb2.FileDescriptorProto(
        name="copilot/event.proto",
        package="copilot",
        syntax="proto3",
        dependency=["confluent/meta.proto"],
    )
    message = file.message_type.add(name="CopilotEvent")
    # descriptor_pb2 type numbers: 9 string, 3 int64, 5 int32; labels: 1 optional, 3 repeated
    types = {"string": (9, 1), "long": (3, 1), "int": (5, 1), "strings": (9, 3)}
    for number, (name, kind) in enumerate(FIELDS, start=1):
        proto_type, label = types[kind]
        field = message.field.add(name=name, number=number, type=proto_type, label=label)
        if name in TAGGED:
            field.options.Extensions[meta_pb2.field_meta].tags.append(TAGGED[name])
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(meta_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("copilot.CopilotEvent"))


def serializer_for(kind: str, client: SchemaRegistryClient) -> Callable[[dict[str, Any]], Any]:
    """The confluent-kafka serializer of `kind`, as a function of the event's fields."""
    if kind == "avro":
        avro = AvroSerializer(client, avro_schema())
        return lambda fields, ctx: avro(fields, ctx)  # type: ignore[misc]
    if kind == "json":
        as_json = JSONSerializer(json_schema(), client)
        return lambda fields, ctx: as_json(fields, ctx)  # type: ignore[misc]
    message = protobuf_class()
    proto = ProtobufSerializer(message, client, {"use.deprecated.format": False})
    return lambda fields, ctx: proto(message(**fields), ctx)  # type: ignore[misc]


@dataclass
class Setup:
    broker: BrokerProcess
    registry: RegistryProcess
    sasl_port: int

    def reader(self, name: str) -> dict[str, Any]:
        return {
            "bootstrap.servers": f"127.0.0.1:{self.sasl_port}",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": name,
            "sasl.password": f"{name}-secret",
        }

    def cpu_s(self) -> float:
        assert self.broker.process is not None
        stat = Path(f"/proc/{self.broker.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


READER_OF = {"unmasked": "alice", "masked": "copilot"}


@contextmanager
def started(where: Path) -> Iterator[Setup]:
    plain_port, sasl_port = free_port(), free_port()
    broker = BrokerProcess(
        where / "broker",
        port=plain_port,
        settings={
            "listeners": f"PLAINTEXT://127.0.0.1:{plain_port},"
            f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
            "contextplane.masking.hmac.key": HMAC_KEY,
        },
    )
    with ExitStack() as stack:
        broker.start()
        stack.callback(broker.stop)
        registry = RegistryProcess(broker.bootstrap, where / "registry.log").start()
        stack.callback(registry.stop)
        for name, tag, action in POLICIES:
            with contextlib.redirect_stdout(io.StringIO()):  # the policy as a table
                status = cli(
                    ["mask", "add", name, "--principal", "User:copilot"]
                    + ["--topic", TOPIC_PREFIX + "*", "--tag", tag, "--action", action]
                    + ["--bootstrap-server", broker.bootstrap]
                )
            if status != 0:
                raise RuntimeError(f"masking policy {name} was not added (exit {status})")
        yield Setup(broker, registry, sasl_port)


def load(setup: Setup, kind: str, records: int, compression: str) -> tuple[str, int]:
    """The topic of `kind` with `records` events; the bytes of their values."""
    topic = TOPIC_PREFIX + kind
    bootstrap = setup.broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the topic is made
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    serialize = serializer_for(kind, SchemaRegistryClient({"url": setup.registry.url}))
    context = SerializationContext(topic, MessageField.VALUE)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": compression,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.kbytes": 65536,
        }
    )
    rng = random.Random(14)
    value_bytes = 0
    for index in range(records):
        fields = event(rng, index)
        value = serialize(fields, context)
        value_bytes += len(value)
        while True:
            try:
                producer.produce(topic, value, key=fields["event_id"].encode(), partition=0)
                break
            except BufferError:
                producer.poll(0.01)
    if producer.flush(120) != 0:
        raise RuntimeError(f"{topic}: not every record was delivered")
    return topic, value_bytes


def read_all(setup: Setup, reader: str, topic: str, records: int) -> tuple[float, list[Any]]:
    """Seconds for `reader` to read the topic from offset 0 to its end, and the first
    record's value (to check what it was given)."""
    consumer = Consumer(
        setup.reader(READER_OF[reader])
        | {"group.id": "bench-masking", "enable.auto.commit": False, "fetch.wait.max.ms": 5}
    )
    try:
        # Connecting and logging in are not fetching: done before the clock starts.
        consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        started_at = time.perf_counter()
        consumer.assign([TopicPartition(topic, 0, 0)])
        received = 0
        first: list[Any] = []
        while received < records:
            batch = consumer.consume(min(10_000, records - received), 10.0)
            if not batch:
                raise RuntimeError(f"{topic}: {reader} stalled at {received} of {records}")
            for message in batch:
                if message.error() is not None:
                    raise RuntimeError(f"{topic}: {reader}: {message.error()}")
            if not first:
                first.append(batch[0].value())
            received += len(batch)
        return time.perf_counter() - started_at, first
    finally:
        consumer.close()


def check_masked(setup: Setup, kind: str, topic: str, records: int) -> None:
    """Before any figure counts: copilot gets the tagged fields masked as the policies say
    and the rest as alice reads it (checked on the first record; Avro and JSON Schema
    decoded, Protobuf's bytes compared)."""
    _, clear = read_all(setup, "unmasked", topic, records)
    _, masked = read_all(setup, "masked", topic, records)
    if masked[0] is None or masked[0] == clear[0]:
        raise RuntimeError(f"{topic}: the masked reader was not given masked values")
    if kind == "protobuf":
        return
    if kind == "avro":
        decode = AvroDeserializer(SchemaRegistryClient({"url": setup.registry.url}))
        context = SerializationContext(topic, MessageField.VALUE)
        seen, original = decode(masked[0], context), decode(clear[0], context)
    else:
        seen, original = json.loads(masked[0][5:]), json.loads(clear[0][5:])
    assert isinstance(seen, dict) and isinstance(original, dict)
    phone = original["user_phone"]
    expected = original | {
        "user_email": "****",
        "account_id": hmac.new(HMAC_KEY.encode(), original["account_id"].encode(),
                               hashlib.sha256).hexdigest(),
        "user_phone": "*" * (len(phone) - 4) + phone[-4:],
    }  # fmt: skip
    if seen != expected:
        raise RuntimeError(f"{topic}: not masked as the policies say: {seen}")


def measure(setup: Setup, reader: str, topic: str, records: int, value_bytes: int) -> dict:
    cpu_before = setup.cpu_s()
    seconds, _ = read_all(setup, reader, topic, records)
    cpu = setup.cpu_s() - cpu_before
    return {
        "records_per_s": records / seconds,
        "mb_per_s": value_bytes / 1e6 / seconds,
        "broker_cpu_us_per_record": cpu / records * 1e6,
    }


METRICS = ("records_per_s", "mb_per_s", "broker_cpu_us_per_record")


def summarise(rows: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Medians per reader, masked / unmasked (ratio of medians and median of per-round
    ratios), and the broker CPU a masked record adds."""
    medians = {r: {m: statistics.median(row[m] for row in rows[r]) for m in METRICS} for r in rows}
    masked, unmasked = medians["masked"], medians["unmasked"]
    paired = [
        m["records_per_s"] / u["records_per_s"]
        for m, u in zip(rows["masked"], rows["unmasked"], strict=True)
    ]
    return {
        "medians": medians,
        "throughput_ratio": masked["records_per_s"] / unmasked["records_per_s"],
        "throughput_ratio_paired": statistics.median(paired),
        "cpu_ratio": _ratio(
            masked["broker_cpu_us_per_record"], unmasked["broker_cpu_us_per_record"]
        ),  # fmt: skip
        "masking_cpu_us_per_record": masked["broker_cpu_us_per_record"]
        - unmasked["broker_cpu_us_per_record"],
    }


def _ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def run(
    records: int,
    rounds: int,
    where: Path,
    formats: tuple[str, ...] = FORMATS,
    compression: str = "lz4",
) -> dict[str, Any]:
    """Per format: the summary, the records' mean value size and every round's figures."""
    found: dict[str, Any] = {}
    with started(where) as setup:
        for kind in formats:
            topic, value_bytes = load(setup, kind, records, compression)
            check_masked(setup, kind, topic, records)  # also warms both paths
            rows: dict[str, list[dict[str, float]]] = {reader: [] for reader in READERS}
            for round_index in range(rounds):
                order = READERS if round_index % 2 == 0 else READERS[::-1]
                for reader in order:
                    rows[reader].append(measure(setup, reader, topic, records, value_bytes))
                line = {"format": kind, "round": round_index}
                figures = {r: {k: round(v, 2) for k, v in rows[r][-1].items()} for r in READERS}
                print(json.dumps(line | figures), flush=True)
            found[kind] = summarise(rows) | {
                "records": records,
                "value_bytes_mean": value_bytes / records,
                "compression": compression,
                "rounds": rows,
            }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.masking")
    standard = PROFILES["standard"]
    parser.add_argument("--records", type=int, default=standard.masking_records)
    parser.add_argument("--rounds", type=int, default=standard.masking_rounds)
    parser.add_argument("--formats", default=",".join(FORMATS), help="of avro, json, protobuf")
    parser.add_argument("--compression", default="lz4", help="the producer's compression.type")
    args = parser.parse_args()
    formats = tuple(f for f in args.formats.replace(",", " ").split())
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise SystemExit(f"unknown format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    with tempfile.TemporaryDirectory(prefix="bench-masking-") as tmp:
        summary = run(args.records, args.rounds, Path(tmp), formats, args.compression)
    for kind, figures in summary.items():
        shown = {k: v for k, v in figures.items() if k != "rounds"}
        print(json.dumps({kind: _rounded(shown)}))


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    main()
