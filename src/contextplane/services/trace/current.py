"""The decision a `with decisions.decision():` block has open, if any, in this thread or
task (a context variable): `ContextClient.get` and `ActionsClient.call` note what they
did on it, so a copilot records its reads and calls without passing the decision around.
Nothing here talks to Kafka: the clients import it at no cost."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol


class Recording(Protocol):
    id: str

    def note_read(self, read: dict[str, Any]) -> None: ...

    def note_call(self, call: dict[str, Any]) -> None: ...


open_decision: ContextVar[Recording | None] = ContextVar("open_decision", default=None)


def current() -> Recording | None:
    return open_decision.get()
