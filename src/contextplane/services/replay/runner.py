"""The replay loop: the copilot function imported from "module:function", then for each
recorded decision a replayed decision block on `copilot.replay.<run>` (same id,
correlation and causation as the original, `replay_of` naming it) in which the function
is called as the copilot calls it live:

    def decide(input, context, tools, decision) -> None

`input` is the original decision's recorded input (`decisions.decision(input=...)`),
`context` and `tools` are the replay's clients (doubles.py), `decision` the open block
(set `decision.outcome`). The block records what the function read and called; then it
is compared with the original (diff.py)."""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from contextplane.services.context.client import ContextClient
from contextplane.services.replay import diff
from contextplane.services.replay.doubles import ReplayContext, ReplayTools
from contextplane.services.replay.policies import ChangedPolicies
from contextplane.services.replay.recorded import Recorded, RequestArguments
from contextplane.services.trace.recorder import Decision, DecisionError, Decisions

REPLAY_TOPIC_PREFIX = "copilot.replay."
# Kafka's topic names: these characters, at most 249 of them.
_RUN_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")

CopilotFunction = Callable[[Any, Any, Any, Decision], Any]


class FunctionError(ValueError):
    """The "module:function" given cannot be imported or is not callable."""


def replay_topic(run: str) -> str:
    if not _RUN_NAME.fullmatch(run):
        raise ValueError(f"run name {run!r}: expected 1 to 200 of A-Z a-z 0-9 . _ -")
    return REPLAY_TOPIC_PREFIX + run


def load_function(spec: str) -> CopilotFunction:
    """The function "package.module:function" names; the working directory is on the
    import path, as `python -m` has it."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise FunctionError(f"{spec!r}: expected module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error while importing the user's module
        why = f"{type(exc).__name__}: {exc}"
        raise FunctionError(f"{spec!r}: importing {module_name}: {why}") from None
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
    if not callable(found):
        raise FunctionError(f"{spec!r}: {module_name} has no function {attribute}")
    function: CopilotFunction = found
    return function


class Replayer:
    """One run: its decisions producer (to `copilot.replay.<run>` only) and the clients
    the function is given."""

    def __init__(
        self,
        bootstrap: str,
        run: str,
        function: CopilotFunction,
        *,
        context_url: str | None,
        ledger_url: str | None,
        client_config: dict[str, Any] | None = None,
        timeout_s: float = 30.0,
        policies: ChangedPolicies | None = None,
    ) -> None:
        self.topic = replay_topic(run)
        self._policies = policies
        self._function = function
        self._context = None if context_url is None else ContextClient(context_url)
        self._ledger_url = ledger_url
        self._decisions = Decisions(
            bootstrap,
            source=f"contextplane.replay/{run}",
            client_config=client_config,
            topic=self.topic,
        )
        config = {"bootstrap.servers": bootstrap, **(client_config or {})}
        self._requests = RequestArguments(config, timeout_s)

    def replay(self, recorded: Recorded) -> diff.DecisionDiff:
        original = recorded.document
        if original is None:
            why = f"not replayed: {recorded.unreadable}"
            return diff.not_replayed(recorded.decision_id, recorded.where, None, why)
        self._requests.fill(original)  # calls recorded before decisions held arguments
        reads = [r for r in original.get("reads") or [] if isinstance(r, dict)]
        context = ReplayContext(self._context, reads)
        tools = ReplayTools(self._ledger_url, self._policies)
        opened: list[Decision] = []
        try:
            with self._decisions.decision(
                recorded.decision_id,
                correlation_id=recorded.correlation_id,
                causation_id=recorded.causation_id,
                input=original.get("input"),
                replay_of=recorded.where,
            ) as decision:
                opened.append(decision)
                self._function(original.get("input"), context, tools, decision)
        except (DecisionError, ValueError) as exc:
            # ValueError: an id or correlation header the block refuses (event.check_name),
            # or DecisionTooLargeError; the function's own, once the block produced, falls
            # through to the comparison.
            if not opened or opened[0].landed is None:
                why = f"not replayed: {exc}"
                return diff.not_replayed(recorded.decision_id, recorded.where, original, why)
        except Exception:  # the function's error: recorded as the replay's outcome
            pass
        replayed = opened[0]
        assert replayed.landed is not None  # the block produced it, or raised above
        partition, offset = replayed.landed
        at = {"topic": self.topic, "partition": partition, "offset": offset}
        return diff.compare(
            recorded.decision_id, recorded.where, original, at, replayed.document(0)
        )

    def close(self) -> None:
        self._decisions.close()
        self._requests.close()
