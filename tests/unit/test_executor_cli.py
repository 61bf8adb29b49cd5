"""`contextplane executor`'s arguments refused before anything starts, naming the problem
(exit 2), as the other service commands do."""

from __future__ import annotations

import pytest

from contextplane.cli.main import main


@pytest.mark.parametrize("ms", ["999", "900001"])
def test_a_transaction_timeout_out_of_range_is_refused(
    capsys: pytest.CaptureFixture[str], ms: str
) -> None:
    args = ["executor", "--bootstrap", "127.0.0.1:9092", "--tools", "tools.toml"]
    assert main([*args, "--transaction-timeout-ms", ms]) == 2
    expected = f"--transaction-timeout-ms: expected 1000 to 900000, got {ms}"
    assert expected in capsys.readouterr().err
