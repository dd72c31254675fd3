from __future__ import annotations

from typing import Any

import pytest

from pgworker import WorkerConfig, queries
from pgworker.config import default_prefetch
from pgworker.errors import ConfigError
from pgworker.worker import claim_size_below, claim_statements


def test_defaults_are_pinned() -> None:
    config = WorkerConfig()
    assert (config.concurrency, config.poll_interval, config.shutdown_timeout) == (5, 1.0, 30.0)
    assert (config.heartbeat_interval, config.rescue_interval, config.stale_after) == (
        5.0, 10.0, 30.0,
    )  # fmt: skip
    assert config.listen is True
    assert config.queues is None
    assert config.effective_prefetch == 1000


@pytest.mark.parametrize(("concurrency", "prefetch"), [(1, 200), (2, 400), (5, 1000), (50, 1000)])
def test_default_prefetch_follows_concurrency(concurrency: int, prefetch: int) -> None:
    assert default_prefetch(concurrency) == prefetch


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "--concurrency"),
        ({"prefetch": -1}, "--prefetch"),
        ({"poll_interval": 0}, "--poll-interval"),
        ({"stale_after": 1, "heartbeat_interval": 2}, "--stale-after"),
        ({"queues": ()}, "--queues"),
        ({"queues": ("ok", "no spaces")}, "invalid queue name"),
    ],
)
def test_invalid_configs_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WorkerConfig(**kwargs)


def test_claim_sizes_round_down() -> None:
    assert claim_size_below(1) == 1
    assert claim_size_below(7) == 6
    assert claim_size_below(105) == 100
    assert claim_size_below(10_000) == 500
    assert claim_size_below(0) == 1


def test_claim_statements_carry_a_literal_limit() -> None:
    statements = claim_statements(queries.CLAIM_JOBS_TEMPLATE)
    assert set(statements) == set(queries.CLAIM_SIZES)
    assert "LIMIT 200\n" in statements[200]
    assert "{limit}" not in statements[1]
