"""The services' commands take the cluster's address in both spellings: their own
`--bootstrap` and Kafka's tools' `--bootstrap-server` (which every client command uses)."""

from __future__ import annotations

import pytest

from contextplane.cli.main import build_parser

REQUIRED = {
    "context": ["--views", "views.toml"],
    "executor": ["--tools", "tools.toml"],
    "mcp": [],
    "registry": [],
}


@pytest.mark.parametrize("command", sorted(REQUIRED))
@pytest.mark.parametrize("spelling", ["--bootstrap", "--bootstrap-server"])
def test_both_spellings_name_the_cluster(command: str, spelling: str) -> None:
    args = build_parser().parse_args([command, spelling, "127.0.0.1:9092", *REQUIRED[command]])
    assert args.bootstrap == "127.0.0.1:9092"
