from __future__ import annotations

import pytest

from pgworker.config import (
    DEFAULT_PRUNE_INTERVAL,
    DEFAULT_RETENTION_FAILED,
    DEFAULT_RETENTION_SUCCEEDED,
    Retention,
    WorkerConfig,
)
from pgworker.durations import format_duration, parse_duration
from pgworker.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("1.5m", 90.0), ("12h", 43_200.0), ("7d", 604_800.0),
     ("2w", 1_209_600.0), (" 3 D ", 259_200.0), ("0", 0.0), (".5s", 0.5)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7x", "-1d", "d", "1d2h", "forever"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0004, "0 ms"), (0.35, "350 ms"), (4.21, "4.2 s"), (12.7, "12 s"), (61, "1 min 1 s"),
     (3600, "1 h"), (7500, "2 h 5 min"), (273_605, "3 d 4 h"), (-5, "0 ms")],
)  # fmt: skip
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_retention_defaults_are_a_day_and_a_week() -> None:
    assert Retention().items() == (
        ("succeeded", DEFAULT_RETENTION_SUCCEEDED),
        ("failed", DEFAULT_RETENTION_FAILED),
        ("cancelled", DEFAULT_RETENTION_FAILED),
    )
    assert (DEFAULT_RETENTION_SUCCEEDED, DEFAULT_RETENTION_FAILED) == (86_400.0, 604_800.0)


def test_retention_parse() -> None:
    assert Retention.parse("3d") == Retention(259_200.0, 259_200.0, 259_200.0)
    assert Retention.parse("succeeded=12h, failed=30d") == Retention(
        43_200.0, 2_592_000.0, DEFAULT_RETENTION_FAILED
    )
    assert Retention.parse("1d,cancelled=0") == Retention(86_400.0, 86_400.0, 0.0)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "needs a duration"),
        ("done=1d", "the statuses are"),
        ("failed=x", "invalid --retention"),
    ],
)
def test_retention_parse_refuses(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Retention.parse(text)


def test_worker_config_prune_defaults_and_checks() -> None:
    config = WorkerConfig()
    assert (config.prune, config.retention, config.prune_interval) == (
        True, Retention(), DEFAULT_PRUNE_INTERVAL,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="--prune-interval"):
        WorkerConfig(prune_interval=0)
    with pytest.raises(ConfigError, match="--retention"):
        WorkerConfig(retention=Retention(succeeded=-1))
