"""A server cannot change what its next start runs; a change made by anyone else is refused, loudly.

Real bubblewrap, the fleet's own launch path, pins kept in a `MemoryStore`:

* the server tries to rewrite its own launcher (to name an executable in a
  hidden place, as the attack did) and exits: the write fails (its install
  tree is read-only), and after the restart it still sees nothing hidden;
* the launcher changed on the host (by another process, or by a server that
  ran unsandboxed): the next start is refused (FAILED, HIGH
  ``launcher_changed`` pain naming the file), the other units keep serving,
  and an operator's trust (a new pin) starts it again.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from vsm_mcp.core.messages import AlgedonicSignal, Severity
from vsm_mcp.fleet.confinement import SandboxPolicy
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.pins import pin_key, trust
from vsm_mcp.fleet.spec import SandboxSpec, ServerSpec
from vsm_mcp.sandbox import Host
from vsm_mcp.store import MemoryStore
from vsm_mcp.vsm.events import UnitState
from vsm_mcp.vsm.notices import Notices

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.external]

SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "escape" / "sandboxed_server.py"
#: Start through bwrap and a call, on a busy 2-core box.
READY_TIMEOUT_S = 30.0


def _install(prefix: Path) -> Path:
    """An installed server as the installer leaves it: a launcher script and its program in the prefix."""
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib").mkdir()
    program = prefix / "lib" / SERVER.name
    shutil.copy(SERVER, program)
    launcher = prefix / "bin" / "server"
    launcher.write_text(
        f"#!{sys.executable}\nimport os\nos.execv({sys.executable!r}, [{sys.executable!r}, {str(program)!r}])\n"
    )
    launcher.chmod(0o755)
    for path in (prefix, prefix / "bin", prefix / "lib", program):
        path.chmod(0o755)
    return launcher


def _spec(name: str, launcher: Path, prefix: Path) -> ServerSpec:
    return ServerSpec(
        name=name,
        command=str(launcher),
        sandbox=SandboxSpec(mode="require", network=False, prefix=prefix),
        start_timeout_s=20.0,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
    )


@pytest.fixture
def host(tmp_path: Path) -> Host:
    found = Host.detect(tmp_path / "state")
    if found.bwrap is None:
        if shutil.which("bwrap") is None:
            pytest.skip(f"bubblewrap is not installed: {found.bwrap_problem}")
        pytest.fail(f"bwrap is installed but cannot sandbox here: {found.bwrap_problem}")
    return found


def _text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


async def test_a_server_cannot_rewrite_its_launcher_to_see_a_hidden_place(tmp_path: Path, host: Host) -> None:
    state = tmp_path / "state"
    prefix = state / "servers" / "hostile"
    launcher = _install(prefix)
    hidden = tmp_path / "hidden-home"
    (hidden / ".creds").mkdir(parents=True)
    (hidden / ".creds" / "token").write_text("0600 credentials\n")
    policy = SandboxPolicy(mode="require", servers_dir=state / "servers", state_dir=state, host=host)
    async with (
        MemoryStore.open() as store,
        Fleet([_spec("hostile", launcher, prefix)], sandbox=policy, pins=store, notices=Notices()) as fleet,
    ):
        with anyio.fail_after(READY_TIMEOUT_S):
            await fleet.wait_ready("hostile")
        pinned = await store.kv_get(pin_key("hostile"))
        assert isinstance(pinned, dict) and str(launcher) in pinned  # pinned at its first start
        before = launcher.read_text()
        answer = await fleet.call_unit_tool("hostile", "write", {"path": str(launcher)})
        assert _text(answer) == "EROFS"
        assert launcher.read_text() == before
        first = fleet.unit("hostile").pid
        assert fleet.notices is not None
        mark = fleet.notices.last_seq
        fleet.restart("hostile")
        with anyio.fail_after(READY_TIMEOUT_S):
            await fleet.notices.wait_for("unit.ready", "hostile", after=mark)
        assert fleet.unit("hostile").pid not in (None, first)
        answer = await fleet.call_unit_tool("hostile", "read", {"path": str(hidden / ".creds" / "token")})
        assert _text(answer) == "ENOENT"


async def test_a_launcher_changed_behind_the_fleets_back_is_refused_with_high_pain(
    tmp_path: Path, host: Host
) -> None:
    state = tmp_path / "state"
    prefixes = {name: state / "servers" / name for name in ("changed", "steady")}
    launchers = {name: _install(prefix) for name, prefix in prefixes.items()}
    signals: list[AlgedonicSignal] = []
    pain = anyio.Event()

    async def sink(signal: AlgedonicSignal) -> None:
        signals.append(signal)
        pain.set()

    policy = SandboxPolicy(mode="require", servers_dir=state / "servers", state_dir=state, host=host)
    specs = [_spec(name, launchers[name], prefixes[name]) for name in prefixes]
    async with MemoryStore.open() as store, Fleet(specs, sandbox=policy, pins=store, signals=sink) as fleet:
        with anyio.fail_after(READY_TIMEOUT_S):
            for name in prefixes:
                await fleet.wait_ready(name)
        # Someone else rewrites the launcher to run an executable from a hidden directory.
        launcher = launchers["changed"]
        launcher.write_text(launcher.read_text().replace("import os", "import os  # changed"))
        fleet.restart("changed")
        with anyio.fail_after(READY_TIMEOUT_S):
            await pain.wait()
        unit = fleet.unit("changed")
        assert unit.state is UnitState.FAILED
        assert unit.pid is None
        (signal,) = signals
        assert (signal.source, signal.kind, signal.severity) == (
            "unit:changed",
            "launcher_changed",
            Severity.HIGH,
        )
        assert signal.detail.startswith(
            f"not started: server 'changed' would run files that changed since it was installed or approved: "
            f"{launcher}: sha256:"
        )
        assert signal.detail.endswith("not started (if the change is yours: vsm-mcp servers trust changed)")
        assert fleet.status()[[s["name"] for s in fleet.status()].index("changed")]["sandbox"].startswith(
            "REFUSED: server 'changed' would run files that changed"
        )
        # The other unit is untouched.
        assert _text(await fleet.call_unit_tool("steady", "whoami", {})) != ""
        # The operator accepts the change (`vsm-mcp servers trust`: the launch as it is now, pinned).
        now = (await fleet.confinement.plan(unit.spec)).plan.pin
        assert now is not None
        await trust(store, "changed", now)
        fleet.restart("changed")
        with anyio.fail_after(READY_TIMEOUT_S):
            await fleet.wait_ready("changed")
        assert fleet.unit("changed").state is UnitState.READY
