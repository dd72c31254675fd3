"""RetryPolicy: exponential backoff with jitter, a pure function of the attempt number."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

DEFAULT_INITIAL_DELAY: Final = 0.5
DEFAULT_MAX_DELAY: Final = 30.0
DEFAULT_JITTER: Final = 0.25


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delay before retry n: initial x 2^(n-1), capped at max_delay, then +/- jitter."""

    initial_delay: float = DEFAULT_INITIAL_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    jitter: float = DEFAULT_JITTER

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must be >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError("retry jitter must be in [0, 1)")

    def base_delay(self, attempt: int) -> float:
        """The delay after failed attempt `attempt` (1-based), before jitter."""
        exponent = min(max(attempt, 1) - 1, 64)  # 2**64 already exceeds any sane cap
        return float(min(self.max_delay, self.initial_delay * 2.0**exponent))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The jittered delay after failed attempt `attempt`."""
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return self.base_delay(attempt) * (1.0 + spread)
