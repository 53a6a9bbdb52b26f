"""The real installer against PyPI: a per-server venv, the marker written last, partial installs cleaned."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from vsm_mcp.acquisition.installer import MARKER, PackageInstaller, read_marker
from vsm_mcp.acquisition.vetting import Candidate

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.external]

TIME = Candidate("mcp-server-time", "pypi", "mcp-server-time", "2026.10.19", in_catalog=True)
#: uv creates a venv and installs a small server with its dependencies within this, even cold.
INSTALL_S = 240


async def test_pypi_install_goes_into_its_own_venv_and_is_resumed_from_the_marker(tmp_path: Path) -> None:
    prefix = tmp_path / "servers" / "time"
    installer = PackageInstaller()
    with anyio.fail_after(INSTALL_S):
        first = await installer.install(TIME, prefix)
    assert first.command == str(prefix / "venv" / "bin" / "mcp-server-time")
    assert first.resumed is False
    marker = read_marker(prefix)
    assert marker is not None
    assert (marker["identifier"], marker["version"], marker["command"]) == (
        "mcp-server-time",
        "2026.10.19",
        first.command,
    )
    with anyio.fail_after(INSTALL_S):
        again = await installer.install(TIME, prefix)
    assert (again.resumed, again.command) == (True, first.command)


async def test_a_prefix_without_marker_is_a_partial_install_and_is_cleaned(tmp_path: Path) -> None:
    prefix = tmp_path / "servers" / "time"
    (prefix / "venv").mkdir(parents=True)
    (prefix / "venv" / "half-written").write_text("interrupted")
    (prefix / MARKER).with_suffix(".tmp").write_text(json.dumps({"identifier": "mcp-server-time"}))
    with anyio.fail_after(INSTALL_S):
        result = await PackageInstaller().install(TIME, prefix)
    assert result.resumed is False
    assert not (prefix / "venv" / "half-written").exists()
    assert await anyio.Path(result.command).exists()


async def test_a_failed_install_removes_its_prefix(tmp_path: Path) -> None:
    prefix = tmp_path / "servers" / "nothing"
    missing = Candidate("x", "pypi", "vsm-mcp-no-such-package-zz", "1.0.0")
    with anyio.fail_after(INSTALL_S), pytest.raises(Exception) as info:
        await PackageInstaller().install(missing, prefix)
    assert str(info.value).startswith(
        "acquisition failed at install: uv pip install vsm-mcp-no-such-package-zz"
    )
    assert not prefix.exists()
