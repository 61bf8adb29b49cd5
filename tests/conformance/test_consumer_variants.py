"""The consumer-protocol (KIP-848) variants of the client suites select and judge what
they claim: librdkafka's group tests with TEST_CONSUMER_GROUP_PROTOCOL=consumer and
without the runner's -Q, franz-go's subtests each by its own result line."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.suites import FAILED, PASSED, SKIPPED
from conformance.suites.franz_go import suite as franz_go
from conformance.suites.librdkafka_consumer import suite as librdkafka_consumer

# What `go test -v` prints for a parent whose KIP-848 subtest passed and whose classic
# sibling failed (the process exits 1).
GO_OUTPUT = """=== RUN   TestGroupETL
=== RUN   TestGroupETL/range
=== RUN   TestGroupETL/range/848
--- FAIL: TestGroupETL (31.00s)
    --- FAIL: TestGroupETL/range (14.46s)
    --- PASS: TestGroupETL/range/848 (25.42s)
    --- SKIP: TestGroupETL/sticky/848 (0.00s)
FAIL
"""


def _stand_in(tmp_path: Path, output: str, code: int) -> Path:
    (tmp_path / "out.txt").write_text(output)
    binary = tmp_path / "kgo.test"
    binary.write_text(
        f'#!/bin/sh\necho "$@" > "{tmp_path}/args"\ncat "{tmp_path}/out.txt"\nexit {code}\n'
    )
    binary.chmod(0o755)
    return binary


def test_a_subtest_is_judged_by_its_own_line_in_a_run_of_its_whole_parent(
    tmp_path: Path,
) -> None:
    binary = _stand_in(tmp_path, GO_OUTPUT, 1)
    ids = ["TestGroupETL/range/848", "TestGroupETL/sticky/848", "TestGroupETL/missing"]
    outcomes = franz_go._run_one(binary, tmp_path, {}, "TestGroupETL", ids, tmp_path)
    assert outcomes == {
        "TestGroupETL/range/848": PASSED,
        "TestGroupETL/sticky/848": SKIPPED,
        "TestGroupETL/missing": FAILED,
    }
    assert "-test.run=^TestGroupETL$" in (tmp_path / "args").read_text()
    # The parent itself failed: a top-level id is judged by its line and the exit status.
    whole = franz_go._run_one(binary, tmp_path, {}, "TestGroupETL", ["TestGroupETL"], tmp_path)
    assert whole == {"TestGroupETL": FAILED}


TEST_C = """
struct test tests[] = {
    _TEST(0018_cgrp_term, 0, TEST_BRKVER(0, 9, 0, 0)),
    _TEST(0001_multiobj, 0),
    _TEST(0147_consumer_group_consumer_mock, TEST_F_LOCAL),
    _TEST(0113_cooperative_rebalance, 0, TEST_BRKVER(2, 4, 0, 0)),
    _TEST(0139_offset_validation_mock, 0),
};
"""


def test_the_librdkafka_variant_runs_group_tests_under_the_consumer_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test.c").write_text(TEST_C)
    (tests / "0018-cgrp_term.c").write_text("test_consumer_subscribe(rk, topic);")
    (tests / "0001-multiobj.c").write_text("rd_kafka_produce(rkt, 0, 0, NULL, 0);")
    (tests / "0147-consumer_group_consumer_mock.c").write_text("rd_kafka_subscribe(rk, t);")
    (tests / "0113-cooperative_rebalance.cpp").write_text("c->subscribe(topics);")
    (tests / "0139-offset_validation_mock.c").write_text("test_consumer_subscribe(c, t);")
    assert librdkafka_consumer.group_tests(tmp_path) == [
        "0018_cgrp_term",
        "0113_cooperative_rebalance",
    ]
    calls: list[dict[str, object]] = []

    def run_tests(*args: object, **kwargs: object) -> dict[str, str]:
        calls.append({"selected": args[3], **kwargs})
        return {}

    monkeypatch.setattr(librdkafka_consumer.librdkafka, "run_tests", run_tests)
    librdkafka_consumer.run(tmp_path, "127.0.0.1:1", "4.4.0", None, print, 0.0)
    (call,) = calls
    assert call["selected"] == ["0018_cgrp_term", "0113_cooperative_rebalance"]
    assert call["env_more"] == {"TEST_CONSUMER_GROUP_PROTOCOL": "consumer"}
    assert call["quick"] is False
