"""`vsm-mcp acquire` against the real registries: PyPI and npm servers end to end, and clean rollbacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import mcp_types as types
import pytest
import typer
from mcp import Client
from typer.testing import CliRunner

from vsm_mcp.cli import acquire as acquire_cli
from vsm_mcp.errors import AcquisitionError, AcquisitionRefusedError
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.gateway import Gateway, WindowDemand
from vsm_mcp.store import SqliteStore

pytestmark = [pytest.mark.slow, pytest.mark.external]

#: A cold npm install of a small server with its tree, or a uv venv + install, plus verification.
ACQUIRE_TIMEOUT_S = 240


def _app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        pass

    acquire_cli.register(root)
    return root


def _run(state: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("VSM_MCP_STATE_DIR", str(state))
    return CliRunner().invoke(_app(), ["acquire", *args])


async def _call_through_gateway(state: Path, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
    async with SqliteStore.open(state / "state.db") as store:
        specs = list((await FleetRegistry(store).desired()).values())
    async with Fleet(specs) as fleet:
        for spec in specs:
            with anyio.fail_after(60):
                await fleet.wait_ready(spec.name)
        gateway = Gateway(fleet, demand=WindowDemand())
        async with Client(gateway.server, mode="legacy") as client:
            return await client.call_tool(tool, arguments)


def _leftovers(state: Path) -> list[str]:
    servers = state / "servers"
    return sorted(p.name for p in servers.iterdir()) if servers.exists() else []


def test_time_server_from_pypi_is_acquired_and_answers_through_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(tmp_path, monkeypatch, "current time in another timezone", "--yes", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    print(json.dumps({k: data[k] for k in ("package", "sandbox", "timings_s")}))
    assert data["package"] == "pypi:mcp-server-time@2026.10.19"
    assert data["unit"] == "time"
    assert data["category"] == "search:current time in another timezone"
    assert data["tools"] == ["time__get_current_time", "time__convert_time"]
    assert data["command"] == str(tmp_path / "servers" / "time" / "venv" / "bin" / "mcp-server-time")
    assert (data["gap_before"]["gap"], data["gap_before"]["coverage"]) == (1.0, 0.0)
    assert (data["gap_after"]["gap"], data["gap_after"]["coverage"]) == (0.0, 1.0)
    answer = anyio.run(_call_through_gateway, tmp_path, "time__get_current_time", {"timezone": "Asia/Tokyo"})
    assert answer.is_error is False
    block = answer.content[0]
    assert isinstance(block, types.TextContent)
    payload = json.loads(block.text)
    assert payload["timezone"] == "Asia/Tokyo"
    assert payload["datetime"].endswith("+09:00")

    again = _run(tmp_path, monkeypatch, "current time in another timezone", "--yes", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["already_installed"] is True


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_time_server_from_npm_is_acquired_and_answers_through_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(
        tmp_path,
        monkeypatch,
        "current time in another timezone",
        "--registry",
        "npm",
        "--server",
        "time-mcp",
        "--yes",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    print(json.dumps({k: data[k] for k in ("package", "sandbox", "timings_s")}))
    assert data["package"] == "npm:time-mcp@1.0.6"
    assert data["command"] == str(tmp_path / "servers" / "time" / "node_modules" / ".bin" / "time-mcp")
    assert "time__current_time" in data["tools"]
    assert (data["gap_before"]["gap"], data["gap_after"]["gap"]) == (1.0, 0.0)
    answer = anyio.run(_call_through_gateway, tmp_path, "time__current_time", {})
    assert answer.is_error is False
    block = answer.content[0]
    assert isinstance(block, types.TextContent)
    assert block.text.startswith("Current UTC time is ")


@pytest.mark.parametrize(
    ("package", "error", "message"),
    [
        (
            "pypi:vsm-mcp-no-such-package-zz@1.0.0",
            AcquisitionRefusedError,
            "acquisition refused (exists): pypi package 'vsm-mcp-no-such-package-zz' does not exist",
        ),
        (
            "npm:vsm-mcp-no-such-package-zz@1.0.0",
            AcquisitionRefusedError,
            "acquisition refused (exists): npm package 'vsm-mcp-no-such-package-zz' does not exist",
        ),
        (
            "pypi:mcp-server-time@1999.1.1",
            AcquisitionRefusedError,
            "acquisition refused (version_exists): mcp-server-time has no version 1999.1.1 on pypi",
        ),
        (
            "pypi:mcp-server-tme@2026.10.19",
            AcquisitionRefusedError,
            "acquisition refused (typosquat): 'mcp-server-tme' is 1 edit(s) from the well-known "
            "'mcp-server-time': possible typosquat",
        ),
        (
            "pypi:six@1.16.0",
            AcquisitionError,
            "acquisition failed at install: six==1.16.0 installs no console script: "
            "not a runnable MCP server (rolled back)",
        ),
        (
            "npm:left-pad@1.3.0",
            AcquisitionError,
            "acquisition failed at install: left-pad@1.3.0 has no executable (no 'bin' in package.json): "
            "not a runnable MCP server (rolled back)",
        ),
    ],
)
def test_bad_packages_are_refused_or_rolled_back_leaving_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str, error: type[Exception], message: str
) -> None:
    if package.startswith("npm:") and shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    result = _run(tmp_path, monkeypatch, "--package", package, "--yes")
    assert result.exit_code == 1
    assert type(result.exception) is error
    assert str(result.exception).startswith(message)
    assert _leftovers(tmp_path) == []

    async def stored() -> tuple[dict[str, Any], list[tuple[str, str]]]:
        async with SqliteStore.open(tmp_path / "state.db") as store:
            desired = await FleetRegistry(store).desired()
            return desired, [(d.choice, d.rule) for d in await store.decisions()]

    desired, decisions = anyio.run(stored)
    assert desired == {}
    assert decisions[0][0] in {"refuse", "rolled_back"}


def test_a_server_not_speaking_mcp_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pyjokes installs a console script that prints a joke and exits: not an MCP server.
    result = _run(tmp_path, monkeypatch, "--package", "pypi:pyjokes@0.8.3", "--yes", "--sandbox", "off")
    assert result.exit_code == 1
    assert isinstance(result.exception, AcquisitionError)
    assert str(result.exception).startswith("acquisition failed at verify: ")
    assert _leftovers(tmp_path) == []


def test_without_yes_a_non_interactive_acquire_is_refused_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(tmp_path, monkeypatch, "current time in another timezone")
    assert result.exit_code == 1
    assert str(result.exception) == (
        "acquisition refused (operator): every check passed; listed in the catalog; auto-approve is off: "
        "a person decides, but nobody can be asked (non-interactive; pass --yes to accept)"
    )
    assert _leftovers(tmp_path) == []


def test_an_interactive_terminal_is_asked_and_no_refuses_leaving_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def confirm(question: str, **_: Any) -> bool:
        asked.append(question)
        return False  # the person says no

    # A terminal on stdin (the runner's own stdin is not one), and a person at it.
    monkeypatch.setattr(
        "vsm_mcp.cli.acquire.sys", SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True))
    )
    monkeypatch.setattr("typer.confirm", confirm)
    result = _run(tmp_path, monkeypatch, "current time in another timezone")
    assert len(asked) == 1
    assert "mcp-server-time" in asked[0]  # the plan the person decides on
    assert result.exit_code == 1
    assert isinstance(result.exception, AcquisitionRefusedError)
    assert str(result.exception).startswith("acquisition refused (operator): ")
    assert _leftovers(tmp_path) == []
