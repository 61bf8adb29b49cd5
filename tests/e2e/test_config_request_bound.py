"""One AlterConfigs or IncrementalAlterConfigs request changes at most
limits.RECORDS_PER_REQUEST_MAX configs, counted over its authorized resources, as
Kafka's controller bounds the records of one operation
(QuorumController.MAX_RECORDS_PER_USER_OP): above it every resource is answered
POLICY_VIOLATION with Kafka's message and nothing is stored. Group configs exist whether
or not the group does, so without the bound one request could store them for a million
groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contextplane import limits
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient

GROUP = 32  # ConfigResource.Type.GROUP
SET = 0
POLICY_VIOLATION = 44
SOURCE_GROUP, SOURCE_DEFAULT = 8, 5
CONFIGS = {
    "consumer.session.timeout.ms": "50000",
    "consumer.heartbeat.interval.ms": "6000",
    "share.auto.offset.reset": "earliest",
}


def _alter_groups(bootstrap: str, groups: list[str], api: int) -> list[Any]:
    def configs() -> list[dict[str, Any]]:
        if api == 44:
            return [{"name": n, "config_operation": SET, "value": v} for n, v in CONFIGS.items()]
        return [{"name": n, "value": v} for n, v in CONFIGS.items()]

    resources = [
        {"resource_type": GROUP, "resource_name": group, "configs": configs()} for group in groups
    ]
    with RawClient(bootstrap) as client:
        answer = client.request(api, 1, resources=resources, validate_only=False)
    return [(r.resource_name, r.error_code, r.error_message) for r in answer.responses]


def _sources(bootstrap: str, group: str) -> set[int]:
    with RawClient(bootstrap) as client:
        answer = client.request(
            32,
            4,
            resources=[
                {
                    "resource_type": GROUP,
                    "resource_name": group,
                    "configuration_keys": list(CONFIGS),
                }
            ],
            include_synonyms=False,
            include_documentation=False,
        )
    return {config.config_source for config in answer.results[0].configs}


def test_a_request_over_the_record_bound_is_refused_whole(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "broker").start()
    bootstrap = broker.bootstrap
    over = limits.RECORDS_PER_REQUEST_MAX // len(CONFIGS) + 1
    groups = [f"g{i}" for i in range(over)]
    refused = ("Unable to perform excessively large batch operation.",)
    try:
        for api in (44, 33):  # IncrementalAlterConfigs, AlterConfigs
            answers = _alter_groups(bootstrap, groups, api)
            assert len(answers) == over
            assert {(code, message) for _, code, message in answers} == {
                (POLICY_VIOLATION, *refused)
            }
            assert _sources(bootstrap, groups[0]) == {SOURCE_DEFAULT}
            assert _sources(bootstrap, groups[-1]) == {SOURCE_DEFAULT}
        # Within the bound the same changes are stored.
        assert _alter_groups(bootstrap, groups[:2], 44) == [(g, 0, None) for g in groups[:2]]
        assert _sources(bootstrap, groups[1]) == {SOURCE_GROUP}
    finally:
        broker.stop()
