"""Probes of what the command line enables: TLS (as `--command-config` sets
security.protocol) and a schema registry (`--schema-registry`)."""

from __future__ import annotations

from contextplane.cli.probes.base import NotApplicable, ProbeContext, ProbeFailure

_TLS_PROTOCOLS = ("SSL", "SASL_SSL")
_SCHEMA = (
    '{"type": "record", "name": "Evaluation", "namespace": "contextplane.evaluate",'
    ' "fields": [{"name": "id", "type": "long"}, {"name": "note", "type": "string"}]}'
)


def tls(ctx: ProbeContext) -> str:
    protocol = str(ctx.settings.config.get("security.protocol", "PLAINTEXT")).upper()
    if protocol not in _TLS_PROTOCOLS:
        raise NotApplicable(f"security.protocol={protocol}: --command-config sets no TLS")
    metadata = ctx.admin().list_topics(timeout=ctx.remaining_s())
    verified = ctx.settings.config.get("ssl.endpoint.identification.algorithm") != "none"
    return (
        f"connected over {protocol} to {len(metadata.brokers)} broker(s), "
        f"host name {'verified' if verified else 'not verified'}"
    )


def schema_registry(ctx: ProbeContext) -> str:
    """A schema registered under a subject of the probe's own, fetched by id and as the
    subject's latest version, the subject deleted after."""
    url = ctx.settings.schema_registry
    if url is None:
        raise NotApplicable("no --schema-registry URL given")
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = SchemaRegistryClient(
        {"url": url, "timeout": max(1, int(ctx.remaining_s())), "max.retries": 1}
    )
    subject = f"{ctx.unique()}-value"

    def delete_subject() -> None:
        client.delete_subject(subject)
        client.delete_subject(subject, permanent=True)

    try:
        schema_id = client.register_schema(subject, Schema(_SCHEMA, "AVRO"))
        ctx.undo.append(delete_subject)
        by_id = client.get_schema(schema_id)
        latest = client.get_latest_version(subject)
    except SchemaRegistryError as exc:
        raise ProbeFailure(f"schema registry {url}: {exc}") from None
    text = by_id.schema_str or ""
    if by_id.schema_type != "AVRO" or _canonical(text) != _canonical(_SCHEMA):
        raise ProbeFailure(f"schema {schema_id} fetched as {text[:100]!r}")
    if latest.schema_id != schema_id or latest.version != 1:
        raise ProbeFailure(
            f"latest version of {subject!r}: id {latest.schema_id} version {latest.version}"
        )
    return f"registered an Avro schema (id {schema_id}), fetched it by id and as version 1"


def _canonical(text: str) -> object:
    """The schema's JSON as data: a registry may rewrite its spacing."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text
