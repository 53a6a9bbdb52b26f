"""`vsm-mcp dlq replay` through a running gateway: its live unit answers, a tool error stays a failure."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import anyio
import pytest
from anyio.streams.text import TextReceiveStream
from typer.testing import CliRunner

from vsm_mcp.cli.app import app
from vsm_mcp.core.messages import DeadLetter
from vsm_mcp.store import SqliteStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "probe_server.py"
START_TIMEOUT_S = 40.0


def _vsm(state: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--state-dir", str(state), *args])
    return result.exit_code, result.stdout


async def _seed(state: Path) -> None:
    async with SqliteStore.open(state / "state.db") as store:
        await store.put_dead_letter(
            DeadLetter(time.time(), "p", "echo", {"text": "again"}, "boom", attempts=1)
        )
        await store.put_dead_letter(
            DeadLetter(time.time(), "p", "add", {"a": "x", "b": 1}, "boom", attempts=1)
        )


async def test_letters_are_replayed_through_the_running_gateway(tmp_path: Path) -> None:
    add = ("servers", "add", "p", "--sandbox", "off", "--", sys.executable, str(PROBE))
    assert (await anyio.to_thread.run_sync(_vsm, tmp_path, *add))[0] == 0
    await _seed(tmp_path)
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
        code, out = await anyio.to_thread.run_sync(_vsm, tmp_path, "dlq", "replay")
    finally:
        process.terminate()
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await process.wait()
    lines = out.splitlines()
    assert code == 1, out
    assert lines[0] == f"replaying through the gateway at {url}"
    assert lines[1] == "#1: p/echo replayed"
    assert lines[2].startswith("#2: p/add failed again: the tool reported an error: ")
    assert lines[3] == "1 replayed, 1 still failing"
    [left] = json.loads((await anyio.to_thread.run_sync(_vsm, tmp_path, "dlq", "list", "--json"))[1])
    assert (left["id"], left["attempts"]) == (2, 2)
    # The gateway is gone: the next replay says it runs a one-off fleet instead.
    code, out = await anyio.to_thread.run_sync(_vsm, tmp_path, "dlq", "replay")
    assert out.splitlines()[0].startswith("no gateway with an HTTP face runs on this state dir")
