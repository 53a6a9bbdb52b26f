"""S2's door at a unit: a concurrency limit, clients taking turns, every slot released once."""

from __future__ import annotations

from vsm_mcp.fleet.admission import Admission, Slot


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_over_the_limit_calls_wait_and_clients_take_turns() -> None:
    clock = Clock()
    door = Admission(2, clock=clock)
    running: dict[str, Slot] = {}

    def call(name: str) -> None:
        door.admit(name[0], lambda slot: running.__setitem__(name, slot))

    for name in ("a1", "a2", "a3", "a4", "a5", "b1", "b2"):
        call(name)
    assert list(running) == ["a1", "a2"]
    assert (door.stats.in_flight, door.stats.queued) == (2, 5)
    clock.now = 1.0
    order = []
    while running:
        name = next(iter(running))
        running.pop(name).release()
        order.append(name)
        assert door.stats.in_flight <= 2
    # a3 waited first; then b1 (b's turn), a4, b2, a5: one busy client does not starve the other
    assert order == ["a1", "a2", "a3", "b1", "a4", "b2", "a5"]
    assert (door.stats.max_in_flight, door.stats.waited, door.stats.queued) == (2, 5, 0)
    assert door.stats.max_queued == 5
    assert door.stats.waited_s > 0


def test_a_slot_is_released_once_and_a_withdrawn_call_never_runs() -> None:
    door = Admission(1)
    slots: list[Slot] = []
    assert door.admit("a", slots.append) is None
    ran: list[str] = []
    withdraw = door.admit("b", lambda _: ran.append("b"))
    assert withdraw is not None
    withdraw()
    slots[0].release()
    slots[0].release()  # a second release does nothing
    assert ran == []
    assert (door.stats.in_flight, door.stats.queued) == (0, 0)
    assert door.admit("c", slots.append) is None  # the freed slot is taken at once
    assert door.stats.in_flight == 1


def test_without_a_limit_nothing_waits() -> None:
    door = Admission(None)
    slots: list[Slot] = []
    for _ in range(50):
        assert door.admit("a", slots.append) is None
    assert (door.stats.in_flight, door.stats.max_in_flight, door.stats.queued) == (50, 50, 0)
