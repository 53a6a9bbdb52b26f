"""Real MCP servers run inside the sandbox and answer through the SDK's stdio client.

The launch plan goes to `mcp.client.stdio.stdio_client` unchanged (argv,
env, cwd): no preexec function, no special launcher. The SDK merges its own
default variables into the child's environment; the plan's ``--unsetenv``
stages must strip them again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from vsm_mcp.sandbox import LaunchPlan, SandboxProfile
from vsm_mcp.sandbox.launch import TRUST_STORE_ENV

pytestmark = [pytest.mark.anyio, pytest.mark.external, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "tests" / "fixtures" / "escape" / "sandboxed_server.py"
#: This venv's packages (the SDK), for the system interpreter in the ``user`` shape.
SITE_PACKAGES = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
#: Handshake and one listing; npm servers and a cold python import can take seconds on a busy CI box.
SESSION_TIMEOUT_S = 60.0


def _params(launcher: tuple[str, ...], plan: LaunchPlan) -> StdioServerParameters:
    argv = [*launcher, *plan.argv]
    return StdioServerParameters(command=argv[0], args=argv[1:], env=dict(plan.env), cwd=plan.cwd)


async def _session_calls(params: StdioServerParameters, *calls: str) -> tuple[list[str], list[Any]]:
    """Tool names from tools/list, then the structured result of each named tool called without arguments."""
    with anyio.fail_after(SESSION_TIMEOUT_S):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            results = []
            for name in calls:
                result = await session.call_tool(name, {})
                assert not result.is_error, result
                results.append(result.structured_content)
            return sorted(tool.name for tool in listed.tools), results


async def test_sdk_server_answers_inside_the_sandbox(shape: Any, layout: Any) -> None:
    if shape.owner is None:
        # The project's interpreter, wherever it lives (its runtime is bound read-only when hidden).
        command, env = sys.executable, {"API_TOKEN": "s3cret"}
    else:
        # uid 65534 cannot enter root's home where this venv's interpreter lives: use the system one.
        command, env = shape.python, {"API_TOKEN": "s3cret", "PYTHONPATH": str(SITE_PACKAGES)}
    profile = layout.profile()
    if shape.owner is not None:
        # the venv's packages, declared readable: a checkout under /tmp is hidden inside otherwise
        profile = profile.model_copy(update={"read_paths": (*profile.read_paths, SITE_PACKAGES)})
    plan = shape.sandbox(profile).wrap(command, [str(SERVER)], env)
    names, (environ, whoami) = await _session_calls(_params(shape.launcher, plan), "environ", "whoami")
    assert names == ["connect", "environ", "read", "whoami", "write"]
    trust = {name for name in TRUST_STORE_ENV if name in os.environ}  # the gateway's trust stores
    expected = {"PATH", "HOME", "LANG", "TMPDIR", "npm_config_cache", "XDG_CACHE_HOME", "PWD", *env, *trust}
    assert sorted(environ["result"]) == sorted(expected)  # no LOGNAME, SHELL, TERM, USER from the SDK
    assert whoami["result"] == [(plan.run_as or os.geteuid()) if shape.owner is None else shape.owner] * 2


async def test_node_server_runs_under_the_default_limits(
    native: Any, layout: Any, test_servers: Path
) -> None:
    node = shutil.which("node")
    assert node is not None
    everything = test_servers / "npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    profile = SandboxProfile(prefix=layout.prefix, read_paths=(test_servers / "npm",))
    plan = native.sandbox(profile).wrap(node, [str(everything), "stdio"])
    names, _ = await _session_calls(_params((), plan))
    assert {"echo", "get-sum", "get-tiny-image"} <= set(names)


async def test_pypi_server_runs_under_the_default_limits(
    native: Any, layout: Any, test_servers: Path
) -> None:
    server = test_servers / "time-venv/bin/mcp-server-time"
    profile = SandboxProfile(prefix=layout.prefix)
    plan = native.sandbox(profile).wrap(str(server), ["--local-timezone", "UTC"])
    names, _ = await _session_calls(_params((), plan))
    assert names == ["convert_time", "get_current_time"]


def test_npx_installs_into_the_prefix_cache_with_network_on(native: Any, layout: Any) -> None:
    if shutil.which("npx") is None:
        pytest.skip("npx is not installed")
    profile = SandboxProfile(prefix=layout.prefix, network=True)
    plan = native.sandbox(profile).wrap("npx", ["-y", "semver@7.6.3", "1.2.3", "-r", ">=1.0.0"])
    proc = subprocess.run(
        plan.argv, env=dict(plan.env), cwd=plan.cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert (proc.returncode, proc.stdout) == (0, "1.2.3\n"), proc.stderr
    assert (layout.prefix / "home" / ".npm" / "_npx").is_dir()  # npm's cache is the server's, not the user's
