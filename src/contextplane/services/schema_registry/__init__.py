"""A schema registry with Confluent's REST API, its state in the `_schemas` compacted
topic (RFC 0005)."""
