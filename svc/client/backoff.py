"""The wait between reconnection attempts: exponential, with full jitter.

Full jitter (a uniform draw between 0 and the exponential bound) spreads a crowd that lost
its server at the same instant over the whole window, instead of sending it back in
synchronised waves; it is what AWS's "Exponential Backoff And Jitter" measured best.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Attempt ``n`` (0 after each welcome) waits ``uniform(0, min(max, initial * factor**n))``
    seconds."""

    initial: float = 0.5
    max: float = 10.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not (0 <= self.initial <= self.max) or self.factor < 1:
            raise ValueError(f"need 0 <= initial <= max and factor >= 1: {self}")

    def bound(self, attempt: int) -> float:
        # min() first would still compute factor**attempt: cap the exponent instead.
        return min(self.max, self.initial * self.factor ** min(attempt, 64))

    def delay(self, attempt: int) -> float:
        return random.uniform(0, self.bound(attempt))
