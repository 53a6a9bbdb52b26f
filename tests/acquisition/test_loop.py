"""The loop: sustained gap -> S4 proposal -> S5 decision -> acquisition -> the gap closes; no flapping."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from vsm_mcp.acquisition.candidates import category_query
from vsm_mcp.acquisition.launch import SandboxLauncher
from vsm_mcp.acquisition.loop import AcquisitionLoop
from vsm_mcp.acquisition.pipeline import Acquirer
from vsm_mcp.acquisition.vetting import VettingPolicy
from vsm_mcp.core.hysteresis import GapCleared, GapDetected, GapDetector, HysteresisPolicy
from vsm_mcp.core.messages import Priority
from vsm_mcp.core.window import DemandWindow
from vsm_mcp.discovery.catalog import Catalog, PackageRef, ServerEntry, ToolSpec
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.store import MemoryStore
from vsm_mcp.vsm.bus import Bus, Envelope
from vsm_mcp.vsm.events import ControlReport, GapClosed
from vsm_mcp.vsm.intelligence import Intelligence
from vsm_mcp.vsm.policy import Policy, PolicyRules

from .conftest import ProbeInstaller, children_running, stub_metadata

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ECHO = "search:echo text back"
QUANTUM = "search:quantum teleportation"

CATALOG = Catalog(
    (
        ServerEntry(
            "mcp-server-probe",
            "Echo text back and add integers",
            tools=(ToolSpec("echo", "Return the text unchanged"), ToolSpec("add", "Add two integers")),
            packages=(PackageRef("pypi", "mcp-server-probe", "1.0.0"),),
            license="MIT",
        ),
        ServerEntry(
            "weather-mcp",
            "Weather forecasts",
            tools=(ToolSpec("forecast", "Weather forecast for a city"),),
            packages=(PackageRef("npm", "weather-mcp", "2.0.0"),),
        ),
    )
)


def test_categories_map_to_catalog_queries() -> None:
    assert category_query(ECHO) == "echo text back"
    assert category_query("get_current_time") == "get current time"
    assert category_query("weather__getForecast") == "weather get Forecast"


def _system(
    bus: Bus, store: MemoryStore, tmp_path: Path, installer: ProbeInstaller
) -> tuple[Intelligence, AcquisitionLoop]:
    s4 = Intelligence(
        bus.inbox("s4"),
        bus,
        store,
        window=DemandWindow(max_events=10),
        detector=GapDetector(HysteresisPolicy(upper=0.5, lower=0.2, persist_events=5, persist_s=0)),
        to="acquisition",
    )
    s5 = Policy(bus.inbox("s5"), store, rules=PolicyRules(auto_approve_acquisition=True))
    acquirer = Acquirer(
        store=store,
        registry=FleetRegistry(store),
        installer=installer,
        metadata=stub_metadata(),
        known_names={"mcp-server-probe", "weather-mcp"},
        state_dir=tmp_path,
        policy=VettingPolicy(),
        launcher=SandboxLauncher(tmp_path, mode="off"),
    )
    loop = AcquisitionLoop(
        bus.inbox("acquisition"), acquirer=acquirer, matcher=Matcher(CATALOG), s4=s4, s5=s5
    )
    return s4, loop


async def _feed(s4: Intelligence, loop: AcquisitionLoop, categories: list[str]) -> list[object]:
    """Demand one event at a time, as S4's own handler does, handing S4's messages to the loop."""
    events: list[object] = []
    for category in categories:
        event = s4.observe([category], at=1_000_000.0)
        if isinstance(event, GapDetected):
            events.append(event)
            await loop.handle(Envelope(s4.proposal(event, 1_000_000.0), Priority.ROUTINE, "s4"))
        elif isinstance(event, GapCleared):
            events.append(event)
            await loop.handle(Envelope(GapClosed(1_000_000.0, event.reading), Priority.ROUTINE, "s4"))
    return events


async def test_a_sustained_gap_is_closed_by_an_acquisition(tmp_path: Path) -> None:
    installer = ProbeInstaller()
    async with MemoryStore.open() as store, Bus() as bus:
        s4, loop = _system(bus, store, tmp_path, installer)
        with anyio.fail_after(60):
            events = await _feed(s4, loop, [ECHO] * 5)
        assert [type(e).__name__ for e in events] == ["GapDetected"]
        assert events[0].reading.gap == 1.0  # type: ignore[attr-defined]
        assert installer.installs == ["pypi:mcp-server-probe@1.0.0"]
        assert loop.acquired[0].plan.unit == "probe"
        assert loop.acquired[0].spec.category == ECHO
        assert s4.reading().gap == 0.0
        assert s4.reading().coverage == 1.0
        # S5 decided on the gap (auto-approve), then vetted and recorded the outcome.
        decisions = await store.decisions()
        assert [(d.subject, d.choice) for d in reversed(decisions)] == [
            ("variety_gap", "approve"),
            ("acquire:pypi:mcp-server-probe@1.0.0", "approve"),
            ("acquire:pypi:mcp-server-probe@1.0.0", "acquired"),
        ]
        assert loop.s5.gap_open is True
        with anyio.fail_after(10):
            cleared = await _feed(s4, loop, [ECHO])
        assert [type(e).__name__ for e in cleared] == ["GapCleared"]
        assert loop.s5.gap_open is False
        assert list(await FleetRegistry(store).desired()) == ["probe"]
    assert children_running(str(tmp_path)) == []


async def test_hysteresis_allows_one_acquisition_attempt_per_gap_episode(tmp_path: Path) -> None:
    installer = ProbeInstaller()
    async with MemoryStore.open() as store, Bus() as bus:
        s4, loop = _system(bus, store, tmp_path, installer)
        with anyio.fail_after(60):
            events = await _feed(s4, loop, [ECHO, QUANTUM] * 3)
        assert [type(e).__name__ for e in events] == ["GapDetected"]
        before = events[0].reading.gap  # type: ignore[attr-defined]
        after = s4.reading().gap
        assert (round(before, 6), round(after, 6)) == (2.0, 1.5)  # echo answered, quantum has no server
        assert [(a.category, a.ok) for a in loop.attempts] == [(ECHO, True), (QUANTUM, False)]
        assert loop.attempts[1].detail == (
            "acquisition refused (no_candidate): no installable catalog server matches 'quantum teleportation'"
        )
        # The gap stays above the upper threshold: no new proposal, no new attempt, however long it lasts.
        with anyio.fail_after(10):
            more = await _feed(s4, loop, [QUANTUM, ECHO] * 20)
        assert more == []
        assert loop.proposals == 1
        assert len(loop.attempts) == 2
        # A duplicate of the proposal in the same episode changes nothing either.
        assert s4.last_event is not None
        await loop.handle(Envelope(s4.proposal(events[0], 1.0), Priority.ROUTINE, "s4"))  # type: ignore[arg-type]
        assert len(loop.attempts) == 2
        assert installer.installs == ["pypi:mcp-server-probe@1.0.0"]
        # Once the gap clears and opens again, a new episode tries the still-unmet need again (once).
        with anyio.fail_after(10):
            cleared = await _feed(s4, loop, [ECHO] * 10)
            reopened = await _feed(s4, loop, [QUANTUM] * 10)
        assert [type(e).__name__ for e in cleared + reopened] == ["GapCleared", "GapDetected"]
        assert [(a.category, a.ok) for a in loop.attempts[2:]] == [(QUANTUM, False)]
        assert installer.installs == ["pypi:mcp-server-probe@1.0.0"]


async def test_a_gap_while_s3_is_over_budget_with_nothing_idle_is_deferred_and_installs_nothing(
    tmp_path: Path,
) -> None:
    installer = ProbeInstaller()
    async with MemoryStore.open() as store, Bus() as bus:
        s4, loop = _system(bus, store, tmp_path, installer)
        full = ControlReport(
            at=1.0,
            running_units=2,
            max_units=1,
            rss_bytes=0,
            max_rss_bytes=None,
            over_budget=True,
            failed_units=(),
            idle_candidates=(),
        )
        await loop.s5.handle(Envelope(full, Priority.ROUTINE, "s3"))
        with anyio.fail_after(60):
            events = await _feed(s4, loop, [ECHO] * 5)
        assert [type(e).__name__ for e in events] == ["GapDetected"]
        assert installer.installs == [] and loop.attempts == []
        [decision] = await store.decisions()
        assert (decision.subject, decision.choice) == ("variety_gap", "defer")
        assert decision.inputs["s3"]["over_budget"] is True


async def test_with_a_search_the_loop_takes_its_candidates_for_each_unmet_category(tmp_path: Path) -> None:
    """The runtime hands the loop `CapabilityService.search` (the live sources beside a weak
    catalog match): the loop asks it with the category's query and acquires its first candidate."""
    from vsm_mcp.acquisition.candidates import rank_candidates
    from vsm_mcp.acquisition.vetting import Candidate

    asked: list[tuple[str, int, str]] = []

    async def search(query: str, limit: int, category: str) -> tuple[Candidate, ...]:
        asked.append((query, limit, category))
        # what a live round would add: here the catalog's own probe, found for a query the catalog alone misses
        return tuple(rank_candidates(Matcher(CATALOG), "echo text back", registry_types=("pypi",), top_k=1))

    installer = ProbeInstaller()
    async with MemoryStore.open() as store, Bus() as bus:
        s4, loop = _system(bus, store, tmp_path, installer)
        loop.search = search
        with anyio.fail_after(60):
            await _feed(s4, loop, [QUANTUM] * 5)
        assert asked == [("quantum teleportation", 5, QUANTUM)]
        assert [(a.category, a.ok, a.unit) for a in loop.attempts] == [(QUANTUM, True, "probe")]
        assert installer.installs == ["pypi:mcp-server-probe@1.0.0"]
    assert children_running(str(tmp_path)) == []
