"""The README's "Schema registry" walkthrough runs as printed (only the addresses changed):
its curl commands against `contextplane registry` (subjects, data contracts, the DEK
registry), then its confluent-kafka example."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.inprocess import InProcessBroker
from tests.support.readme import section, walkthrough
from tests.support.registry import RegistryProcess

HEADING = "## Schema registry"


def addresses(text: str, broker: InProcessBroker, registry: RegistryProcess) -> str:
    return text.replace("http://127.0.0.1:8081", registry.url).replace(
        "127.0.0.1:9092", broker.bootstrap
    )


def test_the_readme_schema_registry_walkthrough_runs_as_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"^```sh\n(.*?)^```$", section(HEADING), re.M | re.S)
    curl_block, contract_block, keys_block = blocks
    (example,) = walkthrough(HEADING).python
    broker = InProcessBroker(tmp_path / "broker").start()
    registry = RegistryProcess(broker.bootstrap, tmp_path / "registry.log").start()
    try:
        shell = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", addresses(curl_block, broker, registry)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shell.returncode == 0, shell.stderr
        out = shell.stdout
        assert out.startswith('{"id":1}'), out
        assert '"subject":"users-value","version":1,"id":1' in out
        assert '{"is_compatible":false,"messages":["' in out
        assert out.endswith("[1][1]"), out  # the soft, then the permanent delete

        # The data-contract block, with the first block's R and H.
        preamble = "\n".join(curl_block.splitlines()[:2])
        shell = subprocess.run(
            ["bash", "-euo", "pipefail", "-c",
             addresses(preamble + "\n" + contract_block, broker, registry)],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert shell.returncode == 0, shell.stderr
        out = shell.stdout
        assert out.startswith('{"id":'), out
        assert out.count('"positiveAmount"') == 2, out  # latest, and found by its metadata
        assert '"Payment.card":["PII"]' in out, out
        assert out.rstrip().endswith('"defaultMetadata":{"properties":{"owner":"payments"}}}'), out

        # The DEK registry block.
        shell = subprocess.run(
            ["bash", "-euo", "pipefail", "-c",
             addresses(preamble + "\n" + keys_block, broker, registry)],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert shell.returncode == 0, shell.stderr
        out = shell.stdout
        assert out.startswith('{"name":"clinic-kek","kmsType":"local-kms"'), out
        assert out.count('"encryptedKeyMaterial":"d3JhcHBlZA=="') == 2, out
        assert out.endswith(
            '"error_code":42271,"message":"Invalid or missing key info: shared: '
            "this registry holds no KMS credentials, so it cannot generate or unwrap DEKs for a "
            'shared KEK; register the KEK with shared=false"}'
        ), out

        namespace: dict[str, Any] = {}
        code = addresses(example, broker, registry)
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our README
        printed = capsys.readouterr().out.splitlines()
        assert printed == ["{'id': 7, 'item': 'book'}", "1 [1]", "True"]
    finally:
        registry.stop()
        broker.stop()
