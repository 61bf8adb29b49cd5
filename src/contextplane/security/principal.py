"""Who sent a request, in Kafka's terms: a principal type and name (`User:alice`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    type: str
    name: str

    def __str__(self) -> str:
        return f"{self.type}:{self.name}"


# Kafka's principal for a connection that has not authenticated (PLAINTEXT listeners).
ANONYMOUS = Principal("User", "ANONYMOUS")
