"""`vsm-mcp token ...` and the HTTP face's start: values shown once, digests stored, refusals with fixes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.streams.text import TextReceiveStream
from typer.testing import CliRunner

from vsm_mcp.cli.app import app
from vsm_mcp.core.access import TokenRecord, token_digest
from vsm_mcp.errors import ConfigError
from vsm_mcp.gateway.bearer import bearer_headers
from vsm_mcp.store import SqliteStore

runner = CliRunner()
VSM_MCP = [sys.executable, "-c", "from vsm_mcp.cli.app import main; main()"]
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


def _vsm(state: Path, *args: str) -> tuple[int, str, str, BaseException | None]:
    result = runner.invoke(app, ["--state-dir", str(state), *args])
    return result.exit_code, result.stdout, result.stderr, result.exception


def _stored(state: Path) -> list[TokenRecord]:
    async def read() -> list[TokenRecord]:
        async with SqliteStore.open(state / "state.db") as store:
            return await store.tokens()

    return anyio.run(read)


def test_create_list_rotate_and_revoke_show_values_once_and_store_digests(tmp_path: Path) -> None:
    code, value, said, _ = _vsm(tmp_path, "token", "create", "ci", "--scope", "call")
    assert code == 0
    value = value.strip()
    assert value.startswith("vsm_") and len(value) == 47
    assert said.strip() == "token ci (call) created; the value above is shown only now"
    code, ops, _, _ = _vsm(tmp_path, "token", "create", "ops", "--scope", "call,approve", "--scope", "manage")
    assert code == 0
    [ci, stored_ops] = _stored(tmp_path)
    assert (ci.name, ci.digest, sorted(ci.scopes)) == ("ci", token_digest(value), ["call"])
    assert sorted(stored_ops.scopes) == ["approve", "call", "manage"]

    code, out, _, _ = _vsm(tmp_path, "token", "list", "--json")
    rows = json.loads(out)
    assert [(r["name"], r["scopes"], r["last_used_at"]) for r in rows] == [
        ("ci", ["call"], None),
        ("ops", ["call", "manage", "approve"], None),
    ]
    table = _vsm(tmp_path, "token", "list")[1]
    assert "ci" in table and value not in table and ops.strip() not in table

    code, rotated, _, _ = _vsm(tmp_path, "token", "rotate", "ci")
    assert code == 0 and rotated.strip() != value
    assert _stored(tmp_path)[0].digest == token_digest(rotated.strip())

    assert _vsm(tmp_path, "token", "revoke", "ci")[0] == 0
    assert [t.name for t in _stored(tmp_path)] == ["ops"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("token", "create", "ci", "--scope", "root"),
            "--scope: unknown scope 'root' (known: call, manage, approve)",
        ),
        (("token", "create", "admin"), "token name 'admin' is the admin token's"),
        (("token", "create", "two words"), "token name 'two words' must be 1-64 letters"),
        (("token", "revoke", "nobody"), "no token named 'nobody' (see `vsm-mcp token list`)"),
        (("token", "revoke", "admin"), "the admin token cannot be revoked; `vsm-mcp token rotate` replaces"),
        (("token", "rotate", "nobody"), "no token named 'nobody'"),
        (
            (
                "token",
                "show",
            ),
            "no admin token yet",
        ),
    ],
)
def test_refusals_say_why(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, _, _, error = _vsm(tmp_path, *args)
    assert code == 1
    assert isinstance(error, ConfigError)
    assert message in str(error)


def test_a_taken_name_is_refused(tmp_path: Path) -> None:
    assert _vsm(tmp_path, "token", "create", "ci")[0] == 0
    code, _, _, error = _vsm(tmp_path, "token", "create", "ci")
    assert code == 1
    assert str(error) == "a token named 'ci' exists; `vsm-mcp token rotate ci` renews it"


def test_the_admin_token_is_a_private_file_that_show_prints_and_rotate_renews(tmp_path: Path) -> None:
    code, first, _, _ = _vsm(tmp_path, "token", "rotate")  # no file yet: rotate makes one
    assert code == 0
    path = tmp_path / "admin.token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert _vsm(tmp_path, "token", "show")[1] == first
    code, second, _, _ = _vsm(tmp_path, "token", "rotate")
    assert second != first
    assert _vsm(tmp_path, "token", "show")[1] == second
    rows = json.loads(_vsm(tmp_path, "token", "list", "--json")[1])
    assert [(r["name"], r["scopes"]) for r in rows] == [("admin", ["call", "manage", "approve"])]
    path.chmod(0o644)  # widened by hand: narrowed again when read
    _vsm(tmp_path, "token", "show")
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("command", ["serve", "up"])
def test_a_bind_on_every_interface_without_public_is_refused_at_start(tmp_path: Path, command: str) -> None:
    result = subprocess.run(
        [*VSM_MCP, "--state-dir", str(tmp_path), command, "--http", "0.0.0.0:8765"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: refusing to listen on 0.0.0.0:8765 (every interface) without --public: the bearer token "
        "would be the only guard. Use 127.0.0.1:8765, or add --public (and --allow-host NAME for each name "
        "clients use)"
    ]
    assert not (tmp_path / "admin.token").exists()  # refused before anything started


@pytest.mark.anyio
@pytest.mark.slow
async def test_a_running_gateway_takes_a_new_token_at_once_and_drops_a_revoked_one(tmp_path: Path) -> None:
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
        value = (await anyio.to_thread.run_sync(_vsm, tmp_path, "token", "create", "ci"))[1].strip()
        async with httpx.AsyncClient(timeout=START_TIMEOUT_S) as http:
            opened = await http.post(url, json=INIT, headers={**ACCEPT, **bearer_headers(value)})
            assert opened.status_code == 200
            await anyio.to_thread.run_sync(_vsm, tmp_path, "token", "revoke", "ci")
            headers = {**ACCEPT, **bearer_headers(value)}
            with anyio.fail_after(5):  # within the keyring's REFRESH_S; another process changed the store
                while (await http.post(url, json=INIT, headers=headers)).status_code != 401:  # noqa: ASYNC110 - polls another process
                    await anyio.sleep(0.05)
    finally:
        process.terminate()
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await process.wait()
