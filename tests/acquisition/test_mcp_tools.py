"""The capability tools' handlers over the probe server fixture."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from vsm_mcp.acquisition.launch import SandboxLauncher
from vsm_mcp.acquisition.mcp_tools import CAPABILITY_TOOL_NAMES, CapabilityTools
from vsm_mcp.acquisition.pipeline import Acquirer
from vsm_mcp.acquisition.service import CapabilityService
from vsm_mcp.acquisition.vetting import VettingPolicy
from vsm_mcp.discovery.catalog import Catalog, PackageRef, ServerEntry, ToolSpec
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.errors import AcquisitionRefusedError, ConfigError
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.store import MemoryStore

from .conftest import ProbeInstaller, stub_metadata

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CATALOG = Catalog(
    (
        ServerEntry(
            "mcp-server-probe",
            "Echo text back and add integers",
            tools=(ToolSpec("echo", "Return the text unchanged"), ToolSpec("add", "Add two integers")),
            packages=(PackageRef("pypi", "mcp-server-probe", "1.0.0"),),
            license="MIT",
        ),
    )
)


def _tools(store: MemoryStore, tmp_path: Path) -> CapabilityTools:
    acquirer = Acquirer(
        store=store,
        registry=FleetRegistry(store),
        installer=ProbeInstaller(),
        metadata=stub_metadata(),
        known_names={"mcp-server-probe"},
        state_dir=tmp_path,
        policy=VettingPolicy(auto_approve=True),
        launcher=SandboxLauncher(tmp_path, mode="off"),
    )
    return CapabilityTools(CapabilityService(acquirer, Matcher(CATALOG), registry_types=("pypi",)))


async def test_find_ranks_with_reasons_and_acquire_adds_namespaced_tools(tmp_path: Path) -> None:
    assert {"vsm_find_capability", "vsm_acquire_capability"} == CAPABILITY_TOOL_NAMES
    async with MemoryStore.open() as store:
        tools = _tools(store, tmp_path)
        found = await tools.call("vsm_find_capability", {"query": "add two integers"})
        assert [c["package"] for c in found["candidates"]] == ["pypi:mcp-server-probe@1.0.0"]
        assert found["candidates"][0]["tools"] == ["echo", "add"]
        assert found["candidates"][0]["reasons"][0] == "matches 'add', 'two', 'integ'"
        with anyio.fail_after(60):
            done = await tools.call("vsm_acquire_capability", {"query": "add two integers"})
        assert (done["server"], done["category"]) == ("probe", "search:add two integers")
        assert "probe__add" in done["tools"]
        with pytest.raises(AcquisitionRefusedError, match="no installable catalog server matches"):
            await tools.call("vsm_acquire_capability", {"query": "quantum teleportation"})
        with pytest.raises(ConfigError, match="'query' must be a non-empty string"):
            await tools.call("vsm_find_capability", {"query": " "})
