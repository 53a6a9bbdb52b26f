"""`vsm-mcp profiles ...`, `token create --profile` and `serve --profile`: kept, shown, refused with fixes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.streams.text import TextReceiveStream
from typer.testing import CliRunner

from vsm_mcp.cli.app import app
from vsm_mcp.errors import ConfigError
from vsm_mcp.gateway.bearer import bearer_headers

runner = CliRunner()
START_TIMEOUT_S = 40.0
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
ACCEPT = {"accept": "application/json, text/event-stream"}


def _vsm(state: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, ["--state-dir", str(state), *args])
    return result.exit_code, result.stdout + result.stderr, result.exception


def test_add_list_show_and_remove(tmp_path: Path) -> None:
    code, said, _ = _vsm(
        tmp_path,
        *("profiles", "add", "ide", "--server", "github", "--server", "fs*", "--deny-tool", "fs__write_*"),
        *("--rename", "github__create_issue=new_issue", "--describe", "github__create_issue=File a bug."),
        *("--description", "the IDE's tools"),
    )
    assert code == 0, said
    assert "served at /mcp/p/ide" in said and "token create NAME --profile ide" in said

    code, listed, _ = _vsm(tmp_path, "profiles", "list", "--json")
    assert code == 0
    [ide] = json.loads(listed)
    assert ide == {
        "name": "ide",
        "description": "the IDE's tools",
        "servers": ["github", "fs*"],
        "deny_servers": [],
        "tools": [],
        "deny_tools": ["fs__write_*"],
        "overrides": {"github__create_issue": {"name": "new_issue", "description": "File a bug."}},
        "tokens": [],
    }
    assert _vsm(tmp_path, "token", "create", "cursor", "--profile", "ide")[0] == 0
    code, table, _ = _vsm(tmp_path, "profiles", "list")
    assert "ide" in table and "cursor" in table and "servers github, fs*" in table
    code, shown, _ = _vsm(tmp_path, "profiles", "show", "ide")
    assert code == 0
    assert "tokens: cursor" in shown and "github__create_issue: name new_issue" in shown
    code, tokens, _ = _vsm(tmp_path, "token", "list", "--json")
    assert {t["name"]: t["profile"] for t in json.loads(tokens)} == {"cursor": "ide"}

    code, _, error = _vsm(tmp_path, "profiles", "remove", "ide")
    assert code != 0 and isinstance(error, ConfigError)
    assert "tokens bound to profile 'ide': cursor" in str(error)
    code, said, _ = _vsm(tmp_path, "profiles", "remove", "ide", "--force")
    assert code == 0 and "tokens cursor are refused until revoked" in said
    assert json.loads(_vsm(tmp_path, "profiles", "list", "--json")[1]) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("profiles", "add", "a b"), "profile name 'a b' must be"),
        (("profiles", "add", "p", "--rename", "x"), "--rename expects TOOL=VALUE"),
        (("profiles", "add", "p", "--rename", "a__x=vsm_mine"), "gateway's own tools"),
        (("profiles", "add", "p", "--server", "a;b"), "servers pattern 'a;b'"),
        (("profiles", "show", "nope"), "no profile named 'nope'"),
        (("profiles", "remove", "nope"), "no profile named 'nope'"),
        (("token", "create", "ci", "--profile", "nope"), "no profile named 'nope'"),
        (("serve", "--http", "127.0.0.1:0", "--profile", "p"), "--profile is for --stdio"),
    ],
)
def test_refusals_say_why(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, _, error = _vsm(tmp_path, *args)
    assert code != 0 and isinstance(error, ConfigError)
    assert message in str(error)


def test_a_taken_name_is_refused_unless_replaced(tmp_path: Path) -> None:
    assert _vsm(tmp_path, "profiles", "add", "p", "--server", "a")[0] == 0
    code, _, error = _vsm(tmp_path, "profiles", "add", "p", "--server", "b")
    assert code != 0 and "exists; add it with --replace" in str(error)
    assert _vsm(tmp_path, "profiles", "add", "p", "--server", "b", "--replace")[0] == 0
    assert json.loads(_vsm(tmp_path, "profiles", "show", "p", "--json")[1])["servers"] == ["b"]


@pytest.mark.slow
def test_serve_stdio_with_an_unknown_profile_says_so(tmp_path: Path) -> None:
    code, _, error = _vsm(tmp_path, "serve", "--stdio", "--profile", "nope")
    assert code != 0 and isinstance(error, ConfigError)
    assert "no profile named 'nope'" in str(error)


@pytest.mark.anyio
@pytest.mark.slow
async def test_a_running_gateway_serves_a_profile_added_after_it_started(tmp_path: Path) -> None:
    process = await anyio.open_process(
        [sys.executable, "-m", "vsm_mcp.cli.serve", "--http", "127.0.0.1:0"],
        env={**os.environ, "VSM_MCP_STATE_DIR": str(tmp_path)},
    )
    try:
        assert process.stderr is not None
        url = ""
        with anyio.fail_after(START_TIMEOUT_S):
            async for chunk in TextReceiveStream(process.stderr):
                if "MCP on " in chunk:
                    url = chunk.split("MCP on ", 1)[1].split()[0]
                    break
        admin = (tmp_path / "admin.token").read_text().strip()
        headers = {**ACCEPT, **bearer_headers(admin)}
        async with httpx.AsyncClient(timeout=START_TIMEOUT_S) as http:
            assert (await http.post(f"{url}/p/late", json=INIT, headers=headers)).status_code == 404
            added = await anyio.to_thread.run_sync(_vsm, tmp_path, "profiles", "add", "late")
            assert added[0] == 0, added
            with anyio.fail_after(5):  # within REFRESH_S; another process changed the store
                while (await http.post(f"{url}/p/late", json=INIT, headers=headers)).status_code != 200:  # noqa: ASYNC110 - polls another process
                    await anyio.sleep(0.05)
    finally:
        process.terminate()
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await process.wait()
