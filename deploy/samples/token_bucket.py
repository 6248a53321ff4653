"""A token-bucket rate limiter, as used in front of embedding providers."""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """Allows ``rate`` requests per second with bursts of up to ``capacity``."""

    def __init__(self, rate: float, capacity: int) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self._tokens = float(capacity)
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_acquire(self, tokens: int = 1) -> bool:
        """Take ``tokens`` if available right now; never blocks."""
        with self._lock:
            self._refill()
            if self._tokens >= tokens:
                self._tokens -= tokens
                return True
            return False

    def acquire(self, tokens: int = 1) -> None:
        """Block until ``tokens`` are available."""
        while not self.try_acquire(tokens):
            time.sleep(tokens / self.rate / 4)


def exponential_backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based), capped."""
    return min(cap, base * (2 ** attempt))
