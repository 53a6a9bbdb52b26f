from __future__ import annotations

import pytest

from vsm_mcp.core.breaker import BreakerState
from vsm_mcp.discovery.resilience import MemoryKeyValue, SourceBreaker, TtlCache
from vsm_mcp.errors import SourceError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def fail() -> int:
    raise SourceError("down")


async def succeed() -> int:
    return 7


@pytest.mark.anyio
async def test_breaker_opens_after_threshold_and_recovers_after_a_good_trial() -> None:
    clock = FakeClock()
    breaker = SourceBreaker("npm", failure_threshold=3, reset_after_s=60.0, clock=clock)
    for _ in range(3):
        with pytest.raises(SourceError, match="down"):
            await breaker.call(fail)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(SourceError, match="npm: circuit open after 3 failures; retry in 60 s"):
        await breaker.call(succeed)
    clock.now += 60.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert await breaker.call(succeed) == 7
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0


@pytest.mark.anyio
async def test_failed_trial_reopens_at_once() -> None:
    clock = FakeClock()
    breaker = SourceBreaker("pypi", failure_threshold=2, reset_after_s=10.0, clock=clock)
    for _ in range(2):
        with pytest.raises(SourceError):
            await breaker.call(fail)
    clock.now += 10.0
    with pytest.raises(SourceError, match="down"):
        await breaker.call(fail)
    assert breaker.state is BreakerState.OPEN


@pytest.mark.anyio
async def test_ttl_cache_expires() -> None:
    clock = FakeClock()
    kv = MemoryKeyValue()
    cache = TtlCache(kv, ttl_s=30.0, clock=clock)
    await cache.put("k", {"a": [1, 2]})
    assert await cache.get("k") == {"a": [1, 2]}
    assert kv.data["cache:k"] == {"expires_at": 1030.0, "value": {"a": [1, 2]}}
    clock.now += 30.0
    assert await cache.get("k") is None
    await kv.kv_put("cache:bad", "not a record")
    assert await cache.get("bad") is None
