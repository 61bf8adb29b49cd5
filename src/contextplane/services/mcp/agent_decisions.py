"""The decisions an agent names across MCP calls. An agent has no `with decisions.decision()`
block spanning its calls: it passes a decision id to each. The server keeps one open
decision per id and, after each call naming it, produces the decision's event as it then
stands (every read and tool call so far). `contextplane trace` takes the newest record of
a key, so the trace always shows the whole decision; older records of the id are its
earlier states."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from contextplane.services.trace import current
from contextplane.services.trace.recorder import Decision, DecisionError, Decisions

log = logging.getLogger(__name__)

# Decisions kept open, at most: past it the least recently used is forgotten (a later
# call naming it starts it again, and its next record holds only what came after).
OPEN_MAX = 1_000


class AgentDecisions:
    def __init__(self, make_decisions: Callable[[], Decisions], open_max: int = OPEN_MAX) -> None:
        self._make_decisions = make_decisions
        self._decisions: Decisions | None = None
        self._open_max = open_max
        self._open: OrderedDict[str, tuple[Decision, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def recording(self, decision_id: str | None) -> Iterator[Decision | None]:
        """The block's context reads and tool calls noted on the decision `decision_id`
        (nothing when None), whose event is produced when the block ends, also when it
        raises. Calls naming one decision run one at a time, in the order they come."""
        if decision_id is None:
            yield None
            return
        decisions = self._recorder()
        decision, in_use = self._open_decision(decisions, decision_id)
        with in_use:
            token = current.open_decision.set(decision)
            try:
                yield decision
            except BaseException:
                current.open_decision.reset(token)
                # The failed read or call is noted on it: recorded too, and the block's
                # own error is the one the agent sees.
                try:
                    decisions.produce(decision)
                except (DecisionError, ValueError) as exc:
                    log.warning("decision %r not recorded: %s", decision_id, exc)
                raise
            current.open_decision.reset(token)
            decisions.produce(decision)

    def _recorder(self) -> Decisions:
        """Made at the first decision (it creates `copilot.decisions` when missing), so
        an agent that never names one never needs it."""
        with self._lock:
            if self._decisions is None:
                self._decisions = self._make_decisions()
            return self._decisions

    def _open_decision(
        self, decisions: Decisions, decision_id: str
    ) -> tuple[Decision, threading.Lock]:
        with self._lock:
            found = self._open.get(decision_id)
            if found is None:
                found = (decisions.new_decision(decision_id), threading.Lock())
                self._open[decision_id] = found
                while len(self._open) > self._open_max:
                    self._open.popitem(last=False)
            self._open.move_to_end(decision_id)
            return found

    def close(self) -> None:
        with self._lock:
            if self._decisions is not None:
                self._decisions.close()
