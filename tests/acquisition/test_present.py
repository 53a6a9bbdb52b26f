"""A capability the fleet already has is recognised, so it is not acquired a second time."""

from __future__ import annotations

import pytest

from vsm_mcp.acquisition.pipeline import launches
from vsm_mcp.acquisition.vetting import Candidate
from vsm_mcp.fleet.spec import ServerSpec

TIME = Candidate("time", "pypi", "mcp-server-time", "2026.10.19")
GITHUB = Candidate("gh", "npm", "@modelcontextprotocol/server-github", "2025.4.8")


@pytest.mark.parametrize(
    ("command", "args", "candidate", "expected"),
    [
        ("uvx", ["mcp-server-time"], TIME, True),
        ("/usr/local/bin/uvx", ["--from", "mcp-server-time==2025.1.1", "mcp-server-time"], TIME, True),
        ("uvx", ["--from", "other-package", "mcp-server-time"], TIME, False),
        ("uvx", ["mcp-server-time@latest", "--local-timezone=UTC"], TIME, True),
        ("uv", ["tool", "run", "mcp-server-time"], TIME, True),
        ("python", ["-m", "mcp_server_time"], TIME, True),
        ("uvx", ["mcp-server-fetch"], TIME, False),
        ("npx", ["-y", "@modelcontextprotocol/server-github"], GITHUB, True),
        ("npx", ["-y", "@modelcontextprotocol/server-github@2025.4.8"], GITHUB, True),
        ("npx", ["-y", "@modelcontextprotocol/server-filesystem", "/srv"], GITHUB, False),
        ("node", ["server.js"], GITHUB, False),
    ],
)
def test_a_configured_launcher_of_the_same_package_counts_as_present(
    command: str, args: list[str], candidate: Candidate, expected: bool
) -> None:
    assert launches(ServerSpec(name="u", command=command, args=args), candidate) is expected
