"""ElectLeaders' decision per partition (broker/handlers/elect_leaders.py): the preferred
replica is the target broker; the wire and `kafka-leader-election.sh` are in
tests/e2e/test_operator_admin_apis.py and tests/e2e/test_operator_tools.py."""

from __future__ import annotations

from contextplane.broker.handlers.elect_leaders import PREFERRED, UNCLEAN, elect
from contextplane.metadata.records import PartitionRecord
from contextplane.protocol.error_codes import ErrorCode


def _row(leader: int, target: int) -> PartitionRecord:
    return PartitionRecord(1, "t", 0, leader, 3, 0, target_node=target)


def test_preferred() -> None:
    assert elect(_row(1, 1), PREFERRED, {1, 2})[0] == ErrorCode.election_not_needed
    assert elect(_row(1, -1), PREFERRED, {1})[0] == ErrorCode.election_not_needed
    # The target is live and does not lead yet: accepted, it takes the partition.
    assert elect(_row(1, 2), PREFERRED, {1, 2}) == (ErrorCode.none, None)
    error, message = elect(_row(1, 2), PREFERRED, {1})
    assert error == ErrorCode.preferred_leader_not_available
    assert message == "The preferred leader of t-0, broker 2, is not live."
    assert elect(_row(2, 2), PREFERRED, {1})[0] == ErrorCode.preferred_leader_not_available


def test_unclean() -> None:
    assert elect(_row(1, 2), UNCLEAN, {1, 2})[0] == ErrorCode.election_not_needed
    assert elect(_row(2, 2), UNCLEAN, {1})[0] == ErrorCode.eligible_leaders_not_available
