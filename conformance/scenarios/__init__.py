"""The differential corpus: scenarios written once, run against Apache Kafka and contextplane.

A scenario is a function `(ctx: Ctx) -> None` that drives a broker at `ctx.bootstrap` and
records what a client observes with `ctx.record(step, value)`: error codes by name,
offsets, assignments, metadata shape. Anything a broker picks freely (producer ids,
member ids, topic ids, node ids, ports, broker clocks) goes through `ctx.ident()` /
`ctx.clock()` first, so only behaviour is compared. If a step raises, the exception's
type is recorded under that step and the scenario stops there (the missing steps are
then differences too).

Scenarios marked `quick=True` form the CI subset. A scenario that needs brokers started
with particular settings (e.g. the ACL scenarios: an authorizer) names them in
`settings`; both brokers get them, and scenarios sharing settings share a pair of brokers.
A scenario marked `beside=True` mostly waits on broker clocks (e.g. the log cleaner): its
group runs on a pair of its own at the same time as the other groups, not after them.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.rawclient import RawClient

ScenarioFn = Callable[["Ctx"], None]


@dataclass(frozen=True)
class Scenario:
    name: str  # "<area>.<function name>"
    area: str
    fn: ScenarioFn
    quick: bool
    doc: str
    settings: tuple[tuple[str, str], ...] = ()  # broker settings both brokers start with
    beside: bool = False  # mostly waits: run beside the other groups, on a pair of its own


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    quick: bool = True, settings: dict[str, str] | None = None, beside: bool = False
) -> Callable[[ScenarioFn], ScenarioFn]:
    def register(fn: ScenarioFn) -> ScenarioFn:
        area = fn.__module__.rsplit(".", 1)[-1]
        name = f"{area}.{fn.__name__}"
        SCENARIOS[name] = Scenario(
            name,
            area,
            fn,
            quick,
            (fn.__doc__ or "").strip(),
            tuple(sorted((settings or {}).items())),
            beside,
        )
        return fn

    return register


def load_all() -> dict[str, Scenario]:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(SCENARIOS.items()))


class StepFailed(Exception):
    """Raised by `Ctx.check` when a precondition for the next steps does not hold."""


@dataclass
class Ctx:
    bootstrap: str
    broker: str  # "kafka" or "contextplane": for logs only, scenarios must not branch on it
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    observations: dict[str, Any] = field(default_factory=dict)
    _idents: dict[tuple[str, Any], str] = field(default_factory=dict)
    _clients: list[Any] = field(default_factory=list)

    # -- clients ------------------------------------------------------------------------
    def raw(self, client_id: str = "conformance") -> RawClient:
        client = RawClient(self.bootstrap, client_id)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):  # best effort at scenario end
                client.close()
        self._clients.clear()

    # -- observations -------------------------------------------------------------------
    def record(self, step: str, value: Any) -> Any:
        if step in self.observations:
            raise ValueError(f"step {step!r} recorded twice")
        self.observations[step] = value
        return value

    def check(self, condition: bool, what: str) -> None:
        """Stop the scenario (recording `what`) when a step's precondition fails."""
        if not condition:
            raise StepFailed(what)

    def ident(self, kind: str, value: Any) -> Any:
        """A stable placeholder for a broker-chosen id: 'member#1', 'member#2', ...

        The same value always maps to the same placeholder within one scenario, so "the
        same member id came back" is still compared. Sentinels (None, "", -1) are kept.
        """
        if value in (None, "", -1) or (kind == "uuid" and str(value) == str(_ZERO_UUID)):
            return value
        key = (kind, value)
        if key not in self._idents:
            count = sum(1 for k in self._idents if k[0] == kind)
            self._idents[key] = f"{kind}#{count + 1}"
        return self._idents[key]

    def clock(self, value: int, *, known: tuple[int, ...] = ()) -> Any:
        """A timestamp: kept when it is one the scenario chose, -1 kept, broker time → 'now'."""
        if value in known or value < 0:
            return value
        now = int(time.time() * 1000)
        if self.started_ms - 120_000 <= value <= now + 120_000:
            return "now"
        return value


_ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def run_scenario(sc: Scenario, bootstrap: str, broker: str) -> dict[str, Any]:
    """Run one scenario; returns its observations (with the error, if one stopped it)."""
    ctx = Ctx(bootstrap, broker)
    started = time.monotonic()
    try:
        sc.fn(ctx)
    except StepFailed as failed:
        ctx.observations["!stopped"] = f"precondition failed: {failed}"
    except Exception as exc:  # noqa: BLE001 - every failure is an observation
        ctx.observations["!stopped"] = f"{type(exc).__name__}"
        ctx.observations.setdefault("!trace", _short_trace(exc))
    finally:
        ctx.close()
    ctx.observations["!seconds"] = round(time.monotonic() - started, 2)
    return ctx.observations


def _short_trace(exc: BaseException) -> str:
    lines = traceback.format_exception(exc)
    return "".join(lines[-4:])[-1500:]
