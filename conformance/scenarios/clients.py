"""The same behaviours through a real client (confluent-kafka / librdkafka), as an
application sees them: delivery reports, consumed records, group assignments, admin errors."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from conformance.scenarios import Ctx, scenario

T0 = 1_700_000_000_000


def _admin(ctx: Ctx) -> AdminClient:
    return AdminClient({"bootstrap.servers": ctx.bootstrap, "socket.timeout.ms": 10000})


def _create(ctx: Ctx, admin: AdminClient, name: str, partitions: int, **config: str) -> str:
    futures = admin.create_topics(
        [NewTopic(name, partitions, replication_factor=1, config=config)], operation_timeout=10
    )
    try:
        futures[name].result(15)
        return "ok"
    except KafkaException as exc:
        return exc.args[0].name()


def _wait_topic(ctx: Ctx, name: str, partitions: int) -> None:
    from conformance import wire

    client = ctx.raw()
    ctx.check(wire.wait_for_topic(client, name, partitions), f"{name} ready")


def _error_name(error: Any) -> str | None:
    return None if error is None else error.name()


def _consume_all(ctx: Ctx, topic: str, partitions: int, expect: int, **conf: Any) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": ctx.bootstrap,
            "group.id": f"{topic}-reader",
            "enable.auto.commit": False,
            **conf,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out = []
    deadline = time.monotonic() + 20
    while len(out) < expect and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            out.append({"error": msg.error().name()})
            continue
        ts_type, ts = msg.timestamp()
        out.append(
            {
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": None if msg.key() is None else msg.key().decode(),
                "value": None if msg.value() is None else msg.value().decode(),
                "headers": [[k, None if v is None else v.decode()] for k, v in msg.headers() or []],
                "timestamp_type": ts_type,
                "timestamp": ctx.clock(ts, known=(T0,)),
            }
        )
    consumer.close()
    return sorted(out, key=lambda r: (r.get("partition", -1), r.get("offset", -1)))


def _produce(ctx: Ctx, topic: str, records: list[dict[str, Any]], **conf: Any) -> list[Any]:
    producer = Producer({"bootstrap.servers": ctx.bootstrap, "acks": "all", **conf})
    reports: list[Any] = []

    def on_delivery(error: Any, msg: Any) -> None:
        reports.append(
            (_error_name(error), msg.partition(), msg.offset() if error is None else None)
        )

    for rec in records:
        producer.produce(topic, on_delivery=on_delivery, **rec)
    remaining = producer.flush(20)
    return [("unflushed", remaining)] if remaining else reports


@scenario()
def roundtrip_compressions(ctx: Ctx) -> None:
    """confluent-kafka produces keyed records with headers under every codec and reads
    them back: delivery offsets, values, headers, timestamps."""
    admin = _admin(ctx)
    ctx.record("create", _create(ctx, admin, "cl-roundtrip", 1))
    _wait_topic(ctx, "cl-roundtrip", 1)
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        records = [
            {
                "key": f"{codec}-k{i}",
                "value": f"{codec}-v{i}" * 10,
                "headers": [("codec", codec), ("i", str(i))],
                "timestamp": T0,
            }
            for i in range(4)
        ]
        ctx.record(
            f"delivered.{codec}",
            _produce(ctx, "cl-roundtrip", records, **{"compression.type": codec, "linger.ms": 50}),
        )
    ctx.record("consumed", _consume_all(ctx, "cl-roundtrip", 1, 20))


@scenario()
def idempotent_producer(ctx: Ctx) -> None:
    """enable.idempotence=true over several partitions: dense offsets, no errors."""
    admin = _admin(ctx)
    ctx.record("create", _create(ctx, admin, "cl-idem", 3))
    _wait_topic(ctx, "cl-idem", 3)
    records = [{"key": f"k{i}", "value": f"v{i}", "partition": i % 3} for i in range(30)]
    reports = _produce(
        ctx,
        "cl-idem",
        records,
        **{"enable.idempotence": True, "linger.ms": 5, "batch.num.messages": 4},
    )
    ctx.record("errors", sorted({r[0] for r in reports if r[0]} or {"none"}))
    ctx.record(
        "offsets_per_partition",
        {p: sorted(r[2] for r in reports if r[1] == p) for p in range(3)},
    )
    ctx.record("consumed_count", len(_consume_all(ctx, "cl-idem", 3, 30)))


@scenario()
def admin_errors(ctx: Ctx) -> None:
    """AdminClient: existing topic, bad partition counts, unknown configs, create
    partitions, describe configs, delete of an unknown topic, as error names."""
    admin = _admin(ctx)
    ctx.record("create", _create(ctx, admin, "cl-admin", 2))
    ctx.record("existing", _create(ctx, admin, "cl-admin", 2))
    ctx.record("zero_partitions", _create(ctx, admin, "cl-admin-zero", 0))
    ctx.record("unknown_config", _create(ctx, admin, "cl-admin-cfg", 1, **{"no.such": "1"}))
    ctx.record("bad_value", _create(ctx, admin, "cl-admin-cfg2", 1, **{"retention.ms": "x"}))
    _wait_topic(ctx, "cl-admin", 2)

    def outcome(future: Any) -> Any:
        try:
            result = future.result(15)
            return "ok" if result is None else result
        except KafkaException as exc:
            return exc.args[0].name()

    grow = admin.create_partitions([NewPartitions("cl-admin", 4)])
    ctx.record("grow_partitions", outcome(grow["cl-admin"]))
    shrink = admin.create_partitions([NewPartitions("cl-admin", 1)])
    ctx.record("shrink_partitions", outcome(shrink["cl-admin"]))
    resource = ConfigResource(ConfigResource.Type.TOPIC, "cl-admin")
    described = outcome(admin.describe_configs([resource])[resource])
    ctx.record(
        "describe_configs",
        described
        if isinstance(described, str)
        else {
            k: (v.value, v.is_default, int(v.source))
            for k, v in sorted(described.items())
            if k in ("cleanup.policy", "retention.ms", "max.message.bytes")
        },
    )
    missing = ConfigResource(ConfigResource.Type.TOPIC, "cl-admin-missing")
    ctx.record("describe_missing", outcome(admin.describe_configs([missing])[missing]))
    deleted = admin.delete_topics(["cl-admin-missing"], operation_timeout=10)
    ctx.record("delete_missing", outcome(deleted["cl-admin-missing"]))
    metadata = admin.list_topics(topic="cl-admin", timeout=10)
    ctx.record("partitions", sorted(metadata.topics["cl-admin"].partitions))


@scenario()
def group_subscribe_commit(ctx: Ctx) -> None:
    """Two subscribed consumers share four partitions (range), commit, a third client
    reads the committed offsets, one leaves and the other takes over everything; the
    group is listed, described and deleted through the AdminClient."""
    admin = _admin(ctx)
    ctx.record("create", _create(ctx, admin, "cl-group", 4))
    _wait_topic(ctx, "cl-group", 4)
    _produce(ctx, "cl-group", [{"value": f"m{i}", "partition": i % 4} for i in range(16)])

    def consumer(name: str) -> Consumer:
        c = Consumer(
            {
                "bootstrap.servers": ctx.bootstrap,
                "group.id": "cl-group-g",
                "client.id": name,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "partition.assignment.strategy": "range",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 500,
            }
        )
        c.subscribe(["cl-group"])
        return c

    a, b = consumer("c-a"), consumer("c-b")

    def settled() -> bool:
        """Both members assigned, all four partitions covered, every one read to the end."""
        owned = a.assignment() + b.assignment()
        if not a.assignment() or not b.assignment() or len(owned) != 4:
            return False
        positions = a.position(a.assignment()) + b.position(b.assignment())
        return all(tp.offset == 4 for tp in positions)

    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not settled():
        for c in (a, b):
            c.poll(0.2)
    ctx.record("settled", settled())
    ctx.record("assignment_sizes", sorted([len(a.assignment()), len(b.assignment())]))
    ctx.record(
        "assignment_union",
        sorted(tp.partition for tp in a.assignment() + b.assignment()),
    )
    for c in (a, b):
        if c.assignment():
            c.commit(asynchronous=False)
    reader = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": "cl-group-g"})
    committed = reader.committed([TopicPartition("cl-group", p) for p in range(4)], timeout=10)
    ctx.record("committed", sorted((tp.partition, tp.offset) for tp in committed))
    reader.close()
    groups = admin.list_consumer_groups().result(10)
    ctx.record(
        "listed",
        sorted((g.group_id, str(g.state)) for g in groups.valid if g.group_id == "cl-group-g"),
    )
    described = admin.describe_consumer_groups(["cl-group-g"])["cl-group-g"].result(10)
    ctx.record(
        "described",
        {
            "state": str(described.state),
            "members": len(described.members),
            "assignor": described.partition_assignor,
            "simple": described.is_simple_consumer_group,
        },
    )
    b.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(a.assignment()) < 4:
        a.poll(0.2)
    ctx.record("after_leave_assignment", sorted(tp.partition for tp in a.assignment()))
    a.close()
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("cl-group-g")])[
        "cl-group-g"
    ].result(10)
    ctx.record(
        "admin_offsets",
        sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions),
    )
    deleted = admin.delete_consumer_groups(["cl-group-g"])["cl-group-g"]
    try:
        deleted.result(10)
        ctx.record("delete_group", "ok")
    except KafkaException as exc:
        ctx.record("delete_group", exc.args[0].name())


@scenario()
def offsets_for_times_and_delete_records(ctx: Ctx) -> None:
    """Consumer.offsets_for_times and get_watermark_offsets around AdminClient
    delete_records."""
    admin = _admin(ctx)
    ctx.record("create", _create(ctx, admin, "cl-times", 1))
    _wait_topic(ctx, "cl-times", 1)
    records = [{"value": f"t{i}", "timestamp": T0 + i * 1000} for i in range(6)]
    ctx.record("delivered", _produce(ctx, "cl-times", records, **{"linger.ms": 0}))
    consumer = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": "cl-times-g"})
    looked_up = consumer.offsets_for_times(
        [TopicPartition("cl-times", 0, T0 + 2500), TopicPartition("cl-times", 0, T0 + 99_000)],
        timeout=10,
    )
    ctx.record("for_times", [(tp.offset, _error_name(tp.error)) for tp in looked_up])
    ctx.record(
        "watermarks",
        list(consumer.get_watermark_offsets(TopicPartition("cl-times", 0), timeout=10)),
    )
    futures = admin.delete_records([TopicPartition("cl-times", 0, 3)])
    try:
        result = list(futures.values())[0].result(15)
        ctx.record(
            "delete_records", getattr(result, "low_watermark", getattr(result, "offset", None))
        )
    except KafkaException as exc:
        ctx.record("delete_records", exc.args[0].name())
    ctx.record(
        "watermarks_after",
        list(consumer.get_watermark_offsets(TopicPartition("cl-times", 0), timeout=10)),
    )
    consumer.close()
