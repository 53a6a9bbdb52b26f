"""The MCP Inspector's CLI (an external client, Node) against `vsm-mcp serve --stdio` fronting a probe server.

Each run of the CLI starts the gateway afresh (the CLI spawns its stdio
server), lists or calls once, and prints the result as JSON: so this shows
both what a once-only client sees at start (the first tools/list waits for the
configured servers' first start) and that calls through the gateway come
back as the server gave them, errors included.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .suite import REPO_ROOT, SuiteTools

pytestmark = [pytest.mark.slow, pytest.mark.external]

PROBE_SERVER = REPO_ROOT / "tests" / "fixtures" / "servers" / "probe_server.py"
#: One CLI run: Node start, gateway start, the probe's first start, one request.
CLI_TIMEOUT_S = 90


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.toml").write_text(
        f"[servers.probe]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(PROBE_SERVER))}]\n"
    )
    return state


#: The Inspector CLI's exit status for a tool result with ``isError: true`` (the result is printed).
EXIT_TOOL_IS_ERROR = 5


def inspector(tools: SuiteTools, state: Path, *args: str, exit_status: int = 0) -> Any:
    """Run the Inspector CLI once against the gateway over stdio; its JSON output."""
    done = subprocess.run(
        [
            str(tools.node),
            str(tools.inspector_js),
            "--cli",
            "-e",
            f"VSM_MCP_STATE_DIR={state}",
            *args,
            "--",
            sys.executable,
            "-m",
            "vsm_mcp.cli.serve",
            "--stdio",
        ],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
        env={"MCP_CATALOG_PATH": str(state / "inspector-catalog.json"), "PATH": "/usr/bin:/bin"},
        cwd=state,
    )
    assert done.returncode == exit_status, (
        f"inspector exited {done.returncode}: {done.stdout[-800:]} {done.stderr[-800:]}"
    )
    return json.loads(done.stdout)


def test_the_first_tool_list_already_has_the_configured_servers_tools(
    suite_tools: SuiteTools, state_dir: Path
) -> None:
    listed = inspector(suite_tools, state_dir, "--method", "tools/list")
    names = [tool["name"] for tool in listed["tools"]]
    assert names[:4] == ["vsm_status", "vsm_variety", "vsm_search_tools", "vsm_call_tool"]
    assert {"probe__echo", "probe__add", "probe__slow"} <= set(names)


def test_calls_come_back_as_the_server_gave_them(suite_tools: SuiteTools, state_dir: Path) -> None:
    echoed = inspector(
        suite_tools,
        state_dir,
        "--method",
        "tools/call",
        "--tool-name",
        "probe__echo",
        "--tool-arg",
        "text=hi",
    )
    assert echoed == {
        "content": [{"type": "text", "text": "hi"}],
        "structuredContent": {"result": "hi"},
        "isError": False,
    }
    bad = inspector(
        suite_tools,
        state_dir,
        *("--method", "tools/call", "--tool-name", "probe__add", "--tool-arg", "a=x", "b=1"),
        exit_status=EXIT_TOOL_IS_ERROR,
    )
    assert bad["isError"] is True
    # The server's own validation error (the CLI sends a non-number for an integer as null).
    assert "Input should be a valid integer" in bad["content"][0]["text"]


def test_the_vsm_resources_read_through_the_inspector(suite_tools: SuiteTools, state_dir: Path) -> None:
    fleet = inspector(suite_tools, state_dir, "--method", "resources/read", "--uri", "vsm://fleet")
    view = json.loads(fleet["contents"][0]["text"])
    assert [unit["name"] for unit in view["units"]] == ["probe"]
