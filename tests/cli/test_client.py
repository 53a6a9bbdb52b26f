"""`vsm-mcp client config`: each client's documented shape, an entry that really runs, a careful merge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from vsm_mcp.core.access import token_digest
from vsm_mcp.store import SqliteStore

VSM = str(Path(sys.executable).parent / "vsm-mcp")


def _run(*args: str, state: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VSM, "--state-dir", str(state), "client", "config", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


@pytest.mark.parametrize(
    ("client", "key", "typed"),
    [("claude-desktop", "mcpServers", False), ("claude-code", "mcpServers", True),
     ("cursor", "mcpServers", False), ("vscode", "servers", True)],
)  # fmt: skip
def test_each_client_gets_its_documented_stdio_shape(
    tmp_path: Path, client: str, key: str, typed: bool
) -> None:
    done = _run(client, state=tmp_path)
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)[key].values()
    assert ("type" in entry) is typed and entry.get("type", "stdio") == "stdio"
    assert entry["command"] == VSM
    assert entry["args"] == ["--state-dir", str(tmp_path), "serve", "--stdio"]


@pytest.mark.anyio
async def test_the_printed_stdio_entry_is_a_working_gateway(tmp_path: Path) -> None:
    done = _run("cursor", "--name", "fleet", state=tmp_path / "state")
    entry = json.loads(done.stdout)["mcpServers"]["fleet"]
    server = StdioServerParameters(command=entry["command"], args=entry["args"], cwd=str(tmp_path))
    with anyio.fail_after(60):
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {tool.name for tool in (await session.list_tools()).tools}
    assert {"vsm_status", "vsm_search_tools", "vsm_call_tool"} <= names


def test_write_merges_one_entry_keeps_the_rest_and_backs_the_file_up(tmp_path: Path) -> None:
    config = tmp_path / "project" / ".vscode" / "mcp.json"
    config.parent.mkdir(parents=True)
    before = {"inputs": [{"id": "k"}], "servers": {"other": {"type": "stdio", "command": "x"}}}
    config.write_text(json.dumps(before))
    done = _run("vscode", "--write", state=tmp_path / "state", cwd=tmp_path / "project")
    assert done.returncode == 0, done.stderr
    after = json.loads(config.read_text())
    assert after["inputs"] == before["inputs"]
    assert after["servers"]["other"] == before["servers"]["other"]
    assert after["servers"]["vsm"]["args"][-2:] == ["serve", "--stdio"]
    [backup] = config.parent.glob("mcp.json.bak-*")
    assert json.loads(backup.read_text()) == before
    assert f"written to {config}" in done.stderr


def test_a_file_that_is_not_json_is_refused_and_left_untouched(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_text("{not json")
    done = _run("cursor", "--write", "--file", str(config), state=tmp_path / "state")
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {config} is not JSON")
    assert config.read_text() == "{not json"
    assert not list(tmp_path.glob("mcp.json.bak-*"))


def test_http_gives_the_client_a_token_of_its_own_and_never_silently_replaces_it(tmp_path: Path) -> None:
    done = _run("claude-code", "--http", state=tmp_path)
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)["mcpServers"]["vsm"]
    assert (
        entry["type"] == "http" and entry["url"] == "http://127.0.0.1:8765/mcp"
    )  # no gateway runs: the default
    token = entry["headers"]["Authorization"].removeprefix("Bearer ")
    assert _stored_digest(tmp_path, "client-claude-code") == token_digest(token)
    again = _run("claude-code", "--http", state=tmp_path)
    assert again.returncode == 1 and "--rotate renews it" in again.stderr
    renewed = _run("claude-code", "--http", "--rotate", state=tmp_path)
    new = json.loads(renewed.stdout)["mcpServers"]["vsm"]["headers"]["Authorization"].removeprefix("Bearer ")
    assert new != token and _stored_digest(tmp_path, "client-claude-code") == token_digest(new)


def test_claude_desktop_is_refused_http_with_what_to_do(tmp_path: Path) -> None:
    done = _run("claude-desktop", "--http", state=tmp_path)
    assert done.returncode == 1
    assert "use the stdio entry" in done.stderr
    bad = _run("notepad", state=tmp_path)
    assert bad.returncode == 1 and "unknown client 'notepad'" in bad.stderr


def _stored_digest(state: Path, name: str) -> str:
    async def read() -> str:
        async with SqliteStore.open(state / "state.db") as store:
            [record] = [t for t in await store.tokens() if t.name == name]
            return record.digest

    return anyio.run(read)
