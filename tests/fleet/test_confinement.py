"""The fleet sandboxes every stdio server at launch, as its spec and the policy say.

Real bubblewrap (skipped only when it is not installed), real servers, the
fleet's own launch path: network isolation, the environment and the log, and
what happens when bubblewrap is unusable (``require`` fails the unit with
pain and starts nothing; ``prefer`` runs it UNSANDBOXED and says so).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from vsm_mcp.core.messages import AlgedonicSignal, Severity
from vsm_mcp.errors import SandboxError, UnitUnavailableError
from vsm_mcp.fleet.confinement import Confinement, SandboxPolicy
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import SandboxSpec, ServerSpec
from vsm_mcp.sandbox import Host
from vsm_mcp.sandbox.launch import TRUST_STORE_ENV
from vsm_mcp.vsm.events import UnitState

SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "escape" / "sandboxed_server.py"
SITE_PACKAGES = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
#: Start through bwrap and one call, on a busy 2-core box.
READY_TIMEOUT_S = 30.0
#: The sandbox's own variables (vsm_mcp.sandbox.launch.server_env) plus what the spec declares.
SANDBOX_ENV = [
    *("HOME", "LANG", "PATH", "TMPDIR", "XDG_CACHE_HOME", "npm_config_cache"),
    *(name for name in TRUST_STORE_ENV if name in os.environ),  # the gateway's trust stores, when set
]


def box(name: str, sandbox: SandboxSpec | None = None, **fields: Any) -> ServerSpec:
    """The sandbox-probing fixture server with fast supervision."""
    return ServerSpec(
        name=name,
        command=sys.executable,
        args=[str(SERVER)],
        sandbox=sandbox,
        start_timeout_s=20.0,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        **fields,
    )


def policy(state: Path, mode: str = "prefer", *, host: Host | None = None) -> SandboxPolicy:
    return SandboxPolicy(
        mode=mode,  # type: ignore[arg-type]
        network=True,
        servers_dir=state / "servers",
        state_dir=state,
        host=host,
    )


def real_host(state: Path) -> Host:
    host = Host.detect(state)
    if host.bwrap is None:
        if shutil.which("bwrap") is None:
            pytest.skip(f"bubblewrap is not installed: {host.bwrap_problem}")
        pytest.fail(f"bwrap is installed but cannot sandbox here: {host.bwrap_problem}")
    return host


def without_bwrap(state: Path) -> Host:
    """This host as it would be with bubblewrap uninstalled."""
    return replace(
        Host.detect(state), bwrap=None, bwrap_problem="bwrap not found (apt-get install bubblewrap)"
    )


def _text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


# -- resolving a spec against the policy (no processes) ---------------------------------


def test_a_spec_without_a_sandbox_section_takes_the_policy_defaults(tmp_path: Path) -> None:
    confinement = Confinement(policy(tmp_path, "prefer"))
    profile = confinement.profile(box("b"))
    assert profile is not None
    assert profile.prefix == (tmp_path / "servers" / "b").resolve()
    assert (profile.network, profile.unsandboxed_allowed) == (True, True)
    assert confinement.intent(box("b")) == "prefer, network"


def test_the_spec_s_own_choices_win_over_the_policy(tmp_path: Path) -> None:
    confinement = Confinement(policy(tmp_path, "prefer"))
    own = SandboxSpec(mode="require", network=False, prefix=tmp_path / "p", data_dirs=(tmp_path / "d",))
    profile = confinement.profile(box("b", own))
    assert profile is not None
    assert (profile.prefix, profile.data_dirs) == (tmp_path / "p", (tmp_path / "d",))
    assert (profile.network, profile.unsandboxed_allowed) == (False, False)
    assert confinement.intent(box("b", own)) == "require, no network"
    assert confinement.profile(box("c", SandboxSpec(mode="off"))) is None
    assert confinement.intent(box("c", SandboxSpec(mode="off"))) == "off"


def test_a_sandboxed_server_needs_a_prefix_from_somewhere() -> None:
    bare = Confinement(SandboxPolicy(mode="require"))
    with pytest.raises(SandboxError, match="'b' is to be sandboxed but has no prefix"):
        bare.profile(box("b"))
    assert Confinement().profile(box("b")) is None  # the library default is off


def test_off_runs_the_command_as_written_and_never_probes_the_host(tmp_path: Path) -> None:
    confinement = Confinement(SandboxPolicy(mode="off"))
    confined = confinement.plan_now(box("b", env={"API_TOKEN": "s3cret"}))
    assert confined.plan.argv == (sys.executable, str(SERVER))
    assert confined.plan.env["API_TOKEN"] == "s3cret"
    assert (confined.plan.sandboxed, confined.summary) == (False, "off")
    assert confinement._host is None


def test_a_spec_stored_as_a_bwrap_command_line_is_refused_not_wrapped_twice(tmp_path: Path) -> None:
    legacy = ServerSpec(name="old", command="/usr/bin/bwrap", args=["--ro-bind", "/", "/", "--", "true"])
    with pytest.raises(
        SandboxError, match=r"remove it \(vsm-mcp servers remove old\) and acquire or add it again"
    ):
        Confinement(policy(tmp_path)).plan_now(legacy)


# -- the fleet's launch path, real bubblewrap -------------------------------------------


@pytest.mark.anyio
@pytest.mark.slow
@pytest.mark.external
async def test_neither_network_off_nor_on_reaches_a_loopback_listener(tmp_path: Path) -> None:
    # network on is an egress namespace of its own (`vsm_mcp.sandbox.egress`), not the host's.
    state = tmp_path / "state"
    host = real_host(state)
    connected = anyio.Event()

    async def accept(stream: SocketStream) -> None:
        connected.set()
        await stream.aclose()

    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(listener.serve, accept)
        port = listener.extra(SocketAttribute.local_port)
        specs = [box("closed", SandboxSpec(network=False)), box("open", SandboxSpec(network=True))]
        async with Fleet(specs, sandbox=policy(state, "require", host=host)) as fleet:
            with anyio.fail_after(READY_TIMEOUT_S):
                await fleet.wait_ready("closed")
                refused = await fleet.call_tool("closed__connect", {"host": "127.0.0.1", "port": port})
                assert not connected.is_set()
                await fleet.wait_ready("open")
                outbound = await fleet.call_tool("open__connect", {"host": "127.0.0.1", "port": port})
            assert not connected.is_set()
            assert (_text(refused), _text(outbound)) == ("ECONNREFUSED", "ECONNREFUSED")
            assert [u["sandbox"] for u in fleet.status()] == [
                "bwrap, no network",
                "bwrap, egress-only network",
            ]
        tg.cancel_scope.cancel()


@pytest.mark.anyio
@pytest.mark.slow
@pytest.mark.external
async def test_the_environment_is_scrubbed_and_the_log_names_variables_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    logs = tmp_path / "logs"
    spec = box("b", SandboxSpec(network=False), env={"API_TOKEN": "s3cret-value"})
    async with Fleet([spec], sandbox=policy(state, "require", host=real_host(state)), log_dir=logs) as fleet:
        with anyio.fail_after(READY_TIMEOUT_S):
            await fleet.wait_ready("b")
            result = await fleet.call_tool("b__environ", {})
    # PWD: bwrap's --chdir sets it.
    assert result["structuredContent"] == {"result": sorted(["API_TOKEN", "PWD", *SANDBOX_ENV])}
    log = (logs / "b.log").read_text()
    assert "--- b: sandboxed: " in log
    assert "API_TOKEN" in log
    assert "s3cret-value" not in log


# -- no working bubblewrap -----------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.slow
async def test_require_without_bwrap_fails_the_unit_with_pain_and_starts_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    signals: list[AlgedonicSignal] = []
    got = anyio.Event()

    async def sink(signal: AlgedonicSignal) -> None:
        signals.append(signal)
        got.set()

    async with Fleet(
        [box("b")], sandbox=policy(state, "require", host=without_bwrap(state)), signals=sink
    ) as fleet:
        unit = fleet.unit("b")
        with anyio.fail_after(READY_TIMEOUT_S):
            await got.wait()
        assert unit.state is UnitState.FAILED
        assert unit.pid is None
        assert unit.stats.restarts == 0
        reason = unit.stats.last_error
        assert reason.startswith("not started: cannot sandbox ")
        assert "bwrap not found (apt-get install bubblewrap)" in reason
        assert [(s.source, s.kind, s.severity, s.detail) for s in signals] == [
            ("unit:b", "sandbox_unavailable", Severity.HIGH, reason)
        ]
        assert fleet.status()[0]["sandbox"] == "REFUSED: " + reason.removeprefix("not started: ")
        with pytest.raises(UnitUnavailableError) as info:
            await fleet.call_unit_tool("b", "environ", {})
        assert str(info.value) == (
            f"server 'b' is failed by its sandbox policy ({reason}); restart it with: vsm-mcp servers restart b"
        )
        # An operator restart tries again, and is refused again: never a silent unsandboxed run.
        got = anyio.Event()
        fleet.restart("b")
        with anyio.fail_after(READY_TIMEOUT_S):
            await got.wait()
        assert unit.state is UnitState.FAILED
        assert [s.kind for s in signals] == ["sandbox_unavailable", "sandbox_unavailable"]


@pytest.mark.anyio
@pytest.mark.slow
async def test_prefer_without_bwrap_runs_unsandboxed_scrubbed_and_says_so(tmp_path: Path) -> None:
    state = tmp_path / "state"
    signals: list[AlgedonicSignal] = []

    async def sink(signal: AlgedonicSignal) -> None:
        signals.append(signal)

    # Unsandboxed, a root gateway still drops the server to a uid of its own, which cannot enter
    # root's home (where this venv's interpreter lives): use the system interpreter then.
    command, env = sys.executable, {"API_TOKEN": "s3cret"}
    if os.geteuid() == 0:
        command, env = "/usr/bin/python3", env | {"PYTHONPATH": str(SITE_PACKAGES)}
    spec = box("b", env=env).model_copy(update={"command": command})
    async with Fleet(
        [spec], sandbox=policy(state, "prefer", host=without_bwrap(state)), signals=sink
    ) as fleet:
        with anyio.fail_after(READY_TIMEOUT_S):
            await fleet.wait_ready("b")
            result = await fleet.call_tool("b__environ", {})
        assert result["structuredContent"] == {"result": sorted([*env, *SANDBOX_ENV])}
        assert fleet.status()[0]["sandbox"] == "UNSANDBOXED (no working bwrap; limits and scrubbed env only)"
        assert [(s.kind, s.severity) for s in signals] == [("unsandboxed", Severity.HIGH)]
