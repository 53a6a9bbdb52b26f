from __future__ import annotations

from vsm_mcp.core.breaker import BreakerState, CircuitBreaker
from vsm_mcp.fleet.resilience import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    top = Backoff(1.0, 5.0, rand=lambda: 1.0)
    assert [top.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    bottom = Backoff(1.0, 5.0, rand=lambda: 0.0)
    assert [bottom.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]
    top.reset()
    assert top.next_delay() == 1.0


def test_breaker_opens_then_admits_one_probe_after_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 10.0, clock=clock)
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.admit()
    assert breaker.retry_after() == 10.0
    clock.now = 10
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit()
    assert not breaker.admit()  # one probe at a time
    breaker.record_failure()  # the probe failed: open again
    assert breaker.state is BreakerState.OPEN
    assert breaker.trips == 2
    clock.now = 20
    assert breaker.admit()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit()
