"""Restart intensity: the one sliding-window rule of both supervisors."""

from __future__ import annotations

from vsm_mcp.core.intensity import RestartIntensity


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_it_trips_on_limit_failures_within_the_window() -> None:
    clock = Clock()
    loop = RestartIntensity(3, 10.0, clock=clock)
    assert not loop.record()
    clock.now = 5
    assert not loop.record()
    clock.now = 10  # the first failure is exactly a window old: it has left the window
    assert not loop.record()
    assert loop.recent == 2
    clock.now = 12
    assert loop.record()
    assert loop.recent == 3


def test_clear_forgets_every_failure() -> None:
    clock = Clock()
    loop = RestartIntensity(2, 10.0, clock=clock)
    assert not loop.record()
    loop.clear()
    assert loop.recent == 0
    assert not loop.record()
    assert loop.record()
