"""A server that runs into its cgroup limits is held there, and the gateway hears of it (limit_hit)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import anyio
import pytest

from vsm_mcp.core.messages import AlgedonicSignal, Severity
from vsm_mcp.fleet.confinement import SandboxPolicy
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import SandboxSpec, ServerSpec
from vsm_mcp.sandbox import Host
from vsm_mcp.sandbox.profile import MIB, CgroupLimits

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.external]

HOG = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "hog_server.py"
SITE_PACKAGES = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
#: Start through bwrap, the work, and a health round (0.5 s) on a busy 2-core box.
TIMEOUT_S = 60.0


@pytest.fixture
def host(tmp_path: Path) -> Host:
    found = Host.detect(tmp_path / "state")
    if found.bwrap is None:
        if shutil.which("bwrap") is None:
            pytest.skip(f"bubblewrap is not installed: {found.bwrap_problem}")
        pytest.fail(f"bwrap is installed but cannot sandbox here: {found.bwrap_problem}")
    if not {"memory", "pids"} <= found.cgroups.enforced:
        pytest.skip(f"no per-server memory and pids limits for this uid here: {found.cgroups.describe()}")
    return found


async def test_forks_and_memory_past_the_servers_limits_are_stopped_and_reported(
    tmp_path: Path, host: Host
) -> None:
    state = tmp_path / "state"
    signals: list[AlgedonicSignal] = []
    heard = anyio.Event()

    async def sink(signal: AlgedonicSignal) -> None:
        signals.append(signal)
        heard.set()

    spec = ServerSpec(
        name="hog",
        command=sys.executable,
        args=[str(HOG)],
        sandbox=SandboxSpec(
            mode="require", network=False, cgroup=CgroupLimits(pids=64, memory_bytes=300 * MIB)
        ),
        ping_interval_s=0.5,
        start_timeout_s=30.0,
    )
    policy = SandboxPolicy(mode="require", servers_dir=state / "servers", state_dir=state, host=host)
    async with Fleet([spec], sandbox=policy, signals=sink) as fleet:
        with anyio.fail_after(TIMEOUT_S):
            await fleet.wait_ready("hog")
            made = await fleet.call_tool("hog__forkbomb", {"n": 2000})
            await heard.wait()
        forks = int(made["content"][0]["text"])
        assert 0 < forks < 64  # the server's own threads and processes count against the 64
        (signal,) = signals
        assert (signal.source, signal.kind, signal.severity) == ("unit:hog", "limit_hit", Severity.MEDIUM)
        assert signal.detail.startswith("process limit reached: ")
        heard = anyio.Event()
        with anyio.fail_after(TIMEOUT_S):
            ended = await fleet.call_tool("hog__hog", {"mib": 120, "children": 3})
            await heard.wait()
        outcomes = ended["structuredContent"]["result"]
        assert -9 in outcomes  # the OOM killer took at least one child: 3 x 120 MiB > 300 MiB
        assert len(outcomes) == 3
        assert signals[-1].kind == "limit_hit"
        assert signals[-1].detail.startswith("memory limit reached: the kernel killed ")
        assert fleet.unit("hog").pid is not None  # the server itself serves on
