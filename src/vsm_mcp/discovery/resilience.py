"""Per-source resilience: a circuit breaker and a TTL cache kept in the store.

Invariants:
- `SourceBreaker`: the one circuit breaker (`vsm_mcp.core.breaker`) around a
  source's requests: closed until ``failure_threshold`` consecutive failures,
  then open (calls refused at once with `SourceError`) for ``reset_after_s``;
  then one trial call (half-open): success closes it, failure re-opens it.
- `TtlCache` stores ``{"expires_at": t, "value": v}`` under ``cache:<key>``
  through any `KeyValue` (`vsm_mcp.core.ports`; every `Store` is one); an expired or malformed record is a miss, never an error.
- both take an injectable monotonic/wall clock, so tests need no sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from vsm_mcp.core.breaker import BreakerState, CircuitBreaker
from vsm_mcp.core.ports import JsonValue, KeyValue
from vsm_mcp.errors import SourceError

T = TypeVar("T")

FAILURE_THRESHOLD = 3  # three consecutive failures: the source is down, not flaky
RESET_AFTER_S = 60.0  # a minute before trying a down registry again
DEFAULT_TTL_S = 6 * 3600.0  # registry listings change slowly; refresh a few times a day


class MemoryKeyValue:
    """A dict-backed `KeyValue` for tests and store-less use."""

    def __init__(self) -> None:
        self.data: dict[str, JsonValue] = {}

    async def kv_get(self, key: str) -> JsonValue:
        return self.data.get(key)

    async def kv_put(self, key: str, value: JsonValue) -> None:
        self.data[key] = value


class SourceBreaker:
    """A live source's circuit breaker: the one `CircuitBreaker`, around awaited requests."""

    def __init__(
        self,
        name: str,
        failure_threshold: int = FAILURE_THRESHOLD,
        reset_after_s: float = RESET_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.breaker = CircuitBreaker(failure_threshold, reset_after_s, clock=clock)

    @property
    def state(self) -> BreakerState:
        return self.breaker.state

    @property
    def failures(self) -> int:
        return self.breaker.failures

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` unless the breaker refuses it.

        Raises:
            SourceError: the breaker is open (or its one probe is out), or ``operation`` raised one
                (counted as a failure).
        """
        if not self.breaker.admit():
            raise SourceError(
                f"{self.name}: circuit open after {self.breaker.failures} failures; "
                f"retry in {self.breaker.retry_after():.0f} s"
            )
        try:
            result = await operation()
        except SourceError:
            self.breaker.record_failure()
            raise
        except BaseException:
            self.breaker.release_probe()  # no verdict (cancelled, or a bug): another may probe
            raise
        self.breaker.record_success()
        return result


@dataclass(slots=True)
class TtlCache:
    """JSON values with an expiry, persisted through a `KeyValue`."""

    store: KeyValue
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
