"""Acquisition asks the live sources only when the offline catalog has nothing installable."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.discovery.conftest import registry_item, serve_registry

from vsm_mcp.acquisition.pipeline import Acquirer
from vsm_mcp.acquisition.service import CapabilityService
from vsm_mcp.discovery.catalog import Catalog, PackageRef, ServerEntry, ToolSpec
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.discovery.outcomes import OutcomeLedger
from vsm_mcp.discovery.resilience import TtlCache
from vsm_mcp.discovery.sources import GuardedSource, RegistrySource
from vsm_mcp.errors import AcquisitionRefusedError
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.store import MemoryStore

from .conftest import ProbeInstaller, stub_metadata

pytestmark = pytest.mark.anyio

ITEMS = [registry_item("io.github.a/pdf-forge", "Create and merge PDF documents", npm="pdf-forge")]
CATALOG = Catalog(
    (
        ServerEntry(
            "time-server",
            "Current time and timezone conversion",
            (ToolSpec("get_current_time", "The current time in a timezone"),),
            packages=(PackageRef("pypi", "mcp-server-time", "1.0.0"),),
        ),
    )
)


def _service(store: MemoryStore, tmp_path: Path, sources: list[GuardedSource]) -> CapabilityService:
    acquirer = Acquirer(
        store=store,
        registry=FleetRegistry(store),
        installer=ProbeInstaller(),
        metadata=stub_metadata(),  # type: ignore[arg-type]
        known_names=set(),
        state_dir=tmp_path,
    )
    return CapabilityService(acquirer, Matcher(CATALOG), live_sources=sources)


async def test_a_query_the_catalog_cannot_answer_gets_live_candidates_not_in_the_catalog(
    tmp_path: Path,
) -> None:
    async with (
        MemoryStore.open() as store,
        serve_registry(ITEMS) as registry,
        httpx.AsyncClient(trust_env=False) as client,
    ):
        service = _service(
            store, tmp_path, [GuardedSource(RegistrySource(client, registry.url), TtlCache(store))]
        )
        plan = await service.plan("merge pdf documents")
        assert plan.candidate.ref == "npm:pdf-forge@1.0.0"
        assert plan.candidate.in_catalog is False  # vetting treats it as not listed
        assert plan.candidate.reasons[0] == "found by mcp-registry, not in the catalog"
        asked = len(registry.requests)
        assert asked >= 1
        # The catalog answers this one: the live sources are not asked.
        assert (await service.plan("current time in a timezone")).candidate.identifier == "mcp-server-time"
        assert len(registry.requests) == asked


async def test_a_failing_source_is_named_in_the_refusal_within_its_deadline(tmp_path: Path) -> None:
    async with (
        MemoryStore.open() as store,
        serve_registry(ITEMS) as registry,
        httpx.AsyncClient(trust_env=False) as client,
    ):
        registry.mode = "error"
        service = _service(
            store, tmp_path, [GuardedSource(RegistrySource(client, registry.url), deadline_s=5.0)]
        )
        with pytest.raises(
            AcquisitionRefusedError, match=r"live sources found none \(mcp-registry: .*HTTP 500"
        ):
            await service.plan("merge pdf documents")


def test_what_served_a_demand_category_well_ranks_higher_for_it(tmp_path: Path) -> None:
    twins = Catalog(
        tuple(
            ServerEntry(
                name,
                "Current time and timezone conversion",
                (ToolSpec("get_current_time", "The current time in a timezone"),),
                packages=(PackageRef("pypi", f"mcp-{name}", "1.0.0"),),
            )
            for name in ("clock-a", "clock-b")
        )
    )
    ledger = OutcomeLedger()
    service = CapabilityService(_bare_acquirer(tmp_path), Matcher(twins, outcomes=ledger))
    query = "current time in a timezone"
    before = [c.server for c in service.find(query)]
    loser, winner = before[0], before[1]
    for _ in range(20):  # what answered this very need: the lower-ranked twin, every time
        ledger.record(winner, "search:current time in a timezone", True)
        ledger.record(loser, "search:current time in a timezone", False)
    assert service.find(query)[0].server == winner
    # Another category's outcomes do not move this one.
    assert [c.server for c in service.find(query, category="search:weather")] == before


def _bare_acquirer(tmp_path: Path) -> Acquirer:
    store = MemoryStore()
    return Acquirer(
        store=store,
        registry=FleetRegistry(store),
        installer=ProbeInstaller(),
        metadata=stub_metadata(),  # type: ignore[arg-type]
        known_names=set(),
        state_dir=tmp_path,
    )
