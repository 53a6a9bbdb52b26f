from __future__ import annotations

import httpx
import pytest

from vsm_mcp.discovery.catalog import Catalog, Launch, ServerEntry, ToolSpec
from vsm_mcp.discovery.refresh import Seed, load_seeds, package_of_launch, refresh_catalog, tools_by_package


def test_package_of_launch_reads_npx_and_uvx_forms() -> None:
    assert package_of_launch(Launch("npx", ("-y", "@scope/pkg@latest"))) == ("npm", "@scope/pkg")
    assert package_of_launch(Launch("npx", ("mcp-deepwiki@1.0.0",))) == ("npm", "mcp-deepwiki")
    assert package_of_launch(Launch("uvx", ("--from", "office-word-mcp-server", "word_mcp_server"))) == (
        "pypi",
        "office-word-mcp-server",
    )
    assert package_of_launch(Launch("uvx", ("mcp-simple-arxiv==0.2.3", "x"))) == ("pypi", "mcp-simple-arxiv")
    assert package_of_launch(Launch("uv", ("tool", "run", "arxiv-mcp-server", "--x"))) == (
        "pypi",
        "arxiv-mcp-server",
    )
    assert package_of_launch(Launch("npx", ("-y", "github:flrngel/mcp-painter"))) is None
    assert package_of_launch(Launch("docker", ("run", "x"))) is None


def test_tool_names_are_keyed_by_package_without_descriptions() -> None:
    catalog = Catalog(
        (
            ServerEntry(
                "Time",
                "t",
                (ToolSpec("get_current_time", "Now"),),
                launch=Launch("uvx", ("mcp-server-time",)),
            ),
        )
    )
    assert tools_by_package([catalog]) == {("pypi", "mcp-server-time"): (ToolSpec("get_current_time"),)}


def test_shipped_seeds_load() -> None:
    seeds = load_seeds()
    assert len(seeds) >= 300
    assert Seed(registry="npm", name="@modelcontextprotocol/server-filesystem") in seeds


@pytest.mark.external
@pytest.mark.anyio
async def test_refresh_builds_pinned_entries_from_live_metadata() -> None:
    seeds = [
        Seed(registry="pypi", name="mcp-server-time"),
        Seed(registry="npm", name="@modelcontextprotocol/server-memory"),
        Seed(registry="npm", name="vsm-mcp-no-such-package-4f1c2a"),
    ]
    known = {("pypi", "mcp-server-time"): (ToolSpec("get_current_time"), ToolSpec("convert_time"))}
    progressed: list[str] = []
    async with httpx.AsyncClient() as client:
        report = await refresh_catalog(seeds, known, client, progressed.append)
    assert sorted(progressed) == sorted(s.name for s in seeds)
    assert [e.name for e in report.entries] == ["mcp-server-time", "@modelcontextprotocol/server-memory"]
    assert report.missing == ["npm:vsm-mcp-no-such-package-4f1c2a"]
    assert report.failed == {}
    time_entry = report.entries[0]
    assert time_entry.tool_names == ("get_current_time", "convert_time")
    version = time_entry.packages[0].version
    assert time_entry.launch == Launch("uvx", (f"mcp-server-time=={version}",))
    assert time_entry.packages[0].transport == "stdio"
