"""An acquired server is stored as its plain command plus a sandbox section, and sandboxed at each launch.

Real bubblewrap: verification runs the sandboxed plan, the stored spec holds
no bwrap argv and no environment value, and the fleet (with its own policy)
runs it sandboxed as the stored section says. ``require`` without bubblewrap
stores and installs nothing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from vsm_mcp.acquisition.launch import SandboxLauncher
from vsm_mcp.acquisition.pipeline import Acquirer
from vsm_mcp.acquisition.vetting import Candidate, VettingPolicy
from vsm_mcp.errors import AcquisitionError
from vsm_mcp.fleet.confinement import SandboxPolicy
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.sandbox import Host
from vsm_mcp.store import MemoryStore

from .conftest import ProbeInstaller, children_running, stub_metadata

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROBE_TIME = Candidate("probe-time", "pypi", "mcp-server-probe", "1.0.0", score=2.0, in_catalog=True)
#: Install, sandboxed verification and integration of the probe server on a busy box.
ACQUIRE_TIMEOUT_S = 60.0


def _acquirer(store: MemoryStore, state: Path, launcher: SandboxLauncher, fleet: Fleet | None) -> Acquirer:
    return Acquirer(
        store=store,
        registry=FleetRegistry(store),
        installer=ProbeInstaller(),
        metadata=stub_metadata(),  # type: ignore[arg-type]
        known_names={"mcp-server-probe"},
        state_dir=state,
        policy=VettingPolicy(auto_approve=True),
        launcher=launcher,
        fleet=fleet,
    )


@pytest.mark.external
async def test_the_stored_spec_is_the_plain_command_and_the_fleet_sandboxes_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    host = Host.detect(state)
    if host.bwrap is None:
        if shutil.which("bwrap") is None:
            pytest.skip(f"bubblewrap is not installed: {host.bwrap_problem}")
        pytest.fail(f"bwrap is installed but cannot sandbox here: {host.bwrap_problem}")
    fleet_policy = SandboxPolicy(mode="off", servers_dir=state / "servers", state_dir=state)
    async with MemoryStore.open() as store, Fleet(sandbox=fleet_policy) as fleet:
        acquirer = _acquirer(store, state, SandboxLauncher(state, mode="require", network=False), fleet)
        plan = await acquirer.plan([PROBE_TIME], query="echo text", category="echo")
        with anyio.fail_after(ACQUIRE_TIMEOUT_S):
            acquired = await acquirer.acquire(plan)
        prefix = state / "servers" / "probe"
        # Verification ran the sandboxed plan ...
        assert acquired.launch.sandboxed is True
        assert host.bwrap in acquired.launch.plan.argv[:5]  # after the preamble (a sh stage), if any
        # ... but what is stored is the plain command, a sandbox section, and no environment.
        stored = await store.kv_get("fleet.servers")
        assert stored == {
            "probe": {
                "name": "probe",
                "command": str(prefix / "bin" / "server"),
                "category": "echo",
                "transport": "stdio",
                "sandbox": {"mode": "require", "network": False, "prefix": str(prefix.resolve())},
            }
        }
        text = json.dumps(stored)
        assert "bwrap" not in text
        assert "prlimit" not in text
        assert str(prefix / "home") not in text  # the sandbox's HOME value
        # The fleet's own default is "off"; the stored section wins: it runs in bubblewrap.
        unit = fleet.unit("probe")
        assert unit.sandbox == "bwrap, no network"
        assert unit.confined is not None
        assert host.bwrap in unit.confined.plan.argv[:5]
        result = await fleet.call_tool("probe__echo", {"text": "inside"})
        assert result["content"][0]["text"] == "inside"
    assert children_running(str(tmp_path)) == []


async def test_require_without_bwrap_refuses_at_the_sandbox_step_and_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    missing = replace(
        Host.detect(state), bwrap=None, bwrap_problem="bwrap not found (apt-get install bubblewrap)"
    )
    async with MemoryStore.open() as store:
        launcher = SandboxLauncher(state, mode="require", host=missing)
        acquirer = _acquirer(store, state, launcher, None)
        plan = await acquirer.plan([PROBE_TIME], query="echo", category="echo")
        with anyio.fail_after(ACQUIRE_TIMEOUT_S), pytest.raises(AcquisitionError) as info:
            await acquirer.acquire(plan)
        assert info.value.step == "sandbox"
        assert "bwrap not found (apt-get install bubblewrap)" in info.value.reason
        assert await FleetRegistry(store).desired() == {}
        assert not (state / "servers" / "probe").exists()
