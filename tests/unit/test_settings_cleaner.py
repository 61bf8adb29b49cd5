"""Kafka's log.cleaner.* broker settings: every one Kafka 4.4 has is either honoured or
ignored by name, a misspelt one is refused, and the broker-wide defaults of the cleaner's
topic configs are what a topic that does not set them uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextplane.broker.configs import TOPIC_CONFIGS, retention_configs
from contextplane.broker.handlers.configs import _config_type
from contextplane.settings import Settings, SettingsError, env_name, load_settings
from contextplane.storage.cleaner import cleaner_config, is_compacted
from contextplane.storage.compaction import CleanerConfig

LONG_MAX = 2**63 - 1


def test_a_misspelt_cleaner_setting_is_refused_naming_the_one_meant(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={}, overrides={"log.cleaner.backof.ms": "1000"})
    assert str(info.value) == (
        "unknown setting 'log.cleaner.backof.ms'; did you mean 'log.cleaner.backoff.ms'?"
    )
    config = tmp_path / "server.properties"
    config.write_text("log.cleaner.min.cleanable.ration=0.1\n")
    with pytest.raises(SettingsError, match="did you mean 'log.cleaner.min.cleanable.ratio'"):
        load_settings(config, environ={})
    with pytest.raises(SettingsError, match="did you mean CONTEXTPLANE_LOG_CLEANER_BACKOFF_MS"):
        load_settings(environ={env_name("log.cleaner.backof.ms"): "1000"})


@pytest.mark.parametrize("name", ["log.cleaner.whatever", "log.cleaner.threads.count"])
def test_a_cleaner_name_kafka_does_not_have_is_unknown(name: str) -> None:
    with pytest.raises(SettingsError, match=f"unknown setting '{name}'"):
        load_settings(environ={}, overrides={name: "1"})


@pytest.mark.parametrize(
    "name",
    ["log.cleaner.threads", "log.cleaner.io.buffer.size", "log.cleaner.io.buffer.load.factor"],
)
def test_kafkas_cleaner_settings_without_effect_are_accepted_with_their_reason(name: str) -> None:
    settings = load_settings(environ={}, overrides={name: "2"})
    assert settings.ignored[name].startswith("no effect: ")
    assert "cleaner" in settings.ignored[name]


def test_the_broker_wide_cleaner_defaults_are_kafkas() -> None:
    settings = load_settings(environ={})
    assert settings.log_cleaner_min_cleanable_ratio == 0.5
    assert settings.log_cleaner_delete_retention_ms == 86_400_000
    assert settings.log_cleaner_min_compaction_lag_ms == 0
    assert settings.log_cleaner_max_compaction_lag_ms == LONG_MAX
    assert settings.log_cleanup_policy == "delete"
    assert settings.ignored == {}


def test_the_broker_wide_cleaner_settings_are_read_from_server_properties(
    tmp_path: Path,
) -> None:
    config = tmp_path / "server.properties"
    config.write_text(
        "log.cleaner.min.cleanable.ratio=0.1\n"
        "log.cleaner.delete.retention.ms=1000\n"
        "log.cleaner.min.compaction.lag.ms=2000\n"
        "log.cleaner.max.compaction.lag.ms=60000\n"
        "log.cleanup.policy=compact, delete,compact\n"
    )
    settings = load_settings(config, environ={})
    assert settings.log_cleaner_min_cleanable_ratio == 0.1
    assert settings.log_cleaner_delete_retention_ms == 1000
    assert settings.log_cleaner_min_compaction_lag_ms == 2000
    assert settings.log_cleaner_max_compaction_lag_ms == 60000
    assert settings.log_cleanup_policy == "compact,delete"  # trimmed, without repeats
    assert settings.ignored == {}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("log.cleaner.min.cleanable.ratio", "1.5", r"1.5 is out of range: \[0, 1\]"),
        ("log.cleaner.min.cleanable.ratio", "-0.1", r"out of range"),
        ("log.cleaner.min.cleanable.ratio", "half", "not a valid float"),
        ("log.cleaner.delete.retention.ms", "-1", "out of range"),
        ("log.cleaner.min.compaction.lag.ms", "-1", "out of range"),
        ("log.cleaner.max.compaction.lag.ms", "0", "out of range"),
        ("log.cleaner.max.compaction.lag.ms", str(LONG_MAX + 1), "out of range"),
        ("log.cleanup.policy", "compacted", "each item must be one of compact, delete"),
        ("log.cleanup.policy", "compact,,delete", "each item must be one of compact, delete"),
    ],
)
def test_bad_cleaner_defaults_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ={}, overrides={name: value})


def _settings(**overrides: str) -> Settings:
    return load_settings(environ={}, overrides=overrides)


def test_the_cleaner_uses_the_broker_defaults_where_the_topic_sets_none() -> None:
    settings = _settings(
        **{
            "log.cleaner.min.cleanable.ratio": "0.1",
            "log.cleaner.delete.retention.ms": "1000",
            "log.cleaner.min.compaction.lag.ms": "2000",
            "log.cleaner.max.compaction.lag.ms": "60000",
        }
    )
    config = cleaner_config({}, settings)
    assert (
        config.min_cleanable_dirty_ratio,
        config.delete_retention_ms,
        config.min_compaction_lag_ms,
        config.max_compaction_lag_ms,
    ) == (0.1, 1000, 2000, 60000)
    # A topic's own value wins, as in Kafka.
    topic = {
        "min.cleanable.dirty.ratio": "0.7",
        "delete.retention.ms": "5",
        "min.compaction.lag.ms": "6",
        "max.compaction.lag.ms": "7",
    }
    config = cleaner_config(topic, settings)
    assert (
        config.min_cleanable_dirty_ratio,
        config.delete_retention_ms,
        config.min_compaction_lag_ms,
        config.max_compaction_lag_ms,
    ) == (0.7, 5, 6, 7)
    # Without any setting, Kafka's defaults.
    defaults = cleaner_config({}, Settings())
    assert (defaults.min_cleanable_dirty_ratio, defaults.delete_retention_ms) == (
        CleanerConfig().min_cleanable_dirty_ratio,
        CleanerConfig().delete_retention_ms,
    )
    assert defaults.max_compaction_lag_ms == LONG_MAX


def test_log_cleanup_policy_is_the_default_policy_of_every_reader() -> None:
    compact = _settings(**{"log.cleanup.policy": "compact"})
    assert is_compacted({}, compact)
    assert not is_compacted({"cleanup.policy": "delete"}, compact)
    assert not is_compacted({}, Settings())
    # Retention deletes nothing by age or size from a topic compacted by default...
    assert retention_configs({"retention.ms": "1000"}, compact.log_cleanup_policy) == {
        "cleanup.policy": "compact",
        "retention.ms": "-1",
        "retention.bytes": "-1",
    }
    # ...and still does when the topic itself lists delete.
    both = {"cleanup.policy": "compact,delete", "retention.ms": "1000"}
    assert retention_configs(both, "compact") == both
    assert retention_configs({"retention.ms": "1000"}, "delete")["retention.ms"] == "1000"


def test_describe_configs_reports_the_broker_defaults_of_a_topic() -> None:
    settings = _settings(
        **{
            "log.cleanup.policy": "compact,delete",
            "log.cleaner.min.cleanable.ratio": "0.25",
            "log.cleaner.delete.retention.ms": "1000",
            "log.cleaner.min.compaction.lag.ms": "2000",
            "log.cleaner.max.compaction.lag.ms": "60000",
        }
    )
    described = {
        name: TOPIC_CONFIGS[name][1](settings)
        for name in (
            "cleanup.policy",
            "min.cleanable.dirty.ratio",
            "delete.retention.ms",
            "min.compaction.lag.ms",
            "max.compaction.lag.ms",
        )
    }
    assert described == {
        "cleanup.policy": "compact,delete",
        "min.cleanable.dirty.ratio": "0.25",
        "delete.retention.ms": "1000",
        "min.compaction.lag.ms": "2000",
        "max.compaction.lag.ms": "60000",
    }


def test_describe_configs_types_the_ratio_a_double_and_the_policy_a_list() -> None:
    # DescribeConfigsResponse's ConfigType: 6 DOUBLE, 7 LIST (Kafka's ConfigDef types).
    assert _config_type("min.cleanable.dirty.ratio") == 6
    assert _config_type("log.cleaner.min.cleanable.ratio") == 6
    assert _config_type("cleanup.policy") == 7
    assert _config_type("log.cleanup.policy") == 7
