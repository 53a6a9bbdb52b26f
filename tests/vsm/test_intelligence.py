"""S4: demand in, one proposal per persistent gap out, demand history into the store."""

from __future__ import annotations

import anyio
import pytest

from vsm_mcp.core.hysteresis import GapDetected, GapDetector, HysteresisPolicy
from vsm_mcp.core.messages import DemandAggregate
from vsm_mcp.core.operators import AddCapability, effect
from vsm_mcp.core.variety import DemandProfile
from vsm_mcp.core.window import DemandWindow
from vsm_mcp.store.memory import MemoryStore
from vsm_mcp.vsm.bus import Bus
from vsm_mcp.vsm.events import AcquisitionProposal, DemandObserved, GapClosed
from vsm_mcp.vsm.intelligence import Intelligence
from vsm_mcp.vsm.notices import Notices

pytestmark = pytest.mark.anyio


async def test_a_persistent_gap_is_one_proposal_naming_unmatched_demand_then_one_close() -> None:
    async with MemoryStore.open() as store, Bus() as bus:
        inbox = bus.inbox("s4")
        s5 = bus.inbox("s5")
        detector = GapDetector(HysteresisPolicy(upper=0.5, lower=0.2, persist_events=3, persist_s=0))
        s4 = Intelligence(inbox, bus, store, detector=detector, clock=lambda: 0.0)
        s4.set_capacity({"files": 1_000_000})
        demand = [("files",), ("weather", "weather"), ("maps",), ("weather",), ("weather", "maps")]
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(s4.run)
                for categories in demand:
                    await bus.publish("s4", DemandObserved(categories, at=7200.0))
                await anyio.wait_all_tasks_blocked()  # S4 has handled all five and waits for more
                s4.set_capacity({"files": 1_000_000, "weather": 1_000_000, "maps": 1_000_000})
                await bus.publish("s4", DemandObserved(("files",), at=7300.0))
                inbox.close()  # S4 drains, flushes demand to the store, and returns
        sent = [(await s5.receive()).payload for _ in range(s5.stats().routine.queued)]
        stored = sorted(await store.demand_since(0), key=lambda a: a.category)

    assert [type(m) for m in sent] == [AcquisitionProposal, GapClosed]
    proposal = sent[0]
    assert isinstance(proposal, AcquisitionProposal)
    # A batch counts all its events towards persistence: the gap opens with the 2nd batch
    # (2 events) and persists 3 events after the 3rd: files x1, weather x2, maps x1; files answered.
    assert proposal.unmatched == (("weather", 2), ("maps", 1))
    assert proposal.persisted_events == 3
    assert proposal.reading.coverage == pytest.approx(1 / 4)
    # Each unmatched category priced by the amplifier that would answer it, on the same demand.
    files_weather_maps = DemandProfile(
        counts={"files": 1, "weather": 2, "maps": 1}, capacity={"files": 1_000_000}
    )
    assert proposal.expected_gaps == tuple(
        (c, round(effect(AddCapability(c), files_weather_maps).after.gap, 6)) for c in ("weather", "maps")
    )
    assert proposal.expected_gaps[0][1] < proposal.reading.gap
    assert s4.proposals == 1
    assert stored == [
        DemandAggregate("files", 7200, 2, 2),  # 7300 s is in the same hour bucket
        DemandAggregate("maps", 7200, 2, 0),  # unmatched when observed
        DemandAggregate("weather", 7200, 4, 0),
    ]


async def test_flush_writes_only_what_was_counted_since_the_last_flush() -> None:
    async with MemoryStore.open() as store, Bus() as bus:
        s4 = Intelligence(bus.inbox("s4"), bus, store, clock=lambda: 0.0)
        s4.observe(["a", "a", "b"], at=10.0)
        assert await s4.flush_demand() == 2
        assert await s4.flush_demand() == 0
        s4.observe(["a"], at=3700.0)
        assert await s4.flush_demand() == 1
        stored = {(a.category, a.bucket_start): a.count for a in await store.demand_since(0)}
    assert stored == {("a", 0): 2, ("b", 0): 1, ("a", 3600): 1}


async def test_demand_ages_out_without_new_events_and_a_detected_gap_clears() -> None:
    now = [0.0]
    async with MemoryStore.open() as store, Bus() as bus:
        detector = GapDetector(HysteresisPolicy(upper=0.5, lower=0.2, persist_events=3, persist_s=0))
        window = DemandWindow(max_events=1000, max_age_s=10.0, clock=lambda: now[0])
        s4 = Intelligence(bus.inbox("s4"), bus, store, window=window, detector=detector, clock=lambda: now[0])
        detected = s4.observe(["klingon"] * 5, at=0.0)
        assert detected is not None and type(detected).__name__ == "GapDetected"
        now[0] = 5.0
        assert s4.age() is None and s4.reading().events == 5  # still within the window's age
        now[0] = 100.0  # no demand since: the window has forgotten it
        cleared = s4.age()
        assert cleared is not None and type(cleared).__name__ == "GapCleared"
        assert (s4.reading().events, s4.reading().gap) == (0, 0.0)
        assert s4.age() is None  # cleared once


async def test_each_batch_of_demand_is_a_variety_notice_with_the_reading_after_it() -> None:
    notices = Notices()
    async with MemoryStore.open() as store, Bus() as bus:
        inbox = bus.inbox("s4")
        s4 = Intelligence(inbox, bus, store, clock=lambda: 0.0, notices=notices)
        s4.set_capacity({"files": 1})
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(s4.run)
                await bus.publish("s4", DemandObserved(("files", "maps"), at=10.0))
                first = await notices.wait_for("variety.read", after=0)
                await bus.publish("s4", DemandObserved(("maps",), at=11.0))
                second = await notices.wait_for("variety.read", after=first.seq)
                inbox.close()
    assert first.subject == "s4"
    assert (first.data["events"], first.data["categories"]) == (2, 2)
    assert first.data["coverage"] == pytest.approx(0.5)
    assert (second.data["events"], second.data["coverage"]) == (3, pytest.approx(1 / 3))
    assert second.data["demand_variety_bits"] == pytest.approx(s4.window.reading().demand_variety_bits)


async def test_a_burst_is_not_a_lasting_gap_until_time_has_passed_too() -> None:
    now = [0.0]
    async with MemoryStore.open() as store, Bus() as bus:
        detector = GapDetector(HysteresisPolicy(upper=0.5, lower=0.2, persist_events=5, persist_s=30.0))
        window = DemandWindow(max_events=1000, max_age_s=3600.0, clock=lambda: now[0])
        s4 = Intelligence(bus.inbox("s4"), bus, store, window=window, detector=detector, clock=lambda: now[0])
        assert s4.observe(["klingon"] * 40, at=0.0) is None  # 40 events in no time
        now[0] = 29.0
        assert s4.age() is None
        now[0] = 30.0  # no new demand, but the gap has now lasted 30 s as well
        detected = s4.age()
        assert isinstance(detected, GapDetected)
        assert (detected.persisted_events, detected.persisted_s) == (40, 30.0)
