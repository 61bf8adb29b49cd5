"""Kafka error codes, as kio generates them from Kafka's own error list."""

from kio.schema.errors import ErrorCode

__all__ = ["ErrorCode"]
