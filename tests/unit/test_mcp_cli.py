"""`contextplane mcp`'s arguments refused before anything starts, each naming the problem
(exit 2), as the other service commands do."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextplane.cli.main import main


def test_a_port_out_of_range_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mcp", "--bootstrap", "127.0.0.1:9092", "--http", "70000"]) == 2
    assert "--http: expected a port from 1 to 65535, got 70000" in capsys.readouterr().err


@pytest.mark.parametrize("ms", ["0", "3600001"])
def test_a_request_head_timeout_out_of_range_is_refused(
    capsys: pytest.CaptureFixture[str], ms: str
) -> None:
    args = ["mcp", "--bootstrap", "127.0.0.1:9092", "--http", "9000"]
    assert main([*args, "--request-head-timeout-ms", ms]) == 2
    expected = f"--request-head-timeout-ms: expected 1 to 3600000, got {ms}"
    assert expected in capsys.readouterr().err


def test_an_unreadable_command_config_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.properties"
    assert main(["mcp", "--bootstrap", "127.0.0.1:9092", "--command-config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("contextplane mcp: --command-config:") and "missing.properties" in err


def test_a_security_property_it_cannot_use_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "client.properties"
    config.write_text("ssl.keystore.type=JKS\n")
    assert main(["mcp", "--bootstrap", "127.0.0.1:9092", "--command-config", str(config)]) == 2
    assert "ssl.keystore.type=JKS: only PEM files can be used" in capsys.readouterr().err
