"""`vsm-mcp up` as a user runs it: a real process, a real MCP client over HTTP, SIGTERM at the end."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.streams.text import TextReceiveStream

from vsm_mcp.gateway.bearer import bearer_client, bearer_headers
from vsm_mcp.gateway.tokens import AdminTokenFile

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "probe_server.py"
#: The gateway and a Python MCP server both start: generous on a shared 2-core machine.
START_TIMEOUT_S = 40.0


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _open_session(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    """Initialize a 2025-11-25 session with raw HTTP; returns the headers of its later requests."""
    accept = {"accept": "application/json, text/event-stream"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    opened = await http.post(url, json=init, headers=accept)
    assert opened.status_code == 200
    headers = {
        **accept,
        "mcp-session-id": opened.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-11-25",
    }
    ready = await http.post(
        url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
    )
    assert ready.status_code == 202
    return headers


async def test_up_serves_the_fleet_and_stops_every_child_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.toml").write_text(f'[servers.probe]\ncommand = "{sys.executable}"\nargs = ["{PROBE}"]\n')
    process = await anyio.open_process(
        [sys.executable, "-c", "from vsm_mcp.cli.app import main; main()", "up", "--http", "127.0.0.1:0"],
        env={**os.environ, "VSM_MCP_STATE_DIR": str(state)},
    )
    try:
        assert process.stderr is not None
        url, said = "", ""
        with anyio.fail_after(START_TIMEOUT_S):
            async for chunk in TextReceiveStream(process.stderr):
                said += chunk
                if "MCP on " in chunk:
                    url = chunk.split("MCP on ", 1)[1].split()[0]
                    break
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/mcp")
        # The admin token was made at this first start; how to read it is said, its value never.
        token = AdminTokenFile.in_state(state).read()
        assert f"created the admin token ({state / 'admin.token'}, mode 0600)" in said
        assert f"vsm-mcp --state-dir {state} token show" in said
        assert token not in said
        assert (state / "admin.token").stat().st_mode & 0o777 == 0o600
        async with httpx.AsyncClient(timeout=START_TIMEOUT_S) as anonymous:
            refused = await anonymous.post(url, json={}, headers={"accept": "application/json"})
            assert refused.status_code == 401
        async with bearer_client(url, token) as client:
            with anyio.fail_after(START_TIMEOUT_S):
                while "probe__pid" not in [t.name for t in (await client.list_tools()).tools]:  # noqa: ASYNC110 - polls another process
                    await anyio.sleep(0.1)
            await client.call_tool("probe__pid", {})
            echoed = await client.call_tool("probe__echo", {"text": "through up"})
            assert echoed.content[0].text == "through up"  # type: ignore[union-attr]
            # demand reaches S4 in batches at most DEMAND_FLUSH_S old
            with anyio.fail_after(5):
                while '"events": 2' not in (await client.call_tool("vsm_variety", {})).content[0].text:  # type: ignore[union-attr]  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            # The host pid of the server's process group leader (bwrap when sandboxed: the
            # server's own `pid` tool answers with its pid inside the sandbox's pid namespace).
            status = (await client.call_tool("vsm_status", {})).structured_content
            assert status is not None
            child = next(u["pid"] for u in status["units"] if u["name"] == "probe")
            assert isinstance(child, int)
            assert (
                next(u["sandbox"] for u in status["units"] if u["name"] == "probe")
                == "bwrap, egress-only network"
            )
        assert _alive(child)
        async with httpx.AsyncClient(timeout=START_TIMEOUT_S, headers=bearer_headers(token)) as http:
            # A 2025-11-25 client keeps its session's GET stream open across the SIGTERM.
            session = await _open_session(http, url)
            async with http.stream("GET", url, headers=session) as stream:
                assert stream.status_code == 200
                process.send_signal(signal.SIGTERM)
                with anyio.fail_after(5):
                    tail = [line async for line in stream.aiter_lines()]
        assert [line for line in tail if line.startswith("data:")] == []  # ended by the gateway, cleanly
        with anyio.fail_after(5):
            assert await process.wait() == 0
            while _alive(child):  # noqa: ASYNC110 - no event for another process's death
                await anyio.sleep(0.05)
        stderr = "".join([chunk async for chunk in TextReceiveStream(process.stderr)])
        assert token not in stderr
        assert "Traceback" not in stderr
        assert "ERROR" not in stderr
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_up_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vsm_mcp.cli.app import main; main()",
            "--state-dir",
            str(tmp_path),
            "up",
            "--http",
            "nowhere",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_one_line_naming_the_port_and_the_flag(tmp_path: Path) -> None:
    import socket
    import subprocess

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from vsm_mcp.cli.app import main; main()",
                "--state-dir",
                str(tmp_path),
                "up",
                "--http",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use (another program has it? choose "
        "another with --http HOST:PORT; port 0 picks a free one)"
    )
    assert "Traceback" not in result.stderr


def test_up_with_a_port_flag_is_told_the_right_flag(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vsm_mcp.cli.app import main; main()",
            "--state-dir",
            str(tmp_path),
            "up",
            "--port",
            "9000",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr.strip()) == (
        1,
        "error: vsm-mcp up has no --port: use --http 127.0.0.1:9000 (HOST:PORT)",
    )
