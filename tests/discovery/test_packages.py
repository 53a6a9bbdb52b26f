"""Live npm and PyPI metadata (the registries are reachable from CI)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from tests.discovery.conftest import npm_tarball

from vsm_mcp.discovery.packages import (
    MAX_UNPACKED_BYTES,
    PackageInfo,
    npm_package,
    npm_readme,
    open_tarball,
    package_info,
    pypi_package,
    tarball_url,
)
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


README = b"# bomb\n\n## Tools\n\n- `get_forecast`: Forecast for a city\n"


def test_a_tarball_is_unpacked_only_up_to_its_limit() -> None:
    data = npm_tarball({"README.md": README, "blob.bin": bytes(4_000_000)})
    with open_tarball(data) as archive:
        assert [m.name for m in archive] == ["package/README.md", "package/blob.bin"]
    with (
        pytest.raises(OSError, match="unpacks to more than it may"),
        open_tarball(data, limit=1_000_000) as archive,
    ):
        list(archive)
    # cut off: the members before the cut are still read
    with open_tarball(data[: len(data) // 2]) as archive:
        first = next(iter(archive))
        assert first.name == "package/README.md"


@pytest.mark.anyio
async def test_a_tarball_bomb_before_the_readme_gives_no_readme_and_does_not_hang() -> None:
    # a few dozen KB packed, past MAX_UNPACKED_BYTES unpacked, with the README behind it
    bomb = npm_tarball({"filler.bin": bytes(MAX_UNPACKED_BYTES + 1_000_000), "README.md": README})
    fair = npm_tarball({"README.md": README, "filler.bin": bytes(1_000)})
    assert len(bomb) < 1_000_000

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(".tgz"):
            return httpx.Response(200, content=bomb if "bomb" in request.url.path else fair)
        return httpx.Response(404)

    async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as client:
        with anyio.fail_after(20):
            assert (
                await npm_readme(
                    client, "bomb-mcp", "https://registry.npmjs.org/bomb-mcp/-/bomb-mcp-1.0.0.tgz"
                )
                == ""
            )
        fair_readme = await npm_readme(
            client, "fair-mcp", "https://registry.npmjs.org/fair-mcp/-/fair-mcp-1.0.0.tgz"
        )
    assert "get_forecast" in fair_readme


@pytest.mark.anyio
async def test_a_registry_document_past_its_limit_is_refused_not_read_whole() -> None:
    sent: list[int] = []

    def huge(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(64):
                sent.append(1)
                yield b" " * 1_000_000

        return httpx.Response(200, content=body())

    async with httpx.AsyncClient(transport=httpx.MockTransport(huge)) as client:
        with pytest.raises(
            SourceError, match=r"pypi weather-mcp: the document is larger than 32,000,000 bytes"
        ):
            await pypi_package(client, "weather-mcp")
    assert len(sent) <= 34  # it stopped reading soon after the limit
