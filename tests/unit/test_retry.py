from __future__ import annotations

import random

import pytest

from pgworker import RetryPolicy


def test_defaults_double_from_half_a_second_and_cap_at_thirty() -> None:
    policy = RetryPolicy()
    assert [policy.base_delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 7, 50])
def test_jitter_stays_within_a_quarter(attempt: int) -> None:
    policy = RetryPolicy()
    rng = random.Random(attempt)
    base = policy.base_delay(attempt)
    delays = [policy.delay(attempt, rng) for _ in range(2000)]
    assert min(delays) >= base * 0.75
    assert max(delays) <= base * 1.25
    assert max(delays) - min(delays) > base * 0.4  # it really spreads


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert RetryPolicy(max_delay=10).base_delay(10_000) == 10


def test_no_jitter_is_exact() -> None:
    assert RetryPolicy(initial_delay=1, jitter=0).delay(3) == 4


@pytest.mark.parametrize(
    "kwargs", [{"initial_delay": -1}, {"max_delay": -1}, {"jitter": 1.0}, {"jitter": -0.1}]
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="retry"):
        RetryPolicy(**kwargs)
