"""Live npm and PyPI metadata (the registries are reachable from CI)."""

from __future__ import annotations

import httpx
import pytest

from vsm_mcp.discovery.packages import PackageInfo, npm_package, package_info, pypi_package, tarball_url
from vsm_mcp.errors import SourceError

pytestmark = [pytest.mark.anyio]


def test_tarball_url_follows_the_registry_layout() -> None:
    scoped = PackageInfo("npm", "@scope/weather-mcp", "2.1.0", "", None, False, None)
    assert tarball_url(scoped) == "https://registry.npmjs.org/@scope/weather-mcp/-/weather-mcp-2.1.0.tgz"


@pytest.mark.external
async def test_npm_scoped_package_metadata() -> None:
    async with httpx.AsyncClient() as client:
        info = await npm_package(client, "@modelcontextprotocol/server-filesystem")
    assert info is not None
    assert info.identifier == "@modelcontextprotocol/server-filesystem"
    assert info.registry_type == "npm"
    assert info.version.count(".") >= 2
    assert info.license is not None
    assert info.launch_command == ("npx", ("-y", f"@modelcontextprotocol/server-filesystem@{info.version}"))


@pytest.mark.external
async def test_pypi_project_metadata() -> None:
    async with httpx.AsyncClient() as client:
        info = await pypi_package(client, "mcp-server-time")
    assert info is not None
    assert info.identifier == "mcp-server-time"
    assert "time" in info.description.lower()
    assert info.launch_command == ("uvx", (f"mcp-server-time=={info.version}",))


@pytest.mark.external
async def test_missing_packages_are_none() -> None:
    async with httpx.AsyncClient() as client:
        assert await npm_package(client, "vsm-mcp-no-such-package-4f1c2a") is None
        assert await pypi_package(client, "vsm-mcp-no-such-package-4f1c2a") is None


@pytest.mark.external
async def test_unreachable_registry_is_a_source_error() -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(SourceError, match="npm left-pad: ConnectError"):
            await npm_package(client, "left-pad", registry="http://127.0.0.1:9")
        with pytest.raises(SourceError, match="unsupported registry type"):
            await package_info(client, "cargo", "serde")
