"""The README's quick start and its `servers add` example, run as written, on a PATH without uv.

The first quick-start command installs (idempotent: the checkout is installed
already when the tests run) and starts the main job; the test waits for its
URL, adds the README's example server as the README says (``uvx``, which is
not on PATH: it comes with the package) and calls one of its tools through
the running gateway with the admin token.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from anyio.streams.text import TextReceiveStream

from vsm_mcp.gateway.bearer import bearer_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
#: The install step only verifies an installed checkout; the gateway then starts in seconds.
START_TIMEOUT_S = 180.0
#: uvx fetches the example server from PyPI at its first start.
SERVER_TIMEOUT_S = 240.0


def _block(section: str) -> list[str]:
    """The command lines of the first ```bash block under ``## section``."""
    body = README.split(f"\n## {section}\n", 1)[1]
    code = re.search(r"```bash\n(.*?)```", body, re.S)
    assert code is not None, f"no bash block under '## {section}'"
    return [line for line in code.group(1).splitlines() if line.strip() and not line.startswith("#")]


def _path_without_uv() -> str:
    """This PATH minus every directory holding uv or uvx (the checkout's .venv/bin included)."""
    kept = [
        d
        for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        if d and not any(os.access(Path(d) / exe, os.X_OK) for exe in ("uv", "uvx"))
    ]
    path = os.pathsep.join(kept)
    assert shutil.which("uv", path=path) is None and shutil.which("uvx", path=path) is None
    return path


def test_the_quick_start_is_two_commands() -> None:
    assert _block("Quick start") == ["bash scripts/install && .venv/bin/vsm-mcp up", "bash scripts/test"]


async def test_the_quick_start_and_the_add_a_server_example_work_without_uv_on_path(tmp_path: Path) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8765)) == 0:
            pytest.skip("something else listens on 127.0.0.1:8765, the quick start's address")
    env = {**os.environ, "PATH": _path_without_uv(), "VSM_MCP_STATE_DIR": str(tmp_path)}
    first = _block("Quick start")[0]
    # A session of its own: the shell runs the install, then the gateway; stopping ends both.
    process = await anyio.open_process(["bash", "-c", first], cwd=ROOT, env=env, start_new_session=True)
    said: list[str] = []
    try:
        assert process.stderr is not None
        url = ""
        with anyio.fail_after(START_TIMEOUT_S):
            async for chunk in TextReceiveStream(process.stderr):
                said.append(chunk)
                if "MCP on " in "".join(said):
                    url = "".join(said).split("MCP on ", 1)[1].split()[0]
                    break
        assert url == "http://127.0.0.1:8765/mcp"

        for line in _block("Add a server"):
            done = await anyio.run_process(["bash", "-c", line], cwd=ROOT, env=env, check=False)
            assert done.returncode == 0, (line, done.stdout, done.stderr)
            if " list" in line:
                assert b"time" in done.stdout

        token = (tmp_path / "admin.token").read_text().strip()
        async with bearer_client(url, token, mode="legacy") as client:
            with anyio.fail_after(SERVER_TIMEOUT_S):
                while "time__get_current_time" not in {t.name for t in (await client.list_tools()).tools}:  # noqa: ASYNC110 - the gateway is another process
                    await anyio.sleep(0.5)
            result = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
        assert result.is_error is False
        block = result.content[0]
        assert isinstance(block, types.TextContent) and "UTC" in block.text
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with anyio.CancelScope(shield=True), anyio.move_on_after(15):
            await process.wait()
