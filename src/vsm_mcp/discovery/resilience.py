"""Per-source resilience: a circuit breaker and a TTL cache kept in the store.

Invariants:
- `CircuitBreaker`: closed until ``failure_threshold`` consecutive failures,
  then open (calls refused at once with `SourceError`) for ``reset_after_s``;
  then one trial call (half-open): success closes it, failure re-opens it.
- `TtlCache` stores ``{"expires_at": t, "value": v}`` under ``cache:<key>``
  through any `KeyValueStore` (the `Store` port's ``kv_get``/``kv_put``
  satisfy it); an expired or malformed record is a miss, never an error.
- both take an injectable monotonic/wall clock, so tests need no sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, TypeVar

from vsm_mcp.core.ports import JsonValue
from vsm_mcp.errors import SourceError

T = TypeVar("T")

FAILURE_THRESHOLD = 3  # three consecutive failures: the source is down, not flaky
RESET_AFTER_S = 60.0  # a minute before trying a down registry again
DEFAULT_TTL_S = 6 * 3600.0  # registry listings change slowly; refresh a few times a day


class KeyValueStore(Protocol):
    """The persistence discovery needs: the store's JSON key-value pairs."""

    async def kv_get(self, key: str) -> JsonValue: ...

    async def kv_put(self, key: str, value: JsonValue) -> None: ...


class MemoryKeyValue:
    """A dict-backed `KeyValueStore` for tests and store-less use."""

    def __init__(self) -> None:
        self.data: dict[str, JsonValue] = {}

    async def kv_get(self, key: str) -> JsonValue:
        return self.data.get(key)

    async def kv_put(self, key: str, value: JsonValue) -> None:
        self.data[key] = value


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(slots=True)
class CircuitBreaker:
    """Stops calling a source that keeps failing (see module invariants)."""

    name: str
    failure_threshold: int = FAILURE_THRESHOLD
    reset_after_s: float = RESET_AFTER_S
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    _trial_running: bool = field(default=False, repr=False)

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self.opened_at >= self.reset_after_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` unless the breaker is open.

        Raises:
            SourceError: the breaker is open, or ``operation`` raised one (counted as a failure).
        """
        state = self.state
        if state is BreakerState.OPEN or (state is BreakerState.HALF_OPEN and self._trial_running):
            assert self.opened_at is not None
            wait = self.reset_after_s - (self.clock() - self.opened_at)
            raise SourceError(
                f"{self.name}: circuit open after {self.failures} failures; retry in {wait:.0f} s"
            )
        self._trial_running = state is BreakerState.HALF_OPEN
        try:
            result = await operation()
        except SourceError:
            self.failures += 1
            if self.failures >= self.failure_threshold or state is BreakerState.HALF_OPEN:
                self.opened_at = self.clock()
            raise
        finally:
            self._trial_running = False
        self.failures = 0
        self.opened_at = None
        return result


@dataclass(slots=True)
class TtlCache:
    """JSON values with an expiry, persisted through a `KeyValueStore`."""

    store: KeyValueStore
    ttl_s: float = DEFAULT_TTL_S
    clock: Callable[[], float] = time.time

    async def get(self, key: str) -> JsonValue:
        """The cached value, or None when absent or expired."""
        record = await self.store.kv_get(f"cache:{key}")
        if not isinstance(record, dict):
            return None
        expires_at = record.get("expires_at")
        if not isinstance(expires_at, int | float) or expires_at <= self.clock():
            return None
        return record.get("value")

    async def put(self, key: str, value: JsonValue) -> None:
        await self.store.kv_put(f"cache:{key}", {"expires_at": self.clock() + self.ttl_s, "value": value})
