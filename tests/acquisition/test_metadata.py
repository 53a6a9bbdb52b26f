"""Exact-release metadata from the real npm registry and PyPI."""

from __future__ import annotations

import httpx
import pytest

from vsm_mcp.acquisition.metadata import npm_release, pypi_release

pytestmark = [pytest.mark.anyio, pytest.mark.external]


async def test_pypi_release_metadata() -> None:
    async with httpx.AsyncClient() as client:
        time = await pypi_release(client, "mcp-server-time", "2026.10.19")
        missing_version = await pypi_release(client, "mcp-server-time", "1999.1.1")
        missing = await pypi_release(client, "vsm-mcp-no-such-package-zz", "1.0.0")
    assert time is not None
    assert (time.version_exists, time.yanked, time.deprecated, time.license) == (True, False, False, "MIT")
    assert missing_version is not None
    assert missing_version.version_exists is False
    assert missing_version.versions_known >= 10
    assert missing is None


async def test_npm_release_metadata() -> None:
    async with httpx.AsyncClient() as client:
        time = await npm_release(client, "time-mcp", "1.0.6")
        missing_version = await npm_release(client, "time-mcp", "99.0.0")
        missing = await npm_release(client, "vsm-mcp-no-such-package-zz", "1.0.0")
        everything = await npm_release(client, "@modelcontextprotocol/server-everything", "2026.8.31")
    assert time is not None
    assert (time.version_exists, time.deprecated, time.license, time.install_scripts) == (
        True,
        False,
        "MIT",
        (),
    )
    assert missing_version is not None
    assert missing_version.version_exists is False
    assert missing is None
    assert everything is not None
    assert everything.version_exists is True
