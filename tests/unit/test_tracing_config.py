"""Where traces go (tracing.py): the broker's setting, else the standard OTEL_* variables,
else nowhere; an unusable endpoint named by where it came from, and `contextplane up`
refusing it before anything starts; the SDK's log lines about a dead collector kept to
one per message and interval."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contextplane import tracing
from contextplane.settings import SettingsError, load_settings
from contextplane.tracing import TracingConfigError, traces_url


def test_off_unless_something_names_a_collector() -> None:
    assert traces_url("", {}) is None
    assert traces_url("", {"OTEL_SERVICE_NAME": "x"}) is None


def test_a_base_endpoint_gets_the_traces_path_and_the_traces_variable_is_used_as_it_is() -> None:
    assert traces_url("http://collector:4318/", {}) == "http://collector:4318/v1/traces"
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c.example:4318"}
    assert traces_url("", base) == "https://c.example:4318/v1/traces"
    exact = {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/custom"}
    assert traces_url("", exact) == "http://t:9/custom"
    # The broker's setting wins over the variables.
    assert traces_url("http://s:1", exact) == "http://s:1/v1/traces"


@pytest.mark.parametrize(
    "environ", [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}]
)
def test_the_standard_switches_turn_it_off(environ: dict[str, str]) -> None:
    assert traces_url("http://collector:4318", environ) is None


def test_an_unusable_endpoint_is_named_by_its_source_without_echoing_it() -> None:
    with pytest.raises(TracingConfigError) as refused:
        traces_url("collector:4318", {})
    assert str(refused.value) == (
        "otel.exporter.otlp.endpoint: not an http:// or https:// URL with a host"
    )
    with pytest.raises(TracingConfigError, match="^OTEL_EXPORTER_OTLP_ENDPOINT: not an"):
        traces_url("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://user:secret@host"})
    with pytest.raises(TracingConfigError, match="longer than 2048 characters"):
        traces_url("http://h/" + "a" * 2048, {})


def test_the_setting_is_checked_when_settings_load() -> None:
    with pytest.raises(SettingsError, match="otel.exporter.otlp.endpoint: not an http"):
        load_settings(environ={}, overrides={"otel.exporter.otlp.endpoint": "localhost:4318"})
    given = load_settings(environ={}, overrides={"otel.exporter.otlp.endpoint": "http://c:4318"})
    assert given.otel_exporter_otlp_endpoint == "http://c:4318"


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("opentelemetry.x", logging.WARNING, __file__, 1, message, (), None)


def test_the_sdk_lines_pass_once_per_message_and_interval() -> None:
    hour = tracing._OncePerInterval(3600)
    assert hour.filter(_record("Queue full, dropping %s."))
    assert not any(hour.filter(_record("Queue full, dropping %s.")) for _ in range(1000))
    assert hour.filter(_record("Transient error %s"))  # another message passes
    # Once the interval has passed, the next line says how many were left out.
    every_time = tracing._OncePerInterval(0)
    every_time._left_out["Queue full, dropping %s."] = 1000
    record = _record("Queue full, dropping %s.")
    assert every_time.filter(record)
    assert record.msg == "Queue full, dropping %s. (1000 more like it left out of the log)"


@pytest.mark.parametrize(
    ("variables", "sets", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, [], "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({}, ["--set", "otel.exporter.otlp.endpoint=localhost:4318"], "otel.exporter.otlp"),
    ],
)
def test_contextplane_up_refuses_an_unusable_endpoint_before_starting(
    tmp_path: Path, variables: dict[str, str], sets: list[str], named: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | variables
    data = tmp_path / "data"
    out = subprocess.run(
        [sys.executable, "-m", "contextplane.cli.launch", "up", "--data-dir", str(data), *sets],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"contextplane: {named}")
    assert line.endswith(": not an http:// or https:// URL with a host")
    assert not data.exists()
