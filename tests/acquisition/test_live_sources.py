"""Acquisition asks the live sources beside the catalog only when the catalog's best match is weak
(`vsm_mcp.discovery.strength`), ranks the union with the same matcher and marks each origin."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.discovery.conftest import registry_item, serve_registry

from vsm_mcp.acquisition.mcp_tools import VSM_FIND_CAPABILITY, CapabilityTools
from vsm_mcp.acquisition.pipeline import Acquirer
from vsm_mcp.acquisition.service import CapabilityService
from vsm_mcp.discovery.catalog import Catalog, PackageRef, ServerEntry, ToolSpec
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.discovery.outcomes import OutcomeLedger
from vsm_mcp.discovery.resilience import TtlCache
from vsm_mcp.discovery.sources import GuardedSource, NameProbeSource, NpmSearchSource, RegistrySource
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


def _service(
    store: MemoryStore, tmp_path: Path, sources: list[GuardedSource], catalog: Catalog = CATALOG
) -> CapabilityService:
    acquirer = Acquirer(
        store=store,
        registry=FleetRegistry(store),
        installer=ProbeInstaller(),
        metadata=stub_metadata(),  # type: ignore[arg-type]
        known_names=set(),
        state_dir=tmp_path,
    )
    return CapabilityService(acquirer, Matcher(catalog), live_sources=sources)


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


# A catalog whose only PDF server views PDFs: "merge pdf documents" matches it on one word of three.
PDF_CATALOG = Catalog(
    (
        *CATALOG.entries,
        ServerEntry(
            "pdf-viewer",
            "View PDF files",
            (ToolSpec("view_pdf", "Show one page of a PDF"),),
            packages=(PackageRef("npm", "pdf-viewer-mcp", "2.0.0"),),
        ),
    )
)
NPM = "https://registry.npmjs.org"
READMES = {
    f"{NPM}/pdf-merge-mcp": "# pdf merge\n\nJoins PDFs.\n\n## Tools\n\n- `merge_pdfs`: Merge PDF documents into one\n",
    f"{NPM}/pdf-viewer-mcp": "# viewer\n\n## Tools\n\n- `view_pdf`: Show one page of a PDF\n",
}


class LiveWeb:
    """npm search (two hits, one of them the catalog's own package) and the official registry
    (one server), answered by an `httpx.MockTransport`; ``failing`` hosts answer HTTP 500."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.failing = failing
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host in self.failing:
            return httpx.Response(500)
        if request.url.path == "/v0.1/servers":
            term = request.url.params.get("search", "")
            items = [i for i in ITEMS if term in i["server"]["description"].lower()]
            return httpx.Response(200, json={"servers": items, "metadata": {"count": len(items)}})
        if request.url.path == "/-/v1/search":
            hits = [
                {"package": {"name": "pdf-merge-mcp", "version": "1.2.0", "description": "PDF tools"}},
                {"package": {"name": "pdf-viewer-mcp", "version": "2.0.0", "description": "PDF viewer"}},
            ]
            return httpx.Response(200, json={"objects": hits})
        readme = READMES.get(str(request.url))
        return httpx.Response(200, json={"readme": readme}) if readme else httpx.Response(404)

    def sources(self, client: httpx.AsyncClient) -> list[GuardedSource]:
        return [
            GuardedSource(RegistrySource(client), deadline_s=5.0),
            GuardedSource(NpmSearchSource(client), deadline_s=5.0),
        ]


async def test_a_weak_match_brings_live_candidates_ranked_beside_the_catalog_s(tmp_path: Path) -> None:
    web = LiveWeb()
    async with (
        MemoryStore.open() as store,
        httpx.AsyncClient(transport=httpx.MockTransport(web.handle)) as client,
    ):
        service = _service(store, tmp_path, web.sources(client), PDF_CATALOG)
        found = await service.search("merge pdf documents")
        result = await CapabilityTools(service).call(VSM_FIND_CAPABILITY, {"query": "merge pdf documents"})
    assert found.live_asked
    assert found.errors == {}
    assert (found.strength.server, found.strength.covered) == ("pdf-viewer", ("pdf",))
    # Ranked together: the servers that merge PDF documents first, the catalog's viewer after them;
    # npm's hit of the catalog's own package is the catalog entry (once, origin catalog).
    assert [(c["server"], c["origin"]) for c in result["candidates"]] == [
        ("pdf-merge-mcp", "npm"),
        ("io.github.a/pdf-forge", "mcp-registry"),
        ("pdf-viewer", "catalog"),
    ]
    merge, forge, viewer = found.candidates
    assert (merge.ref, merge.in_catalog, merge.reasons[0]) == (
        "npm:pdf-merge-mcp@1.2.0",
        False,
        "found by npm, not in the catalog",
    )
    assert (forge.ref, forge.in_catalog) == ("npm:pdf-forge@1.0.0", False)
    assert (viewer.ref, viewer.in_catalog) == ("npm:pdf-viewer-mcp@2.0.0", True)
    assert merge.score > viewer.score
    first = result["candidates"][0]
    assert (first["tools"], first["description"], first["package"]) == (
        ["merge_pdfs"],
        "PDF tools",
        "npm:pdf-merge-mcp@1.2.0",
    )
    # The client's model, asked to rerank, is shown the live entry's own description and tools.
    summary = service.summary(merge)
    assert (summary.description, summary.tools) == ("PDF tools", ("merge_pdfs",))
    assert result["live_sources_asked"] is True
    assert result["match_strength"]["missing"] == ["merg", "document"]
    assert result["errors"] == {}
    assert result["reranked_by"] == "offline"


async def test_a_strong_match_does_not_ask_the_live_sources(tmp_path: Path) -> None:
    web = LiveWeb()
    async with (
        MemoryStore.open() as store,
        httpx.AsyncClient(transport=httpx.MockTransport(web.handle)) as client,
    ):
        service = _service(store, tmp_path, web.sources(client), PDF_CATALOG)
        found = await service.search("current time in a timezone")
        result = await CapabilityTools(service).call(
            VSM_FIND_CAPABILITY, {"query": "current time in a timezone"}
        )
        plan = await service.plan("current time in a timezone")
    assert web.requests == []
    assert (found.live_asked, found.strength.weak, found.strength.coverage) == (False, False, 1.0)
    assert list(found.candidates) == service.find("current time in a timezone")
    assert [(c["server"], c["origin"]) for c in result["candidates"]] == [("time-server", "catalog")]
    assert (result["live_sources_asked"], result["errors"]) == (False, {})
    assert plan.candidate.identifier == "mcp-server-time"


async def test_a_failing_live_source_is_in_errors_and_hides_no_candidate(tmp_path: Path) -> None:
    web = LiveWeb(failing=frozenset({"registry.npmjs.org"}))
    async with (
        MemoryStore.open() as store,
        httpx.AsyncClient(transport=httpx.MockTransport(web.handle)) as client,
    ):
        service = _service(store, tmp_path, web.sources(client), PDF_CATALOG)
        found = await service.search("merge pdf documents")
        web.failing = frozenset({"registry.npmjs.org", "registry.modelcontextprotocol.io"})
        neither = await service.search("merge pdf documents")
        plan = await service.plan("merge pdf documents")
    assert list(found.errors) == ["npm"]
    assert "HTTP 500" in found.errors["npm"]
    assert sorted(c.server for c in found.candidates) == ["io.github.a/pdf-forge", "pdf-viewer"]
    # With every live source down, the catalog's candidates are still there, and the plan takes them.
    assert sorted(neither.errors) == ["mcp-registry", "npm"]
    assert [c.server for c in neither.candidates] == ["pdf-viewer"]
    assert plan.candidate.server == "pdf-viewer"


async def test_without_live_sources_a_weak_match_stays_offline(tmp_path: Path) -> None:
    async with MemoryStore.open() as store:
        service = _service(store, tmp_path, [], PDF_CATALOG)
        found = await service.search("merge pdf documents")
    assert (found.live_asked, found.strength.weak, found.errors) == (False, True, {})
    assert [c.server for c in found.candidates] == ["pdf-viewer"]


async def test_a_live_candidate_can_be_named_for_the_plan(tmp_path: Path) -> None:
    web = LiveWeb()
    async with (
        MemoryStore.open() as store,
        httpx.AsyncClient(transport=httpx.MockTransport(web.handle)) as client,
    ):
        service = _service(store, tmp_path, web.sources(client), PDF_CATALOG)
        plan = await service.plan("merge pdf documents", server="io.github.a/pdf-forge")
    assert (plan.candidate.ref, plan.candidate.in_catalog) == ("npm:pdf-forge@1.0.0", False)
    assert service.describe(plan.candidate)["origin"] == "mcp-registry"
    assert service.describe(plan.candidate)["description"] == "Create and merge PDF documents"


def pypi_only(request: httpx.Request) -> httpx.Response:
    """PyPI's JSON API with one conventionally named PDF server; every other name is a 404."""
    if request.url.path == "/pypi/mcp-server-merge/json":
        readme = "# merge\n\nMerges PDF documents.\n\n## Tools\n\n- `merge_pdfs`: Merge PDF files into one\n"
        info = {
            "name": "mcp-server-merge",
            "version": "0.4.0",
            "summary": "Merge PDFs",
            "description": readme,
        }
        return httpx.Response(200, json={"info": info})
    return httpx.Response(404)


async def test_where_no_registry_can_be_searched_a_weak_match_still_brings_packages_found_by_name(
    tmp_path: Path,
) -> None:
    async with (
        MemoryStore.open() as store,
        httpx.AsyncClient(transport=httpx.MockTransport(pypi_only)) as client,
    ):
        sources = [GuardedSource(NameProbeSource(client, "pypi"), deadline_s=5.0)]
        service = _service(store, tmp_path, sources, PDF_CATALOG)
        found = await service.search("merge pdf documents")
        plan = await service.plan("merge pdf documents", server="mcp-server-merge")
    assert found.live_asked
    assert [(c.server, c.in_catalog) for c in found.candidates] == [
        ("mcp-server-merge", False),
        ("pdf-viewer", True),
    ]
    assert found.candidates[0].reasons[0] == "found by pypi-names, not in the catalog"
    assert plan.candidate.ref == "pypi:mcp-server-merge@0.4.0"
    assert service.describe(plan.candidate)["origin"] == "pypi-names"
